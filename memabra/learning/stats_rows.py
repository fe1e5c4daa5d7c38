"""The learner's statistics built for a whole batch at once: one pass reads each trajectory's values, numpy does
the rest (G = sum w x x^T, m = sum w x r, ... per identity bucket).

Rows that share a task text and an identity bucket share their task-word columns, so the word blocks are summed
per (bucket, text) pair first and each bucket's blocks are a few matrix products over its distinct texts; the
result equals the row-by-row sums up to floating-point rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from threadpoolctl import threadpool_limits

from memabra.learning.pair_features import (
    DENSE_NAMES, LearnerConfig, identity_key, name_tokens, numeric, task_features, task_words,
)
from memabra.models import Trajectory

_TEXT_TYPES = {str, type(None)}
_NUMBER_TYPES = {int, float, type(None)}


@dataclass
class BatchColumns:
    """What a build needs of each trajectory, one sequence per value, rows in trajectory order. Read in a single
    pass over the trajectories: a document's fields are touched while it is in the cache, not once per column."""

    texts: Sequence[str]
    metadata: Sequence
    word_values: Sequence[tuple]
    """Per row, the `metadata_words` values (None when missing)."""
    metadata_values: Sequence[tuple]
    """Per row, the raw `metadata_features` values."""
    kinds: Sequence[str]
    names: Sequence[str]
    hints: Sequence
    """Per row, the chosen candidate's raw payload `hint_reward`."""
    payload_values: Sequence[tuple]
    """Per row, the chosen candidate's raw `payload_features` values."""
    rewards: Sequence[float]
    propensities: Sequence
    scores: np.ndarray
    """The chosen candidate's retrieval score."""
    bests: np.ndarray
    highers: np.ndarray
    """How many offered candidates score higher than the chosen one."""
    offered: np.ndarray


def _columns(rows: list[tuple], offered_scores: list[float], count: int) -> BatchColumns:
    """Columns from per-row tuples and the flat list of every offered score."""
    if len(rows) != count:
        raise ValueError("a trajectory's chosen candidate must be one of its candidates; validate it first")
    (texts, metadata, words, metadata_values, kinds, names, hints, payload_values, rewards, propensities,
     chosen_score, offered) = zip(*rows)
    scores, offered = np.array(offered_scores, dtype=np.float64), np.array(offered, dtype=np.int64)
    starts = np.cumsum(offered) - offered
    chosen_score = np.array(chosen_score, dtype=np.float64)
    return BatchColumns(texts, metadata, words, metadata_values, kinds, names, hints, payload_values, rewards,
                        propensities, chosen_score, np.maximum.reduceat(scores, starts),
                        np.add.reduceat(scores > np.repeat(chosen_score, offered), starts), offered)


def columns_of_documents(documents: Sequence[dict], config: LearnerConfig) -> BatchColumns:
    """Columns of validated plain trajectory documents (missing fields take the model's defaults)."""
    try:
        return _document_columns(documents, config)
    except KeyError:  # a document leaves out fields that have defaults: read them all with the defaults filled in
        return _document_columns([_completed(document) for document in documents], config)


def _completed(document: dict) -> dict:
    """A document with the optional fields the build reads set to their defaults when missing."""
    task, decision = document["task"], document["decision"]
    return {**document, "task": {"metadata": None, **task}, "decision": {"propensity": None, **decision},
            "candidates": [{"name": "", "score": 0.0, "payload": None, **candidate}
                           for candidate in document["candidates"]]}


def _document_columns(documents: Sequence[dict], config: LearnerConfig) -> BatchColumns:
    word_keys, metadata_keys, payload_keys = config.metadata_words, config.metadata_features, config.payload_features
    no_words, no_metadata, no_payload = (None,) * len(word_keys), (None,) * len(metadata_keys), (None,) * len(payload_keys)
    rows, offered_scores = [], []
    add_score = offered_scores.append
    for document in documents:
        task, decision, offer = document["task"], document["decision"], document["candidates"]
        chosen_id, chosen = decision["chosen_candidate_id"], None
        for candidate in offer:
            if candidate["candidate_id"] == chosen_id:
                chosen = candidate
            add_score(candidate["score"])
        if chosen is None:
            break
        metadata, payload = task["metadata"], chosen["payload"]
        rows.append((task["text"], metadata,
                     tuple(map(metadata.get, word_keys)) if word_keys and metadata else no_words,
                     tuple(map(metadata.get, metadata_keys)) if metadata_keys and metadata else no_metadata,
                     chosen["kind"], chosen["name"], payload.get("hint_reward") if payload else None,
                     tuple(map(payload.get, payload_keys)) if payload_keys and payload else no_payload,
                     document["outcome"]["reward"], decision["propensity"], chosen["score"], len(offer)))
    return _columns(rows, offered_scores, len(documents))


def columns_of_trajectories(trajectories: Sequence[Trajectory], config: LearnerConfig) -> BatchColumns:
    """Columns of trajectory models."""
    word_keys, metadata_keys, payload_keys = config.metadata_words, config.metadata_features, config.payload_features
    no_words, no_metadata, no_payload = (None,) * len(word_keys), (None,) * len(metadata_keys), (None,) * len(payload_keys)
    rows, offered_scores = [], []
    add_score = offered_scores.append
    for trajectory in trajectories:
        task, decision, offer = trajectory.task, trajectory.decision, trajectory.candidates
        chosen_id, chosen = decision.chosen_candidate_id, None
        for candidate in offer:
            if candidate.candidate_id == chosen_id:
                chosen = candidate
            add_score(candidate.score)
        if chosen is None:
            break
        metadata, payload = task.metadata, chosen.payload
        rows.append((task.text, metadata,
                     tuple(map(metadata.get, word_keys)) if word_keys and metadata else no_words,
                     tuple(map(metadata.get, metadata_keys)) if metadata_keys and metadata else no_metadata,
                     chosen.kind.value, chosen.name, payload.get("hint_reward") if payload else None,
                     tuple(map(payload.get, payload_keys)) if payload_keys and payload else no_payload,
                     trajectory.outcome.reward, decision.propensity, chosen.score, len(offer)))
    return _columns(rows, offered_scores, len(trajectories))


def _ids(values: list) -> tuple[np.ndarray, list]:
    """Each value's position among the distinct values (in order of first appearance), and the distinct values."""
    distinct = list(dict.fromkeys(values))
    position = {value: index for index, value in enumerate(distinct)}
    return np.fromiter(map(position.__getitem__, values), dtype=np.int64, count=len(values)), distinct


def _task_rows(columns: BatchColumns, config: LearnerConfig) -> tuple[np.ndarray, list, np.ndarray, list[str]]:
    """Each row's task-feature id (rows with equal text and metadata words share one), each id's features, and
    each row's text id with the distinct texts."""
    text_ids, texts = _ids(columns.texts)
    if not config.metadata_words:
        return text_ids, [task_features(text, None, config) for text in texts], text_ids, texts
    word_values = columns.word_values
    # True, 1 and 1.0 are equal keys but different words: tell them apart by type when such values occur
    if any(not set(map(type, column)) <= _TEXT_TYPES for column in zip(*word_values)):
        word_values = list(zip(word_values, *(list(map(type, column)) for column in zip(*word_values))))
    try:
        word_ids, _ = _ids(word_values)
    except TypeError:  # an unhashable metadata value: key on its text form, task_features ignores it anyway
        word_ids, _ = _ids([repr(values) for values in word_values])
    _, first_rows, feature_ids = np.unique(text_ids * (int(word_ids.max()) + 1) + word_ids, return_index=True,
                                           return_inverse=True)
    features = [task_features(columns.texts[row], columns.metadata[row], config) for row in first_rows.tolist()]
    return feature_ids.reshape(-1), features, text_ids, texts


def _overlaps(text_ids: np.ndarray, texts: list[str], name_ids: np.ndarray, names: list[str],
              buckets: int) -> np.ndarray:
    """Per row, the share of the chosen candidate's name tokens that occur in the task text."""
    pairs, pair_of_row = np.unique(text_ids * len(names) + name_ids, return_inverse=True)
    shares = []
    for pair in pairs.tolist():
        words, tokens = name_tokens(names[pair % len(names)]), task_words(texts[pair // len(names)], buckets)[2]
        shares.append(len(words & tokens) / len(words) if words else 0.0)
    return np.array(shares)[pair_of_row.reshape(-1)]


def _numbers(values: Sequence) -> np.ndarray:
    """Raw values as `numeric` reads them: a finite number (not a bool) as a float, anything else 0."""
    if set(map(type, values)) <= _NUMBER_TYPES:
        try:
            numbers = np.array([value or 0.0 for value in values], dtype=np.float64)
        except OverflowError:
            pass
        else:
            numbers[~np.isfinite(numbers)] = 0.0
            return numbers
    return np.array([numeric({"value": value}, "value") for value in values], dtype=np.float64)


def dense_columns(columns: BatchColumns, config: LearnerConfig, overlaps: np.ndarray) -> np.ndarray:
    """The fixed columns after the task words (`DENSE_NAMES`, then metadata and payload features), one row each."""
    count = len(columns.texts)
    dense = np.empty((count, config.size - config.dense_start))
    dense[:, 0] = 1.0
    dense[:, 1] = columns.scores
    dense[:, 2] = columns.scores - columns.bests
    higher, offered = columns.highers.astype(np.float64), columns.offered.astype(np.float64)
    dense[:, 3] = higher == 0
    dense[:, 4] = np.divide(higher, offered - 1, out=np.zeros(count), where=offered > 1)
    dense[:, 5] = _numbers(columns.hints)
    dense[:, 6] = overlaps
    extras = [*zip(*columns.metadata_values), *zip(*columns.payload_values)]
    for column, values in enumerate(extras, len(DENSE_NAMES)):
        dense[:, column] = _numbers(values)
    return dense


def _row_weights(columns: BatchColumns, config: LearnerConfig, factors: np.ndarray | None) -> np.ndarray:
    """Each row's weight: min(1/propensity, max_importance_weight) ** importance_power (1 without a propensity),
    times its decay factor."""
    propensity = np.array([value or 0.0 for value in columns.propensities], dtype=np.float64)
    inverse = np.divide(1.0, propensity, out=np.ones_like(propensity), where=propensity > 0)
    weight = np.minimum(inverse, config.max_importance_weight) ** config.importance_power
    return weight if factors is None else weight * np.asarray(factors, dtype=np.float64)


def _identity_slots(columns: BatchColumns, config: LearnerConfig, name_ids: np.ndarray,
                    names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted identity buckets the rows were filed under, and each row's position among them."""
    kind_ids, kinds = _ids(columns.kinds)
    identities, identity_of_row = np.unique(kind_ids * len(names) + name_ids, return_inverse=True)
    bucket = np.array([identity_key(kinds[identity // len(names)], names[identity % len(names)], config.id_buckets)
                       for identity in identities.tolist()], dtype=np.int64)
    keys, slot = np.unique(bucket[identity_of_row.reshape(-1)], return_inverse=True)
    return keys, slot.reshape(-1)


def accumulate(columns: BatchColumns, config: LearnerConfig, factors: np.ndarray | None = None):
    """Per identity bucket (sorted keys): G, m, weight sum, sum w r^2 and row count of the batch's rows, each row
    weighted by its clipped inverse propensity times `factors`."""
    with threadpool_limits(limits=1, user_api="blas"):  # small products: extra BLAS threads only spin
        return _accumulate(columns, config, factors)


def _accumulate(columns: BatchColumns, config: LearnerConfig, factors: np.ndarray | None):
    size, buckets, base = config.size, config.task_buckets, config.dense_start
    feature_ids, features, text_ids, texts = _task_rows(columns, config)
    name_ids, names = _ids(columns.names)
    keys, slot = _identity_slots(columns, config, name_ids, names)
    dense = dense_columns(columns, config, _overlaps(text_ids, texts, name_ids, names, buckets))
    weight, reward = _row_weights(columns, config, factors), np.array(columns.rewards, dtype=np.float64)
    slots = len(keys)

    # the word rows of every distinct task, and the rows' sums per (bucket, task) pair
    lengths = np.array([len(indices) for indices, _, _ in features], dtype=np.int64)
    word_matrix = np.zeros((len(features), buckets))
    word_matrix[np.repeat(np.arange(len(features)), lengths),
                np.array([index for indices, _, _ in features for index in indices], dtype=np.int64)] = \
        np.repeat(np.array([value for _, value, _ in features]), lengths)
    pairs, pair_of_row = np.unique(slot * len(features) + feature_ids, return_inverse=True)
    pair_of_row, pair_count = pair_of_row.reshape(-1), len(pairs)
    pair_start = np.searchsorted(pairs // len(features), np.arange(slots + 1))
    pair_words = word_matrix[pairs % len(features)]
    multipliers = [np.ones(len(weight))] + ([columns.scores] if config.score_cross else [])
    blocks = [(first * buckets, weight * multiplier) for first, multiplier in enumerate(multipliers)]

    def pair_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(pair_of_row, values, pair_count)

    pair_weight = {(left, right): pair_sum(row_weight * multiplier)
                   for left, row_weight in blocks for right, multiplier in zip((b for b, _ in blocks), multipliers)}
    pair_dense = {left: np.stack([pair_sum(row_weight * column) for column in dense.T], axis=1)
                  for left, row_weight in blocks}
    pair_reward = {left: pair_sum(row_weight * reward) for left, row_weight in blocks}

    order = np.argsort(slot, kind="stable")
    row_start = np.searchsorted(slot[order], np.arange(slots + 1))
    dense_sorted, weighted_sorted = dense[order], (dense * weight[:, None])[order]
    reward_sorted = reward[order]
    gram, moment = np.zeros((slots, size, size)), np.zeros((slots, size))
    for at in range(slots):
        rows = slice(row_start[at], row_start[at + 1])
        part = slice(pair_start[at], pair_start[at + 1])
        words = pair_words[part]
        gram[at, base:, base:] = weighted_sorted[rows].T @ dense_sorted[rows]
        moment[at, base:] = weighted_sorted[rows].T @ reward_sorted[rows]
        for (left, right), sums in pair_weight.items():
            gram[at, left:left + buckets, right:right + buckets] = (words * sums[part, None]).T @ words
        for left, sums in pair_dense.items():
            cross = words.T @ sums[part]
            gram[at, left:left + buckets, base:] = cross
            gram[at, base:, left:left + buckets] = cross.T
            moment[at, left:left + buckets] = words.T @ pair_reward[left][part]
    return (keys.astype(np.int64), gram, moment, np.bincount(slot, weight, slots),
            np.bincount(slot, weight * reward * reward, slots), np.bincount(slot, minlength=slots).astype(np.int64))
