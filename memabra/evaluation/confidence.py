"""Anytime-valid confidence sequences for a mean: betting (hedged capital) and empirical Bernstein.

Both stay valid however often they are looked at: an interval read after every batch covers the true mean at all
of those times at once with the stated probability (Waudby-Smith & Ramdas, "Estimating means of bounded random
variables by betting", 2023). Bootstrap percentile intervals do not, and undercover when rare rewards carry large
importance weights; these keep coverage there. Results offer `estimate`, `low`, `high` like offpolicy.Estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_GRID_SIZE = 1001
"""Candidate means the betting sequence tracks; bounds are rounded outward to the grid."""
MAX_BET = 0.75
"""Largest fraction of the safe bet (the one that could lose all capital) ever staked."""
MAX_LEVEL = 0.9999
"""Highest level an interval may be read at: candidate means refuted beyond it are no longer tracked (speed)."""
_CELLS_PER_CHUNK = 400_000
_MAX_ROWS_PER_CHUNK = 100
"""Refuted candidate means stop being tracked after each chunk of at most this many observations."""
"""Observations x grid points evaluated at once, bounding memory on large one-shot inputs."""


@dataclass(frozen=True)
class SequenceInterval:
    """A mean's estimate with its anytime-valid interval (the fields an offpolicy.Estimate offers)."""

    estimate: float
    low: float
    high: float
    level: float
    count: int
    method: str

    @property
    def ess(self) -> float:
        """Every observation counts once (weights, if any, are inside the observations)."""
        return float(self.count)

    def to_dict(self) -> dict[str, float]:
        """The reported form, the same keys as offpolicy.Estimate.to_dict."""
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "ess": self.ess}


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} must lie strictly between 0 and 1")
    return 1.0 - level


def _observations(values, low: float, high: float) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(array).all():
        raise ValueError("observations must be finite numbers")
    if array.size and (array.min() < low - 1e-12 or array.max() > high + 1e-12):
        raise ValueError(f"observations must lie in [{low:g}, {high:g}]; found {array.min():g}..{array.max():g} "
                         "(widen the reward range in the settings)")
    return np.clip(array, low, high)


class BettingSequence:
    """Hedged-capital betting confidence sequence for the mean of observations in [low, high].

    For every candidate mean m on a grid, two gamblers bet that the mean is above / below m with predictable
    plug-in bets (the approximate growth-rate-optimal stake from the running mean and variance of earlier
    observations, capped so no loss can exceed MAX_BET of the capital). Their average capital is a nonnegative
    martingale when m is the true mean, so by Ville's inequality the set of m whose capital never reached 1/alpha
    is a (1 - alpha) confidence sequence at every level at once. `high` may be infinite (nonnegative importance-
    weighted terms): then only the upward gambler plays and the sequence bounds the mean from below.
    """

    def __init__(self, low: float, high: float = math.inf, *, mean_low: float | None = None,
                 mean_high: float | None = None, grid_size: int = DEFAULT_GRID_SIZE, max_bet: float = MAX_BET):
        if not math.isfinite(low) or not high > low:
            raise ValueError(f"the range [{low}, {high}] must have a finite low end below its high end")
        self.low, self.high = float(low), float(high)
        self.mean_low = self.low if mean_low is None else float(mean_low)
        self.mean_high = self.high if mean_high is None else float(mean_high)
        if not (math.isfinite(self.mean_high) and self.low <= self.mean_low < self.mean_high <= self.high):
            raise ValueError("the mean's range must be finite and lie inside the observations' range")
        if not 0.0 < max_bet < 1.0:
            raise ValueError("max_bet must lie strictly between 0 and 1")
        if grid_size < 3:
            raise ValueError("grid_size must be at least 3")
        self.one_sided = not math.isfinite(self.high)
        self.grid = np.linspace(self.mean_low, self.mean_high, grid_size)
        self.step = self.grid[1] - self.grid[0]
        self.count = 0
        self._sum = 0.0
        self._residuals = 0.0
        self._prior_mean = (self.mean_low + self.mean_high) / 2.0
        self._prior_variance = ((self.mean_high - self.mean_low) / 2.0) ** 2
        self._log_up = np.zeros(grid_size)
        self._log_down = np.zeros(grid_size)
        self._log_best = np.full(grid_size, -np.inf)
        self._active = slice(0, grid_size)
        with np.errstate(divide="ignore"):
            self._cap_up = max_bet / (self.grid - self.low)
            self._cap_down = np.zeros(grid_size) if self.one_sided else max_bet / (self.high - self.grid)

    def update(self, values) -> "BettingSequence":
        """Add a batch of observations (in order); costs batch size x grid size."""
        values = _observations(values, self.low, self.high)
        start = 0
        while start < len(values):
            width = self._active.stop - self._active.start
            rows = max(1, min(_MAX_ROWS_PER_CHUNK, _CELLS_PER_CHUNK // max(width, 1)))
            self._update_chunk(values[start:start + rows])
            start += rows
        return self

    def _update_chunk(self, values: np.ndarray) -> None:
        size = len(values)
        if not size:
            return
        seen_before = self.count + np.arange(size)
        sums_before = self._sum + np.cumsum(values) - values
        means_before = (self._prior_mean + sums_before) / (1.0 + seen_before)
        squared = (values - means_before) ** 2
        residuals_before = self._residuals + np.cumsum(squared) - squared
        variances_before = (self._prior_variance + residuals_before) / (1.0 + seen_before)
        active = self._active
        if self.one_sided:  # stakes are 0 at candidate means above every running mean: their capital stays put
            stop = min(active.stop, int(np.searchsorted(self.grid, means_before.max(), side="right")) + 1)
            active = slice(active.start, max(active.start, stop))
        grid = self.grid[active]
        gaps = means_before[:, None] - grid[None, :]
        stakes = gaps / (variances_before[:, None] + gaps ** 2)
        deviations = values[:, None] - grid[None, :]
        up = np.log1p(np.clip(stakes, 0.0, self._cap_up[active]) * deviations)
        log_up = self._log_up[active] + np.cumsum(up, axis=0)
        if self.one_sided:
            hedged = log_up
        else:
            down = np.log1p(-np.clip(-stakes, 0.0, self._cap_down[active]) * deviations)
            log_down = self._log_down[active] + np.cumsum(down, axis=0)
            hedged = np.logaddexp(log_up, log_down) - math.log(2.0)
            self._log_down[active] = log_down[-1]
        self._log_up[active] = log_up[-1]
        self._log_best[active] = np.maximum(self._log_best[active], hedged.max(axis=0))
        alive = np.flatnonzero(self._log_best < -math.log(1.0 - MAX_LEVEL))
        self._active = slice(int(alive[0]), int(alive[-1]) + 1) if alive.size else slice(0, 0)
        self.count += size
        self._sum += float(values.sum())
        self._residuals += float(squared.sum())

    @property
    def mean(self) -> float:
        """The plain mean of the observations so far (the middle of the mean's range before any)."""
        return self._sum / self.count if self.count else self._prior_mean

    def interval(self, level: float = DEFAULT_LEVEL) -> SequenceInterval:
        """The candidate means no gambler has yet refuted at this level (one-sided: high is the mean's top)."""
        alpha = _check_level(level)
        if level > MAX_LEVEL:
            raise ValueError(f"level {level} is above the highest level tracked, {MAX_LEVEL}")
        kept = np.flatnonzero(self._log_best < math.log(1.0 / alpha))
        if not kept.size:  # every candidate refuted (probability <= alpha): keep the least refuted one
            kept = np.array([int(np.argmin(self._log_best))])
        low = max(self.mean_low, self.grid[kept[0]] - self.step)
        high = self.mean_high if self.one_sided else min(self.mean_high, self.grid[kept[-1]] + self.step)
        estimate = min(max(self.mean, low), high)
        return SequenceInterval(float(estimate), float(low), float(high), level, self.count,
                                "betting-lower" if self.one_sided else "betting")


class EmpiricalBernsteinSequence:
    """Predictable-plug-in empirical-Bernstein confidence sequence for the mean of observations in [low, high].

    Cheap (constant work per observation) and valid at every look; wider than betting on most data. Bets are tuned
    for `design_level`; reading another level stays valid, only less tight.
    """

    def __init__(self, low: float, high: float, *, design_level: float = DEFAULT_LEVEL, max_bet: float = 0.5):
        if not (math.isfinite(low) and math.isfinite(high) and high > low):
            raise ValueError(f"the range [{low}, {high}] must be finite with low below high")
        self.low, self.high = float(low), float(high)
        self._design_log = math.log(2.0 / _check_level(design_level))
        self._max_bet = max_bet
        self.count = 0
        self._sum = 0.0
        self._residuals = 0.0
        self._bet_sum = 0.0
        self._bet_weighted_sum = 0.0
        self._penalty = 0.0
        self._looks: list[tuple[float, float, float]] = []

    def update(self, values) -> "EmpiricalBernsteinSequence":
        """Add a batch of observations (in order); one look is recorded at the batch's end."""
        values = (_observations(values, self.low, self.high) - self.low) / (self.high - self.low)
        size = len(values)
        if not size:
            return self
        seen_before = self.count + np.arange(size)
        sums_before = self._sum + np.cumsum(values) - values
        means_before = (0.5 + sums_before) / (1.0 + seen_before)
        squared = (values - means_before) ** 2
        variances_before = (0.25 + self._residuals + np.cumsum(squared) - squared) / (1.0 + seen_before)
        times = seen_before + 1.0
        bets = np.minimum(np.sqrt(2.0 * self._design_log / (variances_before * times * np.log1p(times))),
                          self._max_bet)
        psi = (-np.log1p(-bets) - bets) / 4.0
        self._bet_sum += float(bets.sum())
        self._bet_weighted_sum += float((bets * values).sum())
        self._penalty += float((4.0 * squared * psi).sum())
        self.count += size
        self._sum += float(values.sum())
        self._residuals += float(squared.sum())
        self._looks.append((self._bet_sum, self._bet_weighted_sum, self._penalty))
        return self

    @property
    def mean(self) -> float:
        """The plain mean of the observations so far (the range's middle before any)."""
        unit = self._sum / self.count if self.count else 0.5
        return self.low + unit * (self.high - self.low)

    def interval(self, level: float = DEFAULT_LEVEL) -> SequenceInterval:
        """The intersection of every look's interval at this level."""
        threshold = math.log(2.0 / _check_level(level))
        low, high = 0.0, 1.0
        for bet_sum, weighted, penalty in self._looks:
            centre, radius = weighted / bet_sum, (threshold + penalty) / bet_sum
            low, high = max(low, centre - radius), min(high, centre + radius)
        if low > high:  # the looks disagree (probability <= alpha): report the point where they meet
            low = high = (low + high) / 2.0
        span = self.high - self.low
        low, high = self.low + low * span, self.low + high * span
        return SequenceInterval(float(min(max(self.mean, low), high)), float(low), float(high), level, self.count,
                                "empirical-bernstein")


METHODS = ("betting", "empirical_bernstein")


def mean_sequence(values, low: float | None = None, high: float | None = None, *, level: float = DEFAULT_LEVEL,
                  method: str = "betting", batch_size: int | None = None) -> SequenceInterval:
    """One-shot: the confidence sequence's interval after all values (range from the values when not given).

    A range read from the observed values is not known in advance, so the guarantee then holds only as far as
    future observations stay inside it.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if low is None or high is None:
        if not values.size:
            raise ValueError("no observations and no range: give low and high")
        low = float(values.min()) if low is None else low
        high = float(values.max()) if high is None else high
        if high <= low:
            high = low + 1.0
    if method == "betting":
        sequence: BettingSequence | EmpiricalBernsteinSequence = BettingSequence(low, high)
    elif method == "empirical_bernstein":
        sequence = EmpiricalBernsteinSequence(low, high, design_level=level)
    else:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    size = batch_size or max(1, len(values))
    for start in range(0, len(values), size):
        sequence.update(values[start:start + size])
    return sequence.interval(level)


class ImportanceWeightedSequence:
    """Anytime-valid interval for a policy's value from logged decisions, with no bound on importance weights.

    With rewards scaled to [0, 1] and weights w = target probability / logged propensity, both w * r and
    w * (1 - r) are nonnegative with means V and 1 - V (weights average 1 when every target action could be
    logged), so two lower-bounding betting sequences at alpha / 2 each bound V from both sides
    (Waudby-Smith et al., "Anytime-valid off-policy inference for contextual bandits", 2022).
    """

    def __init__(self, reward_low: float = 0.0, reward_high: float = 1.0, *, grid_size: int = DEFAULT_GRID_SIZE):
        if not reward_high > reward_low:
            raise ValueError("reward_high must be above reward_low")
        self.reward_low, self.reward_high = float(reward_low), float(reward_high)
        self._success = BettingSequence(0.0, mean_high=1.0, grid_size=grid_size)
        self._failure = BettingSequence(0.0, mean_high=1.0, grid_size=grid_size)
        self._weighted_sum = 0.0
        self._weight_sum = 0.0

    @property
    def count(self) -> int:
        return self._success.count

    def update(self, rewards, logged_propensities, target_probabilities) -> "ImportanceWeightedSequence":
        """Add a batch of logged decisions: rewards, the logged pick's propensity, the target's chance of it."""
        rewards = _observations(rewards, self.reward_low, self.reward_high)
        scaled = (rewards - self.reward_low) / (self.reward_high - self.reward_low)
        propensities = np.asarray(logged_propensities, dtype=np.float64).ravel()
        targets = np.asarray(target_probabilities, dtype=np.float64).ravel()
        if not (len(propensities) == len(targets) == len(rewards)):
            raise ValueError("rewards, logged_propensities and target_probabilities differ in length")
        if propensities.size and not (np.isfinite(propensities).all() and propensities.min() > 0):
            raise ValueError("logged propensities must be positive numbers")
        weights = targets / propensities
        self._success.update(weights * scaled)
        self._failure.update(weights * (1.0 - scaled))
        self._weighted_sum += float((weights * scaled).sum())
        self._weight_sum += float(weights.sum())
        return self

    def interval(self, level: float = DEFAULT_LEVEL) -> SequenceInterval:
        """Both sides at (1 - level) / 2; the estimate is self-normalised IPS, kept inside the interval."""
        side = 1.0 - (1.0 - level) / 2.0
        low = self._success.interval(side).low
        high = 1.0 - self._failure.interval(side).low
        if low > high:
            low = high = (low + high) / 2.0
        point = self._weighted_sum / self._weight_sum if self._weight_sum > 0 else (low + high) / 2.0
        span = self.reward_high - self.reward_low
        to_reward = lambda unit: self.reward_low + unit * span  # noqa: E731
        return SequenceInterval(to_reward(min(max(point, low), high)), to_reward(low), to_reward(high), level,
                                self.count, "betting-ips")


def ips_sequence(rewards, logged_propensities, target_probabilities, *, reward_low: float = 0.0,
                 reward_high: float = 1.0, level: float = DEFAULT_LEVEL) -> SequenceInterval:
    """One-shot anytime-valid interval for a policy's value (a drop-in beside offpolicy.ips / snips)."""
    sequence = ImportanceWeightedSequence(reward_low, reward_high)
    return sequence.update(rewards, logged_propensities, target_probabilities).interval(level)
