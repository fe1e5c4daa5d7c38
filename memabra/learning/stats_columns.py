"""What the statistics build reads of each trajectory, in one pass over a batch.

The pass is where most of a build's time goes (each document's dicts are touched for the first time there), so it
reads exactly the fields it needs with C-level getters and leaves every conversion to numpy afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter

import numpy as np

from memabra.learning.pair_features import LearnerConfig
from memabra.models import CandidateKind, Trajectory


@dataclass
class BatchColumns:
    """What a build needs of each trajectory, one sequence per value, rows in trajectory order."""

    texts: Sequence[str]
    metadata: Sequence
    word_values: Sequence
    """Per row, the `metadata_words` values as `read_values` returns them."""
    metadata_values: Sequence
    """Per row, the raw `metadata_features` values as `read_values` returns them."""
    kinds: Sequence[str]
    names: Sequence[str]
    hints: Sequence
    """Per row, the chosen candidate's raw payload `hint_reward`."""
    payload_values: Sequence
    """Per row, the chosen candidate's raw `payload_features` values as `read_values` returns them."""
    rewards: Sequence[float]
    propensities: Sequence
    scores: np.ndarray
    """The chosen candidate's retrieval score."""
    bests: np.ndarray
    highers: np.ndarray
    """How many offered candidates score higher than the chosen one."""
    offered: np.ndarray


_READ_NOTHING = ().count
"""Stands in for a reader when no keys are named: a C-level call that accepts any value and reads none of it."""


def _reader(keys: tuple[str, ...]):
    """A C-level reader of `keys` from a mapping: the value for one key, a tuple for several (KeyError when one is
    missing, TypeError when the mapping is None: `read_values` then fills in None)."""
    return itemgetter(*keys) if keys else _READ_NOTHING


def read_values(mapping: dict | None, keys: tuple[str, ...]):
    """What `_reader(keys)` returns, with None for missing keys or a missing mapping."""
    if len(keys) == 1:
        return mapping.get(keys[0]) if mapping else None
    return tuple(map(mapping.get, keys)) if mapping else (None,) * len(keys)


def value_columns(values: Sequence, count: int) -> list[Sequence]:
    """The per-key columns of per-row values read for `count` keys."""
    if count == 0:
        return []
    return [values] if count == 1 else list(zip(*values))


_ROW_VALUES = 12
"""Values the read pass appends per row (text, metadata, words, metadata values, kind, name, hint, payload values,
reward, propensity, chosen score, offered count): rows go into one flat list, no tuple kept per row."""


def _columns(rows: list, offered_scores: list[float], count: int) -> BatchColumns:
    """Columns from the flat list of every row's values and the flat list of every offered score."""
    if len(rows) != count * _ROW_VALUES:
        raise ValueError("a trajectory's chosen candidate must be one of its candidates; validate it first")
    (texts, metadata, words, metadata_values, kinds, names, hints, payload_values, rewards, propensities,
     chosen_score, offered) = (rows[start::_ROW_VALUES] for start in range(_ROW_VALUES))
    scores = np.fromiter(offered_scores, dtype=np.float64, count=len(offered_scores))
    offered = np.fromiter(offered, dtype=np.int64, count=count)
    starts = np.cumsum(offered) - offered
    chosen_score = np.fromiter(chosen_score, dtype=np.float64, count=count)
    return BatchColumns(texts, metadata, words, metadata_values, kinds, names, hints, payload_values, rewards,
                        propensities, chosen_score, np.maximum.reduceat(scores, starts),
                        np.add.reduceat(scores > np.repeat(chosen_score, offered), starts), offered)


def columns_of_documents(documents: Sequence[dict], config: LearnerConfig) -> BatchColumns:
    """Columns of validated plain trajectory documents (missing fields take the model's defaults)."""
    try:
        return _read(documents, config, _OF_DOCUMENTS)
    except KeyError:  # a document leaves out fields that have defaults: read them all with the defaults filled in
        return _read([_completed(document) for document in documents], config, _OF_DOCUMENTS)


def _completed(document: dict) -> dict:
    """A document with the optional fields the build reads set to their defaults when missing."""
    task, decision = document["task"], document["decision"]
    return {**document, "task": {"metadata": None, **task}, "decision": {"propensity": None, **decision},
            "candidates": [{"name": "", "score": 0.0, "payload": None, **candidate}
                           for candidate in document["candidates"]]}


@dataclass(frozen=True)
class _Getters:
    """C-level getters of the fields the pass reads, for plain documents (items) or trajectory models (attributes)."""

    parts: object
    task: object
    decision: object
    chosen: object
    score: object
    candidate_id: object
    reward: object


_OF_DOCUMENTS = _Getters(itemgetter("task", "decision", "candidates", "outcome"), itemgetter("text", "metadata"),
                         itemgetter("chosen_candidate_id", "propensity"), itemgetter("kind", "name", "payload", "score"),
                         itemgetter("score"), itemgetter("candidate_id"), itemgetter("reward"))
_OF_MODELS = _Getters(attrgetter("task", "decision", "candidates", "outcome"), attrgetter("text", "metadata"),
                      attrgetter("chosen_candidate_id", "propensity"),
                      attrgetter("kind" if all(kind.name == kind.value for kind in CandidateKind) else "kind.value",
                                 "name", "payload", "score"),
                      attrgetter("score"), attrgetter("candidate_id"), attrgetter("reward"))
"""A model's kind is read as held when it is a str enum member equal to its value and hashed like it (an enum member
hashes its name): `.value` is a Python-level property, the slowest read of the pass."""


def columns_of_trajectories(trajectories: Sequence[Trajectory], config: LearnerConfig) -> BatchColumns:
    """Columns of trajectory models."""
    return _read(trajectories, config, _OF_MODELS)


def _read(items: Sequence, config: LearnerConfig, get: _Getters) -> BatchColumns:
    """The one pass over a batch, reading each field with `get`'s getters."""
    word_keys, metadata_keys, payload_keys = config.metadata_words, config.metadata_features, config.payload_features
    read_words, read_metadata, read_payload = _reader(word_keys), _reader(metadata_keys), _reader(payload_keys)
    task_parts, decision_parts, chosen_parts = get.task, get.decision, get.chosen
    score_of, candidate_id_of, reward_of = get.score, get.candidate_id, get.reward
    rows, offered_scores = [], []
    add_row, add_scores = rows.extend, offered_scores.extend
    for task, decision, offer, outcome in map(get.parts, items):
        chosen_id, propensity = decision_parts(decision)
        for chosen in offer:
            if candidate_id_of(chosen) == chosen_id:
                break
        else:
            break
        add_scores(map(score_of, offer))
        text, metadata = task_parts(task)
        kind, name, payload, score = chosen_parts(chosen)
        try:
            words = read_words(metadata)
        except (KeyError, TypeError):
            words = read_values(metadata, word_keys)
        try:
            metadata_values = read_metadata(metadata)
        except (KeyError, TypeError):
            metadata_values = read_values(metadata, metadata_keys)
        try:
            payload_values = read_payload(payload)
        except (KeyError, TypeError):
            payload_values = read_values(payload, payload_keys)
        add_row((text, metadata, words, metadata_values, kind, name, payload.get("hint_reward") if payload else None,
                 payload_values, reward_of(outcome), propensity, score, len(offer)))
    return _columns(rows, offered_scores, len(items))
