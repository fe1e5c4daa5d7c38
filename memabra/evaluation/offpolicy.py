"""Off-policy estimators (IPS, SNIPS, direct method, doubly robust) with seeded bootstrap intervals.

Every estimator is a ratio of sums of per-decision terms, so one bootstrap serves them all; resamples depend only
on the seed and the sample size, which pairs two routers' estimates on the same log for their delta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 1000
DEFAULT_MAX_WEIGHT = 50.0
"""Importance weights (target probability / logged propensity) are capped here; capped ones are counted."""
_BOOTSTRAP_CHUNK_CELLS = 2_000_000
"""Resample indices drawn at once (resamples x sample size), bounding the bootstrap's memory."""
_COUNTS_CACHE: dict[tuple[int, int, int], list[np.ndarray]] = {}
_COUNTS_CACHE_SIZE = 4
_COUNTS_CACHE_CELLS = 2_000_000
"""Resample counts are kept for the last few samples of at most this many cells (resamples x sample size)."""


@dataclass(frozen=True)
class Estimate:
    """A policy-value estimate with its bootstrap interval, effective sample size and what was clipped."""

    estimate: float
    low: float
    high: float
    ess: float
    count: int
    clipped_count: int = 0
    level: float = DEFAULT_LEVEL
    seed: int = 0
    replicates: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    def to_dict(self) -> dict[str, float]:
        """The reported form: estimate, interval bounds and effective sample size."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "ess": self.ess}


def importance_weights(logged_propensities, target_probabilities,
                       max_weight: float = DEFAULT_MAX_WEIGHT) -> tuple[np.ndarray, int]:
    """Target probability over logged propensity per decision, capped at `max_weight`; also how many were capped.

    A zero, negative or non-finite propensity counts as infinitely small: its weight is the cap (or 0 when the
    evaluated policy would never take the logged action).
    """
    propensities = np.asarray(logged_propensities, dtype=np.float64)
    targets = _probabilities(target_probabilities, "target_probabilities")
    if propensities.shape != targets.shape:
        raise ValueError(f"logged_propensities has shape {propensities.shape}, target_probabilities {targets.shape}")
    if not max_weight > 0:
        raise ValueError("max_weight must be positive")
    usable = np.isfinite(propensities) & (propensities > 0)
    raw = np.where(usable, targets / np.where(usable, propensities, 1.0), np.where(targets > 0, np.inf, 0.0))
    clipped = raw > max_weight
    return np.minimum(raw, max_weight), int(clipped.sum())


def effective_sample_size(weights) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2; 0 when every weight is 0."""
    weights = np.asarray(weights, dtype=np.float64)
    squares = float(weights @ weights)
    return float(weights.sum() ** 2 / squares) if squares > 0 else 0.0


def ips(rewards, logged_propensities, target_probabilities, *, level: float = DEFAULT_LEVEL,
        resamples: int = DEFAULT_RESAMPLES, seed: int = 0, max_weight: float = DEFAULT_MAX_WEIGHT) -> Estimate:
    """Inverse propensity scoring: the mean of weight x reward."""
    rewards = _rewards(rewards)
    weights, clipped = importance_weights(logged_propensities, target_probabilities, max_weight)
    _same_length(rewards, weights)
    return _ratio_estimate(weights * rewards, np.ones_like(rewards), effective_sample_size(weights), clipped,
                           level, resamples, seed)


def snips(rewards, logged_propensities, target_probabilities, *, level: float = DEFAULT_LEVEL,
          resamples: int = DEFAULT_RESAMPLES, seed: int = 0, max_weight: float = DEFAULT_MAX_WEIGHT) -> Estimate:
    """Self-normalised IPS: sum of weight x reward over sum of weights (0 when no weight is positive)."""
    rewards = _rewards(rewards)
    weights, clipped = importance_weights(logged_propensities, target_probabilities, max_weight)
    _same_length(rewards, weights)
    return _ratio_estimate(weights * rewards, weights, effective_sample_size(weights), clipped,
                           level, resamples, seed)


def direct_method(reward_predictions, target_distribution, *, level: float = DEFAULT_LEVEL,
                  resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Estimate:
    """The reward model's value of the evaluated policy: mean over decisions of sum_a pi(a|x) r_hat(x, a).

    Both arrays are (decisions x candidates); pad rows with fewer candidates with probability 0. Its effective
    sample size is the number of decisions (it uses no importance weights).
    """
    model_values = _model_values(reward_predictions, target_distribution)
    return _ratio_estimate(model_values, np.ones_like(model_values), float(len(model_values)), 0,
                           level, resamples, seed)


def doubly_robust(rewards, logged_propensities, target_probabilities, reward_predictions, target_distribution,
                  logged_actions, *, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                  max_weight: float = DEFAULT_MAX_WEIGHT) -> Estimate:
    """The direct method corrected by the importance-weighted error of the reward model on the logged action."""
    rewards = _rewards(rewards)
    weights, clipped = importance_weights(logged_propensities, target_probabilities, max_weight)
    model_values = _model_values(reward_predictions, target_distribution)
    predictions = np.asarray(reward_predictions, dtype=np.float64)
    actions = np.asarray(logged_actions, dtype=np.int64)
    _same_length(rewards, weights, model_values, actions)
    if len(actions) and (actions.min() < 0 or actions.max() >= predictions.shape[1]):
        raise ValueError("logged_actions must index columns of reward_predictions")
    logged_predictions = predictions[np.arange(len(actions)), actions]
    if not np.isfinite(logged_predictions).all():
        raise ValueError("reward_predictions must be finite for every logged action")
    terms = model_values + weights * (rewards - logged_predictions)
    return _ratio_estimate(terms, np.ones_like(terms), effective_sample_size(weights), clipped,
                           level, resamples, seed)


def mean_interval(values, *, level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES,
                  seed: int = 0) -> Estimate:
    """The mean of per-item values (e.g. paired reward differences) with its bootstrap interval."""
    values = _rewards(values)
    return _ratio_estimate(values, np.ones_like(values), float(len(values)), 0, level, resamples, seed)


def delta(baseline: Estimate, challenger: Estimate) -> Estimate:
    """Challenger minus baseline, paired: both estimates must come from the same log, seed and resamples."""
    if (baseline.count, baseline.seed, baseline.level, len(baseline.replicates)) != (
            challenger.count, challenger.seed, challenger.level, len(challenger.replicates)):
        raise ValueError("a paired delta needs two estimates over the same log with the same seed, level, resamples")
    replicates = challenger.replicates - baseline.replicates
    estimate, ess = challenger.estimate - baseline.estimate, min(baseline.ess, challenger.ess)
    low, high = _widened(estimate, *_percentile_interval(replicates, challenger.level), ess, challenger.count,
                         challenger.level)
    return Estimate(estimate, low, high, ess,
                    challenger.count, baseline.clipped_count + challenger.clipped_count, challenger.level,
                    challenger.seed, replicates)


def _ratio_estimate(numerators: np.ndarray, denominators: np.ndarray, ess: float, clipped: int,
                    level: float, resamples: int, seed: int) -> Estimate:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} must lie strictly between 0 and 1")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    count = len(numerators)
    if count == 0:
        raise ValueError("no decisions to estimate from")
    point = _safe_ratio(numerators.sum(), denominators.sum())
    replicates = np.empty(resamples)
    start = 0
    for counts in _resample_counts(seed, count, resamples):
        size = len(counts)
        replicates[start:start + size] = _safe_ratio(counts @ numerators, counts @ denominators)
        start += size
    low, high = _widened(float(point), *_percentile_interval(replicates, level), ess, count, level)
    return Estimate(float(point), low, high, ess, count, clipped, level, seed, replicates)


def _resample_counts(seed: int, count: int, resamples: int):
    """How often each item is drawn in each resample, in chunks of (resamples x count); kept for the last few
    small (seed, count, resamples), since every estimator of one comparison draws the same resamples."""
    key = (seed, count, resamples)
    if key in _COUNTS_CACHE:
        return _COUNTS_CACHE[key]
    chunks = _draw_counts(seed, count, resamples)
    if resamples * count > _COUNTS_CACHE_CELLS:
        return chunks
    if len(_COUNTS_CACHE) >= _COUNTS_CACHE_SIZE:
        _COUNTS_CACHE.pop(next(iter(_COUNTS_CACHE)))
    _COUNTS_CACHE[key] = list(chunks)
    return _COUNTS_CACHE[key]


def _draw_counts(seed: int, count: int, resamples: int):
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // count)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        indices = rng.integers(0, count, size=(size, count))
        flat = (np.arange(size)[:, None] * count + indices).ravel()
        yield np.bincount(flat, minlength=size * count).reshape(size, count).astype(np.float64)


def _safe_ratio(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    nonzero = denominator != 0
    return np.divide(numerator, np.where(nonzero, denominator, 1.0)) * nonzero


def _widened(estimate: float, low: float, high: float, ess: float, count: int, level: float) -> tuple[float, float]:
    """The percentile interval stretched about the estimate by Student's t with ESS - 1 degrees of freedom over the
    normal quantile (and sqrt(n / (n - 1))): an importance-weighted mean's spread is learnt from about ESS
    decisions, and from a few large weights the bootstrap underestimates it."""
    if count < 2:
        return low, high
    tail = 1.0 - (1.0 - level) / 2.0
    factor = (student_t_quantile(tail, max(ess - 1.0, 1.0)) / NormalDist().inv_cdf(tail)
              * math.sqrt(count / (count - 1.0)))
    return estimate - (estimate - low) * factor, estimate + (high - estimate) * factor


@lru_cache(maxsize=1024)
def _t_quantile(probability: float, degrees: float) -> float:
    grid = np.linspace(0.0, 1.0, 4001)
    log_norm = (math.lgamma((degrees + 1.0) / 2.0) - math.lgamma(degrees / 2.0)
                - 0.5 * math.log(degrees * math.pi))
    low, high = 0.0, 1.0
    while _t_cdf(high, degrees, grid, log_norm) < probability:
        low, high = high, high * 2.0
    for _ in range(60):
        middle = (low + high) / 2.0
        low, high = (middle, high) if _t_cdf(middle, degrees, grid, log_norm) < probability else (low, middle)
    return (low + high) / 2.0


def _t_cdf(value: float, degrees: float, grid: np.ndarray, log_norm: float) -> float:
    points = grid * value
    density = np.exp(log_norm - (degrees + 1.0) / 2.0 * np.log1p(points * points / degrees))
    return 0.5 + float(np.trapezoid(density, points))


def student_t_quantile(probability: float, degrees: float) -> float:
    """Student's t quantile for probability in [0.5, 1) and any positive degrees of freedom (numerically)."""
    if not 0.5 <= probability < 1.0 or not degrees > 0:
        raise ValueError("student_t_quantile needs 0.5 <= probability < 1 and positive degrees of freedom")
    if degrees > 1e4:
        return NormalDist().inv_cdf(probability)
    return _t_quantile(round(probability, 12), round(float(degrees), 2))


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def _rewards(rewards) -> np.ndarray:
    values = np.asarray(rewards, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("rewards must be a one-dimensional array")
    if not np.isfinite(values).all():
        raise ValueError("rewards must be finite numbers")
    return values


def _probabilities(probabilities, name: str) -> np.ndarray:
    values = np.asarray(probabilities, dtype=np.float64)
    if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 1 + 1e-9).all()):
        raise ValueError(f"{name} must be probabilities between 0 and 1")
    return values


def _model_values(reward_predictions, target_distribution) -> np.ndarray:
    predictions = np.asarray(reward_predictions, dtype=np.float64)
    distribution = _probabilities(target_distribution, "target_distribution")
    if predictions.ndim != 2 or predictions.shape != distribution.shape:
        raise ValueError("reward_predictions and target_distribution must both be (decisions x candidates)")
    taken = distribution > 0
    if not np.isfinite(predictions[taken]).all():
        raise ValueError("reward_predictions must be finite wherever the evaluated policy may act")
    return (distribution * np.where(taken, predictions, 0.0)).sum(axis=1)


def _same_length(*arrays: np.ndarray) -> None:
    lengths = {len(array) for array in arrays}
    if len(lengths) > 1:
        raise ValueError(f"arrays differ in length: {sorted(lengths)}")
