"""The learner's statistics built for a whole batch at once from the columns one pass read (`stats_columns`);
numpy does the sums (G = sum w x x^T, m = sum w x r, ... per identity bucket).

Rows that share a task text and an identity bucket share their task-word columns, so the word blocks are summed
per (bucket, text) pair first and each bucket's blocks are a few matrix products over its distinct texts; the
result equals the row-by-row sums up to floating-point rounding.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

import numpy as np

from memabra.learning.pair_features import (
    DENSE_NAMES, LearnerConfig, identity_key, name_tokens, numeric, task_features,
)
from memabra.learning.stats_columns import BatchColumns, value_columns
from memabra.learning.threads import single_threaded_blas

_TEXT_TYPES = {str, type(None)}
_NUMBER_TYPES = {int, float, type(None)}
_NONE_TYPE, _FLOAT_TYPE = {type(None)}, {float}
_FEATURE_CACHE: dict[tuple, dict] = {}
"""Task features by the key rows are grouped on, per feature setting: segments of one store share most texts."""
_FEATURE_CACHE_LIMIT = 100_000
_INDICES, _VALUE = operator.itemgetter(0), operator.itemgetter(1)
_OVERLAPS: dict[tuple[frozenset, frozenset], float] = {}
"""Name-token share by (name tokens, task tokens)."""


def _first_rows(keys, count: int) -> np.ndarray:
    """Per row, the index of the first row whose key equals its own (one hash per key, in C)."""
    seen: dict = {}
    return np.fromiter(map(seen.setdefault, keys, itertools.count()), dtype=np.int64, count=count)


def _task_rows(columns: BatchColumns, config: LearnerConfig) -> tuple[np.ndarray, list]:
    """Each row's task-feature id (rows with equal text and metadata words share one) and each id's features."""
    texts, count, word_count = columns.texts, len(columns.texts), len(config.metadata_words)
    words = columns.word_values
    if not word_count:
        mode, keys = "text", texts
    else:
        values = itertools.chain.from_iterable(words) if word_count > 1 else words
        # True, 1 and 1.0 are equal keys but different words: tell them apart by type when such values occur
        if not set(map(type, values)) <= _TEXT_TYPES:
            mode, keys = "typed", list(zip(texts, words, *(map(type, column)
                                                          for column in value_columns(words, word_count))))
        else:
            mode, keys = "words", None  # (text, words) pairs, made again for the first rows only
    try:
        first_of_row = _first_rows(zip(texts, words) if keys is None else keys, count)
    except TypeError:  # an unhashable metadata value: key on its text form, task_features ignores it anyway
        mode, keys = "repr", list(zip(texts, map(repr, words)))
        first_of_row = _first_rows(keys, count)
    first_rows, feature_ids = np.unique(first_of_row, return_inverse=True)
    cache = _FEATURE_CACHE.setdefault((config.task_buckets, config.metadata_words, mode), {})
    if len(cache) > _FEATURE_CACHE_LIMIT:
        cache.clear()
    features, metadata = [], columns.metadata
    for row in first_rows.tolist():
        key = (texts[row], words[row]) if keys is None else keys[row]
        found = cache.get(key)
        if found is None:
            found = cache[key] = task_features(texts[row], metadata[row], config)
        features.append(found)
    return feature_ids.reshape(-1), features


def _overlaps(identity_of_row: np.ndarray, name_sets: list[frozenset[str]], feature_ids: np.ndarray,
              features: list) -> np.ndarray:
    """Per row, the share of the chosen candidate's name tokens that occur in the task text."""
    pairs, pair_of_row = np.unique(identity_of_row * len(features) + feature_ids, return_inverse=True)
    shares, known = [], _OVERLAPS
    if len(known) > _FEATURE_CACHE_LIMIT:
        known.clear()
    for identity, feature in zip(*(part.tolist() for part in np.divmod(pairs, len(features)))):
        key = name_sets[identity], features[feature][2]
        share = known.get(key)
        if share is None:
            words = key[0]
            share = known[key] = len(words & key[1]) / len(words) if words else 0.0
        shares.append(share)
    return np.array(shares)[pair_of_row.reshape(-1)]


def _numbers(values: Sequence) -> np.ndarray:
    """Raw values as `numeric` reads them: a finite number (not a bool) as a float, anything else 0."""
    types = set(map(type, values))
    if types <= _NUMBER_TYPES:
        if types == _NONE_TYPE:
            return np.zeros(len(values))
        try:
            numbers = np.fromiter(values if types == _FLOAT_TYPE else [value or 0.0 for value in values],
                                  dtype=np.float64, count=len(values))
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
    extras = [*value_columns(columns.metadata_values, len(config.metadata_features)),
              *value_columns(columns.payload_values, len(config.payload_features))]
    for column, values in enumerate(extras, len(DENSE_NAMES)):
        dense[:, column] = _numbers(values)
    return dense


def _row_weights(columns: BatchColumns, config: LearnerConfig, factors: np.ndarray | None) -> np.ndarray:
    """Each row's weight: min(1/propensity, max_importance_weight) ** importance_power (1 without a propensity),
    times its decay factor."""
    propensity = _numbers(columns.propensities)  # a missing propensity reads 0, so the row weighs 1
    inverse = np.divide(1.0, propensity, out=np.ones_like(propensity), where=propensity > 0)
    weight = np.minimum(inverse, config.max_importance_weight) ** config.importance_power
    return weight if factors is None else weight * np.asarray(factors, dtype=np.float64)


def _identities(columns: BatchColumns, config: LearnerConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """The sorted identity buckets the rows were filed under, each row's position among them, each row's identity
    (kind and name) id and each identity's name tokens."""
    first_of_row = _first_rows(zip(columns.kinds, columns.names), len(columns.kinds))
    first_rows, identity_of_row = np.unique(first_of_row, return_inverse=True)
    kinds, names = columns.kinds, columns.names
    bucket = np.array([identity_key(kinds[row], names[row], config.id_buckets) for row in first_rows.tolist()],
                      dtype=np.int64)
    keys, slot_of_identity = np.unique(bucket, return_inverse=True)
    identity_of_row = identity_of_row.reshape(-1)
    return (keys, slot_of_identity.reshape(-1)[identity_of_row], identity_of_row,
            [name_tokens(names[row]) for row in first_rows.tolist()])


def accumulate(columns: BatchColumns, config: LearnerConfig, factors: np.ndarray | None = None):
    """Per identity bucket (sorted keys): G, m, weight sum, sum w r^2 and row count of the batch's rows, each row
    weighted by its clipped inverse propensity times `factors`."""
    with single_threaded_blas():  # small products: extra BLAS threads only spin
        return _accumulate(columns, config, factors)


def _accumulate(columns: BatchColumns, config: LearnerConfig, factors: np.ndarray | None):
    size, buckets, base = config.size, config.task_buckets, config.dense_start
    feature_ids, features = _task_rows(columns, config)
    keys, slot, identity_of_row, name_sets = _identities(columns, config)
    dense = dense_columns(columns, config, _overlaps(identity_of_row, name_sets, feature_ids, features))
    weight = _row_weights(columns, config, factors)
    reward = np.fromiter(columns.rewards, dtype=np.float64, count=len(columns.rewards))
    slots = len(keys)

    # the word rows of every distinct task, and the rows' sums per (bucket, task) pair
    lengths = np.fromiter(map(len, map(_INDICES, features)), dtype=np.int64, count=len(features))
    word_matrix = np.zeros((len(features), buckets))
    word_matrix[np.repeat(np.arange(len(features)), lengths),
                np.fromiter(itertools.chain.from_iterable(map(_INDICES, features)), dtype=np.int64,
                            count=int(lengths.sum()))] = \
        np.repeat(np.fromiter(map(_VALUE, features), dtype=np.float64, count=len(features)), lengths)
    pairs, pair_of_row = np.unique(slot * len(features) + feature_ids, return_inverse=True)
    pair_of_row, pair_count = pair_of_row.reshape(-1), len(pairs)
    pair_start = np.searchsorted(pairs // len(features), np.arange(slots + 1))
    pair_words = word_matrix[pairs % len(features)]
    multipliers = [None] + ([columns.scores] if config.score_cross else [])
    blocks = [(first * buckets, weight if multiplier is None else weight * multiplier)
              for first, multiplier in enumerate(multipliers)]

    def pair_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(pair_of_row, values, pair_count)

    pair_weight = {(left, right): pair_sum(row_weight if multiplier is None else row_weight * multiplier)
                   for left, row_weight in blocks for right, multiplier in zip((b for b, _ in blocks), multipliers)}
    # a diagonal block with weight sums >= 0 is Y^T Y with Y = words * sqrt(sum): half the work of X^T X (syrk)
    rooted = {pair: pair_words * np.sqrt(sums)[:, None] for pair, sums in pair_weight.items()
              if pair[0] == pair[1] and sums.min(initial=0.0) >= 0}
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
            if (left, right) in rooted:
                scaled = rooted[left, right][part]
                gram[at, left:left + buckets, right:right + buckets] = scaled.T @ scaled
            else:
                gram[at, left:left + buckets, right:right + buckets] = (words * sums[part, None]).T @ words
        for left, sums in pair_dense.items():
            cross = words.T @ sums[part]
            gram[at, left:left + buckets, base:] = cross
            gram[at, base:, left:left + buckets] = cross.T
            moment[at, left:left + buckets] = words.T @ pair_reward[left][part]
    return (keys.astype(np.int64), gram, moment, np.bincount(slot, weight, slots),
            np.bincount(slot, weight * reward * reward, slots), np.bincount(slot, minlength=slots).astype(np.int64))
