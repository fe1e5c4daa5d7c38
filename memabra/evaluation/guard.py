"""The guard: follows a promoted version on the traffic it served and says whether it regressed against the prior.

The promoted version's served decisions log propensities, so the prior version's value on the same traffic is
estimated off-policy; the paired difference carries an anytime-valid confidence sequence (memabra.evaluation.
confidence), so checking after every batch keeps the false-alarm rate at (1 - level) / 2. A drop both versions
share is reported as drift, never as a regression; missing evidence never yields `regressed`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from memabra.evaluation.confidence import (BettingSequence, EmpiricalBernsteinSequence, ImportanceWeightedSequence,
                                           SequenceInterval)
from memabra.models import Trajectory

Verdict = Literal["idle", "watching", "healthy", "regressed"]
VALUE_GRID_SIZE = 201
"""Grid of the per-version value sequences (figures for the operator, not the verdict)."""
DIFFERENCE_GRID_SIZE = 1001
DIFFERENCE_MAX_BET = 0.9
"""The difference's weight bound is a worst case rarely met, so its bets may stake closer to the safe limit."""
MODEL_SHRINKAGE = 2.0
"""Pseudo-observations pulling a candidate's predicted reward toward the overall mean."""


class GuardPolicy(BaseModel):
    """When a promoted version counts as regressed, healthy, or still watched."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    margin: float = Field(0.01, ge=0.0)
    """The promoted version regresses when its value is below the prior's by more than this, with confidence."""
    min_traffic: int = Field(200, ge=1)
    """Served trajectories with a propensity needed before any verdict but `watching`."""
    max_watch: int = Field(5000, ge=1)
    """Served trajectories watched at most; later ones are not read and the watch ends `healthy` unless regressed."""
    level: float = Field(0.9, gt=0.0, lt=1.0)
    """Level of the two-sided confidence sequences: a false `regressed` has probability at most (1 - level) / 2,
    5% by default, however often the guard checks."""
    estimator: Literal["dr", "ips"] = "dr"
    """`dr`: doubly robust with a reward model fitted only on earlier traffic; `ips`: needs no weight bound."""
    max_importance_weight: float = Field(50.0, gt=1.0)
    """Bound on importance weights the `dr` sequence relies on (the logging policy's 1 / smallest propensity);
    larger weights are capped and counted."""
    reward_low: float | None = 0.0
    """Lowest possible reward; None takes the observed minimum."""
    reward_high: float | None = 1.0
    """Highest possible reward; None takes the observed maximum."""


class IntervalFigures(BaseModel):
    """An estimate with its anytime-valid interval."""

    estimate: float
    low: float
    high: float
    level: float
    method: str

    @classmethod
    def of(cls, interval: SequenceInterval) -> "IntervalFigures":
        return cls(estimate=interval.estimate, low=interval.low, high=interval.high, level=interval.level,
                   method=interval.method)


class VersionFigures(BaseModel):
    """One version's value on the watched traffic."""

    version_id: str | None
    value: IntervalFigures
    """Its greedy value, importance weighted on the logged propensities (anytime-valid)."""
    doubly_robust_value: float
    matched_count: int
    """Served decisions whose logged pick is this version's own greedy pick."""


class DriftSignal(BaseModel):
    """Both versions' values against their reference: a common drop means the world changed."""

    detected: bool
    promoted_drop: float | None = None
    prior_drop: float | None = None
    reference: str = "the first min_traffic watched trajectories"


class GuardReport(BaseModel):
    """One guard check: the verdict, why, and the figures behind it."""

    verdict: Verdict
    reason: str
    promoted_version_id: str | None = None
    prior_version_id: str | None = None
    served_count: int = 0
    used_count: int = 0
    """Served trajectories with a propensity (the evidence)."""
    excluded_count: int = 0
    watch_complete: bool = False
    served_value: IntervalFigures | None = None
    """Mean reward of the traffic as served (exploration included)."""
    error_rate: IntervalFigures | None = None
    mean_latency_ms: float | None = None
    promoted: VersionFigures | None = None
    prior: VersionFigures | None = None
    difference: IntervalFigures | None = None
    """Promoted minus prior value, paired on the same traffic."""
    agreement_share: float | None = None
    """Share of watched decisions where both versions pick the same candidate."""
    clipped_count: int = 0
    drift: DriftSignal | None = None
    policy: GuardPolicy


@dataclass
class GuardBatch:
    """Served decisions as arrays: one entry per trajectory, propensity NaN where none was logged."""

    rewards: np.ndarray
    propensities: np.ndarray
    latencies_ms: np.ndarray
    errors: np.ndarray
    logged_keys: np.ndarray
    """Candidate keys (ints) of the logged pick, the promoted version's pick and the prior's pick."""
    promoted_keys: np.ndarray
    prior_keys: np.ndarray

    def __len__(self) -> int:
        return len(self.rewards)

    def head(self, count: int) -> "GuardBatch":
        return GuardBatch(*(array[:count] for array in (self.rewards, self.propensities, self.latencies_ms,
                                                        self.errors, self.logged_keys, self.promoted_keys,
                                                        self.prior_keys)))


class CandidateRewardModel:
    """Mean reward per candidate key, shrunk toward the overall mean; updated after each batch so its predictions
    are always fitted on earlier traffic only (sequential cross-fitting), never on a router's own scores."""

    def __init__(self, size: int = 64):
        self._sums = np.zeros(size)
        self._counts = np.zeros(size)
        self._total, self._count = 0.0, 0

    def predict(self, keys: np.ndarray) -> np.ndarray:
        overall = self._total / self._count if self._count else 0.5
        self._grow(int(keys.max()) + 1 if keys.size else 0)
        return (self._sums[keys] + MODEL_SHRINKAGE * overall) / (self._counts[keys] + MODEL_SHRINKAGE)

    def update(self, keys: np.ndarray, rewards: np.ndarray) -> None:
        self._grow(int(keys.max()) + 1 if keys.size else 0)
        np.add.at(self._sums, keys, rewards)
        np.add.at(self._counts, keys, 1.0)
        self._total += float(rewards.sum())
        self._count += len(rewards)

    def _grow(self, size: int) -> None:
        if size > len(self._sums):
            extra = max(size, 2 * len(self._sums)) - len(self._sums)
            self._sums = np.concatenate([self._sums, np.zeros(extra)])
            self._counts = np.concatenate([self._counts, np.zeros(extra)])


class GuardMonitor:
    """Incremental guard over batches of served decisions: `update` as traffic arrives, `report` at any time."""

    def __init__(self, policy: GuardPolicy | None = None, *, reward_low: float = 0.0, reward_high: float = 1.0,
                 promoted_version_id: str | None = None, prior_version_id: str | None = None):
        self.policy = policy or GuardPolicy()
        if not reward_high > reward_low:
            raise ValueError("the reward range is empty: reward_high must be above reward_low")
        self.reward_low, self.reward_high = reward_low, reward_high
        self.promoted_version_id, self.prior_version_id = promoted_version_id, prior_version_id
        self.served_count = self.used_count = self.clipped_count = self.agree_count = 0
        self._latency_sum = 0.0
        self._served = EmpiricalBernsteinSequence(reward_low, reward_high, design_level=self.policy.level)
        self._errors = EmpiricalBernsteinSequence(0.0, 1.0, design_level=self.policy.level)
        self._values = {name: ImportanceWeightedSequence(0.0, 1.0, grid_size=VALUE_GRID_SIZE)
                        for name in ("promoted", "prior")}
        self._matched = {"promoted": 0, "prior": 0}
        self._dr_sums = {"promoted": 0.0, "prior": 0.0}
        self._reference: dict[str, float] | None = None
        self._recent = {"promoted": 0.0, "prior": 0.0, "count": 0}
        weight = self.policy.max_importance_weight
        if self.policy.estimator == "dr":
            self._difference = BettingSequence(-weight, weight, mean_low=-1.0, mean_high=1.0,
                                               grid_size=DIFFERENCE_GRID_SIZE, max_bet=DIFFERENCE_MAX_BET)
        else:  # promoted-above and prior-above sequences on nonnegative terms with means 1 + diff and 1 - diff
            self._difference_up = BettingSequence(0.0, mean_high=2.0, grid_size=DIFFERENCE_GRID_SIZE)
            self._difference_down = BettingSequence(0.0, mean_high=2.0, grid_size=DIFFERENCE_GRID_SIZE)
        self._model = CandidateRewardModel()

    @property
    def watch_complete(self) -> bool:
        return self.served_count >= self.policy.max_watch

    def update(self, batch: GuardBatch) -> "GuardMonitor":
        """Read a batch of served decisions (in serving order); traffic beyond the longest watch is ignored."""
        batch = batch.head(max(0, self.policy.max_watch - self.served_count))
        if not len(batch):
            return self
        rewards = np.asarray(batch.rewards, dtype=np.float64)
        self.served_count += len(batch)
        self._served.update(rewards)
        self._errors.update(np.asarray(batch.errors, dtype=np.float64))
        self._latency_sum += float(np.sum(batch.latencies_ms))
        propensities = np.asarray(batch.propensities, dtype=np.float64)
        used = np.isfinite(propensities) & (propensities > 0)
        if not used.any():
            return self
        scaled = (rewards[used] - self.reward_low) / (self.reward_high - self.reward_low)
        propensity = propensities[used]
        logged = np.asarray(batch.logged_keys)[used]
        picks = {"promoted": np.asarray(batch.promoted_keys)[used], "prior": np.asarray(batch.prior_keys)[used]}
        agree = picks["promoted"] == picks["prior"]
        self.used_count += len(scaled)
        self.agree_count += int(agree.sum())
        logged_prediction = self._model.predict(logged)
        raw_weights, doubly_robust = {}, {}
        for name, keys in picks.items():
            matched = keys == logged
            self._matched[name] += int(matched.sum())
            raw_weights[name] = matched / propensity
            self._values[name].update(scaled, propensity, matched.astype(np.float64))
            capped = np.minimum(raw_weights[name], self.policy.max_importance_weight)
            self.clipped_count += int((raw_weights[name] > capped).sum()) if name == "prior" else 0
            doubly_robust[name] = self._model.predict(keys) + capped * (scaled - logged_prediction)
            self._dr_sums[name] += float(doubly_robust[name].sum())
        if self.policy.estimator == "dr":
            weight = self.policy.max_importance_weight
            self._difference.update(np.clip(doubly_robust["promoted"] - doubly_robust["prior"], -weight, weight))
        else:
            promoted_w, prior_w = raw_weights["promoted"], raw_weights["prior"]
            self._difference_up.update(np.where(agree, 1.0, promoted_w * scaled + prior_w * (1.0 - scaled)))
            self._difference_down.update(np.where(agree, 1.0, prior_w * scaled + promoted_w * (1.0 - scaled)))
        self._track_drift(doubly_robust)
        self._model.update(logged, scaled)
        return self

    def _track_drift(self, doubly_robust: dict[str, np.ndarray]) -> None:
        if self._reference is None and self.used_count >= self.policy.min_traffic:
            self._reference = {name: self._dr_sums[name] / self.used_count for name in self._dr_sums}
        elif self._reference is not None:
            for name, terms in doubly_robust.items():
                self._recent[name] += float(terms.sum())
            self._recent["count"] += len(doubly_robust["prior"])

    def difference(self) -> SequenceInterval:
        """Promoted minus prior value (in reward units), with its anytime-valid interval."""
        span = self.reward_high - self.reward_low
        if self.policy.estimator == "dr":
            unit = self._difference.interval(self.policy.level)
            estimate, low, high = unit.estimate, unit.low, unit.high
        else:
            side = 1.0 - (1.0 - self.policy.level) / 2.0
            up, down = self._difference_up.interval(side), self._difference_down.interval(side)
            low, high = up.low - 1.0, 1.0 - down.low
            estimate = min(max((self._dr_sums["promoted"] - self._dr_sums["prior"]) / max(self.used_count, 1),
                               low), high)
        return SequenceInterval(estimate * span, low * span, high * span, self.policy.level, self.used_count,
                                f"{self.policy.estimator}-betting")

    def report(self) -> GuardReport:
        """The verdict on everything read so far, with its figures."""
        policy = self.policy
        figures = dict(promoted_version_id=self.promoted_version_id, prior_version_id=self.prior_version_id,
                       served_count=self.served_count, used_count=self.used_count,
                       excluded_count=self.served_count - self.used_count, watch_complete=self.watch_complete,
                       policy=policy, clipped_count=self.clipped_count)
        if self.served_count:
            figures.update(served_value=IntervalFigures.of(self._served.interval(policy.level)),
                           error_rate=IntervalFigures.of(self._errors.interval(policy.level)),
                           mean_latency_ms=self._latency_sum / self.served_count)
        if not self.used_count:
            reason = ("no trajectory served by the promoted version yet" if not self.served_count else
                      f"none of the {self.served_count} served trajectories records a propensity, so the prior "
                      "version cannot be compared (log the probability of each pick)")
            return GuardReport(verdict="watching", reason=reason, **figures)
        difference = self.difference()
        to_reward = self._to_reward
        for name, version_id in (("promoted", self.promoted_version_id), ("prior", self.prior_version_id)):
            value = self._values[name].interval(policy.level)
            figures[name] = VersionFigures(
                version_id=version_id,
                value=IntervalFigures(estimate=to_reward(value.estimate), low=to_reward(value.low),
                                      high=to_reward(value.high), level=value.level, method=value.method),
                doubly_robust_value=to_reward(self._dr_sums[name] / self.used_count),
                matched_count=self._matched[name])
        figures.update(difference=IntervalFigures.of(difference), agreement_share=self.agree_count / self.used_count,
                       drift=self._drift_signal())
        verdict, reason = self._verdict(difference)
        return GuardReport(verdict=verdict, reason=reason, **figures)

    def _verdict(self, difference: SequenceInterval) -> tuple[Verdict, str]:
        policy = self.policy
        described = (f"promoted minus prior {difference.estimate:+.4f}, {policy.level:.0%} interval "
                     f"[{difference.low:+.4f}, {difference.high:+.4f}] over {self.used_count} decisions")
        if self.used_count < policy.min_traffic and not self.watch_complete:
            return "watching", f"{self.used_count} of min_traffic {policy.min_traffic} decisions so far; {described}"
        if difference.high < -policy.margin:
            return "regressed", f"worse than the prior by more than margin {policy.margin:g}: {described}"
        if difference.low >= -policy.margin:
            return "healthy", f"not worse than the prior by more than margin {policy.margin:g}: {described}"
        if self.watch_complete:
            return "healthy", f"the watch of {policy.max_watch} trajectories ended without a regression: {described}"
        return "watching", f"not enough evidence either way yet: {described}"

    def _drift_signal(self) -> DriftSignal:
        count = self._recent["count"]
        if self._reference is None or count < self.policy.min_traffic:
            return DriftSignal(detected=False)
        drops = {name: (self._reference[name] - self._recent[name] / count) * (self.reward_high - self.reward_low)
                 for name in ("promoted", "prior")}
        detected = min(drops.values()) > self.policy.margin
        return DriftSignal(detected=detected, promoted_drop=drops["promoted"], prior_drop=drops["prior"])

    def _to_reward(self, unit: float) -> float:
        return self.reward_low + unit * (self.reward_high - self.reward_low)


class CandidateKeys:
    """Stable small integer keys for candidate ids, shared by a monitor's batches."""

    def __init__(self):
        self._keys: dict[str, int] = {}

    def __call__(self, candidate_id: str) -> int:
        return self._keys.setdefault(candidate_id, len(self._keys))


def batch_from_trajectories(trajectories: list[Trajectory], promoted_router, prior_router,
                            keys: CandidateKeys) -> GuardBatch:
    """Arrays for the guard: each trajectory's outcome, propensity, and both routers' greedy picks."""
    rows = []
    for trajectory in trajectories:
        candidates = trajectory.candidates
        promoted_pick = candidates[int(np.argmax(promoted_router.scores(trajectory.task, candidates)))]
        prior_pick = candidates[int(np.argmax(prior_router.scores(trajectory.task, candidates)))]
        propensity = trajectory.decision.propensity
        rows.append((trajectory.outcome.reward, math.nan if propensity is None else propensity,
                     trajectory.outcome.latency_ms, trajectory.outcome.error is not None,
                     keys(trajectory.decision.chosen_candidate_id), keys(promoted_pick.candidate_id),
                     keys(prior_pick.candidate_id)))
    columns = list(zip(*rows)) if rows else [()] * 7
    return GuardBatch(np.array(columns[0], dtype=np.float64), np.array(columns[1], dtype=np.float64),
                      np.array(columns[2], dtype=np.float64), np.array(columns[3], dtype=bool),
                      *(np.array(column, dtype=np.int64) for column in columns[4:]))


def served_by(trajectories: list[Trajectory], version_id: str) -> list[Trajectory]:
    """The trajectories the version served (its id on the decision), oldest first."""
    return sorted((t for t in trajectories if t.decision.router_version_id == version_id and not t.is_benchmark),
                  key=lambda t: t.created_at)


def start_monitor(served: list[Trajectory], promoted_router, prior_router, policy: GuardPolicy, *,
                  promoted_version_id: str | None, prior_version_id: str | None,
                  settings_place: str = "") -> tuple[GuardMonitor, GuardBatch] | str:
    """A monitor over a reward range (each bound the policy does not set is the served rewards' own) and the served
    traffic scored by both versions; or why the guard cannot judge that traffic, naming `settings_place` for the range."""
    try:
        batch = batch_from_trajectories(served, promoted_router, prior_router, CandidateKeys())
    except Exception as error:  # a router that cannot score the traffic is missing evidence, not a regression
        return (f"the guard could not score the served traffic with both versions ({type(error).__name__}: {error}); "
                "check that the prior version loads and suits these candidates")
    rewards = batch.rewards
    low = policy.reward_low if policy.reward_low is not None else float(rewards.min()) if len(rewards) else 0.0
    high = policy.reward_high if policy.reward_high is not None else float(rewards.max()) if len(rewards) else 1.0
    high = high if high > low else low + 1.0
    if len(rewards) and (rewards.min() < low or rewards.max() > high):
        return (f"served rewards run {rewards.min():g}..{rewards.max():g}, outside the guard's reward range "
                f"[{low:g}, {high:g}]; set reward_low and reward_high{settings_place} to the rewards' true range")
    monitor = GuardMonitor(policy, reward_low=low, reward_high=high, promoted_version_id=promoted_version_id,
                           prior_version_id=prior_version_id)
    return monitor, batch


def guard_check(trajectories: list[Trajectory], promoted_router, prior_router,
                policy: GuardPolicy | None = None, *, promoted_version_id: str | None = None,
                prior_version_id: str | None = None, batch_size: int = 50) -> GuardReport:
    """One check over the promoted version's served traffic; never `regressed` on missing or unreadable evidence."""
    policy = policy or GuardPolicy()
    promoted_version_id = promoted_version_id or getattr(promoted_router, "version_id", None)
    common = dict(promoted_version_id=promoted_version_id, prior_version_id=prior_version_id, policy=policy)
    if promoted_router is None or promoted_version_id is None:
        return GuardReport(verdict="idle", reason="no promoted version to watch", **common)
    if prior_router is None:
        return GuardReport(verdict="idle", reason=f"version {promoted_version_id} has no prior version to compare "
                                                  "with (nothing to roll back to)", **common)
    served = served_by(trajectories, promoted_version_id)
    started = start_monitor(served, promoted_router, prior_router, policy, promoted_version_id=promoted_version_id,
                            prior_version_id=prior_version_id)
    if isinstance(started, str):
        return GuardReport(verdict="watching", served_count=len(served), reason=started, **common)
    monitor, batch = started
    for start in range(0, len(batch), batch_size):
        monitor.update(GuardBatch(*(array[start:start + batch_size] for array in vars(batch).values())))
    return monitor.report()
