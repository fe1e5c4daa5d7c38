"""Counterfactual evaluation of routers on logged trajectories: how each would have done on that traffic.

A router is evaluated as it is deployed: greedily, taking the first of tied best scores (as `route()` does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from memabra.evaluation import offpolicy
from memabra.evaluation.confidence import BettingSequence
from memabra.evaluation.offpolicy import DEFAULT_LEVEL, DEFAULT_MAX_WEIGHT, DEFAULT_RESAMPLES, Estimate
from memabra.models import OffPolicySection, Trajectory
from memabra.results import RecentValue

ESTIMATORS = ("ips", "snips", "dm", "dr")
MEAN_WEIGHT_TOLERANCE = 0.1
"""A mean importance weight this far from 1 (and beyond MEAN_WEIGHT_STANDARD_ERRORS) marks propensities suspect."""
MEAN_WEIGHT_STANDARD_ERRORS = 4.0
DIFFERENCE_GRID_SIZE = 1001
DIFFERENCE_MAX_BET = 0.9
"""The betting sequence of paired DR differences: grid of candidate mean differences, and the largest stake."""


@dataclass
class LoggedDecisions:
    """Trajectories with a usable propensity, as arrays; `excluded_count` had none and are left out."""

    trajectories: list[Trajectory]
    rewards: np.ndarray
    propensities: np.ndarray
    logged_actions: np.ndarray
    excluded_count: int

    @classmethod
    def from_trajectories(cls, trajectories: list[Trajectory]) -> "LoggedDecisions":
        usable = [t for t in trajectories if t.decision.propensity is not None]
        actions = [next(i for i, c in enumerate(t.candidates) if c.candidate_id == t.decision.chosen_candidate_id)
                   for t in usable]
        return cls(
            trajectories=usable,
            rewards=np.array([t.outcome.reward for t in usable], dtype=np.float64),
            propensities=np.array([t.decision.propensity for t in usable], dtype=np.float64),
            logged_actions=np.array(actions, dtype=np.int64),
            excluded_count=len(trajectories) - len(usable),
        )

    def __len__(self) -> int:
        return len(self.trajectories)

    def scores(self, router) -> np.ndarray:
        """The router's score of every candidate, one row per decision, padded with -inf."""
        width = max((len(t.candidates) for t in self.trajectories), default=0)
        matrix = np.full((len(self), width), -np.inf)
        for row, trajectory in enumerate(self.trajectories):
            matrix[row, :len(trajectory.candidates)] = router.scores(trajectory.task, trajectory.candidates)
        return matrix

    def target_probabilities(self, distribution: np.ndarray) -> np.ndarray:
        """The evaluated policy's probability of each logged action."""
        return distribution[np.arange(len(self)), self.logged_actions]


def greedy_distribution(scores: np.ndarray) -> np.ndarray:
    """One-hot rows on the first best score of each row: the deployed router's choice."""
    distribution = np.zeros_like(scores, dtype=np.float64)
    if scores.size:
        distribution[np.arange(len(scores)), np.argmax(scores, axis=1)] = 1.0
    return distribution


def estimate_router(decisions: LoggedDecisions, router, reward_model=None, *, level: float = DEFAULT_LEVEL,
                    resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    max_weight: float = DEFAULT_MAX_WEIGHT) -> tuple[dict[str, Estimate], np.ndarray]:
    """Every estimator's value of the router (DM and DR only with a reward model), and its importance weights."""
    estimates, weights, _ = _estimate_router(decisions, router, _predictions(decisions, reward_model, router),
                                             level=level, resamples=resamples, seed=seed, max_weight=max_weight)
    return estimates, weights


def _predictions(decisions: LoggedDecisions, reward_model, router) -> np.ndarray | None:
    """The reward model's predicted reward of every candidate (a cross-fitted model's `predictions`, else the
    given model's scores), or None without a model."""
    if reward_model is None:
        return None
    width = max((len(t.candidates) for t in decisions.trajectories), default=0)
    if hasattr(reward_model, "predictions"):
        return reward_model.predictions(decisions.trajectories, width)
    predictions = decisions.scores(reward_model)
    predictions[~np.isfinite(predictions)] = 0.0
    return predictions


def _estimate_router(decisions: LoggedDecisions, router, predictions: np.ndarray | None, *, level: float,
                     resamples: int, seed: int, max_weight: float) -> tuple[dict[str, Estimate], np.ndarray, dict]:
    scores = decisions.scores(router)
    distribution = greedy_distribution(scores)
    targets = decisions.target_probabilities(distribution)
    common = dict(level=level, resamples=resamples, seed=seed)
    args = (decisions.rewards, decisions.propensities, targets)
    estimates = {
        "ips": offpolicy.ips(*args, max_weight=max_weight, **common),
        "snips": offpolicy.snips(*args, max_weight=max_weight, **common),
    }
    if predictions is not None:
        estimates["dm"] = offpolicy.direct_method(predictions, distribution, **common)
        estimates["dr"] = offpolicy.doubly_robust(*args, predictions, distribution, decisions.logged_actions,
                                                  max_weight=max_weight, **common)
    weights, _ = offpolicy.importance_weights(decisions.propensities, targets, max_weight)
    return estimates, weights, {"distribution": distribution, "targets": targets}


def compare_routers(trajectories: list[Trajectory], baseline, challenger, reward_model=None, *,
                    level: float = DEFAULT_LEVEL, resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    max_weight: float = DEFAULT_MAX_WEIGHT, interval: str = "bootstrap") -> OffPolicySection:
    """The `off_policy` section of a report: both routers' values on the trajectories and the paired deltas, their
    error rates and latencies (SNIPS), and with `interval` confidence_sequence an anytime-valid DR delta."""
    decisions = LoggedDecisions.from_trajectories(trajectories)
    report: dict[str, Any] = {
        "held_out_count": len(trajectories), "excluded_count": decisions.excluded_count,
        "used_count": len(decisions), "level": level, "resamples": resamples,
        "max_importance_weight": max_weight, "reward_model": _describe_model(reward_model, challenger),
        "estimators": {}, "mean_importance_weight": {}, "clipped_count": {}, "logging_check": None,
        "propensities_suspect": False,
        "warnings": [],
    }
    warnings: list[str] = report["warnings"]
    if decisions.excluded_count:
        warnings.append(f"{decisions.excluded_count} held-out trajectories record no propensity and were left out "
                        "of the off-policy estimates")
    if not trajectories:
        warnings.append("no trajectories were held out, so nothing was estimated off-policy (holdout_share is 0 "
                        "or too few trajectories are new)")
        return OffPolicySection.model_validate(report)
    if not len(decisions):
        warnings.append("no held-out trajectory records a propensity, so nothing was estimated off-policy "
                        "(log the probability of each pick)")
        return OffPolicySection.model_validate(report)
    per_router, arrays = {}, {}
    predictions = _predictions(decisions, reward_model, challenger)
    for name, router in (("baseline", baseline), ("challenger", challenger)):
        estimates, weights, arrays[name] = _estimate_router(decisions, router, predictions, level=level,
                                                            resamples=resamples, seed=seed, max_weight=max_weight)
        per_router[name] = estimates
        report["mean_importance_weight"][name] = float(weights.mean())
        report["clipped_count"][name] = estimates["ips"].clipped_count
        if estimates["ips"].clipped_count:
            warnings.append(f"{estimates['ips'].clipped_count} of the {name}'s importance weights were capped at "
                            f"{max_weight:g} (logged propensities below {1 / max_weight:.3g}); its estimates lean low")
    if (decisions.propensities == 1.0).all():
        warnings.append("every held-out decision was logged with propensity 1 (no exploration): estimates only see "
                        "what the logging router chose and are biased towards it; log with epsilon_greedy or softmax")
    else:
        mean_weight, standard_error, suspect = check_propensities(decisions, max_weight)
        if math.isfinite(mean_weight) and math.isfinite(standard_error):
            report["logging_check"] = {"mean_uniform_weight": mean_weight, "standard_error": standard_error}
        else:  # too few held-out decisions for a standard error
            suspect = False
        if suspect:
            report["propensities_suspect"] = True
            warnings.append(f"the logged propensities do not add up: weighting the held-out decisions by 1/(candidates "
                            f"x propensity) should average about 1, here {mean_weight:.3g}; check that the agent records "
                            "the probability of the candidate it actually chose and can pick every candidate")
    for estimator in ESTIMATORS:
        if estimator not in per_router["baseline"]:
            continue
        base, chall = per_router["baseline"][estimator], per_router["challenger"][estimator]
        report["estimators"][estimator] = {
            "baseline": base.to_dict(), "challenger": chall.to_dict(),
            "delta": offpolicy.delta(base, chall).to_dict(),
        }
    outcomes = offpolicy_outcomes(decisions, arrays, level=level, resamples=resamples, seed=seed,
                                  max_weight=max_weight)
    report.update(outcomes)
    if predictions is not None:
        report["interval_limits"] = {"dm": (
            "DM's interval covers only the sampling noise of the held-out traffic, not the reward model's bias, "
            "so no gate reads it")}
        if interval == "confidence_sequence":
            report["dr_delta_sequence"] = dr_delta_sequence(decisions, arrays, predictions, level, max_weight)
    return OffPolicySection.model_validate(report)


def offpolicy_outcomes(decisions: LoggedDecisions, arrays: dict, *, level: float, resamples: int, seed: int,
                       max_weight: float) -> dict[str, Any]:
    """Both routers' error rates and mean latencies on the logged traffic (SNIPS) with their paired deltas."""
    errors = np.array([t.outcome.error is not None for t in decisions.trajectories], dtype=np.float64)
    latencies = np.array([t.outcome.latency_ms for t in decisions.trajectories], dtype=np.float64)
    found: dict[str, Any] = {}
    for field_name, values in (("error_rate", errors), ("latency_ms", latencies)):
        estimates = {name: offpolicy.snips(values, decisions.propensities, arrays[name]["targets"], level=level,
                                           resamples=resamples, seed=seed, max_weight=max_weight)
                     for name in ("baseline", "challenger")}
        found[field_name] = {"baseline": estimates["baseline"].to_dict(),
                             "challenger": estimates["challenger"].to_dict(),
                             "delta": offpolicy.delta(estimates["baseline"], estimates["challenger"]).to_dict()}
    return found


def dr_delta_sequence(decisions: LoggedDecisions, arrays: dict, predictions: np.ndarray, level: float,
                      max_weight: float) -> dict[str, float]:
    """The challenger's doubly-robust gain over the baseline with an anytime-valid (betting) interval: per-decision
    paired DR differences in units of the reward range, clipped to the weight cap."""
    rewards = decisions.rewards
    low, high = float(rewards.min()), float(rewards.max())
    span = high - low if high > low else 1.0
    scaled_rewards = (rewards - low) / span
    scaled_predictions = (np.clip(predictions, low, high) - low) / span
    logged = scaled_predictions[np.arange(len(decisions)), decisions.logged_actions]
    terms = {}
    for name in ("baseline", "challenger"):
        distribution, targets = arrays[name]["distribution"], arrays[name]["targets"]
        weights, _ = offpolicy.importance_weights(decisions.propensities, targets, max_weight)
        terms[name] = (distribution * scaled_predictions).sum(axis=1) + weights * (scaled_rewards - logged)
    differences = np.clip(terms["challenger"] - terms["baseline"], -max_weight, max_weight)
    sequence = BettingSequence(-max_weight, max_weight, mean_low=-1.0, mean_high=1.0,
                               grid_size=DIFFERENCE_GRID_SIZE, max_bet=DIFFERENCE_MAX_BET)
    found = sequence.update(differences).interval(level)
    weights, _ = offpolicy.importance_weights(decisions.propensities, arrays["challenger"]["targets"], max_weight)
    return {"estimate": float(differences.mean()) * span, "low": found.low * span, "high": found.high * span,
            "ess": offpolicy.effective_sample_size(weights)}


def check_propensities(decisions: LoggedDecisions,
                       max_weight: float = DEFAULT_MAX_WEIGHT) -> tuple[float, float, bool]:
    """Mean importance weight of picking uniformly at random (about 1 when the logged propensities are right and
    every candidate could be picked), its standard error, and whether it is implausibly far from 1."""
    counts = np.array([len(t.candidates) for t in decisions.trajectories], dtype=np.float64)
    weights, _ = offpolicy.importance_weights(decisions.propensities, 1.0 / counts, max_weight)
    mean = float(weights.mean())
    standard_error = float(weights.std(ddof=1) / math.sqrt(len(weights))) if len(weights) > 1 else math.inf
    distance = abs(mean - 1.0)
    return mean, standard_error, bool(distance > MEAN_WEIGHT_TOLERANCE
                                      and distance > MEAN_WEIGHT_STANDARD_ERRORS * standard_error)


def recent_value(trajectories: list[Trajectory], router, *, level: float = DEFAULT_LEVEL,
                 resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> RecentValue | None:
    """The router's SNIPS value on the given traffic with its interval; None when no trajectory can support it."""
    decisions = LoggedDecisions.from_trajectories(trajectories)
    if not len(decisions):
        return None
    distribution = greedy_distribution(decisions.scores(router))
    estimate = offpolicy.snips(decisions.rewards, decisions.propensities,
                               decisions.target_probabilities(distribution), level=level, resamples=resamples,
                               seed=seed)
    if estimate.ess == 0:
        return None
    return RecentValue(estimator="snips", **estimate.to_dict(), level=level, trajectory_count=len(trajectories),
                       excluded_count=decisions.excluded_count)


def _describe_model(reward_model, challenger) -> str | None:
    if reward_model is None:
        return None
    if hasattr(reward_model, "describe"):
        return reward_model.describe()
    return "challenger" if reward_model is challenger else type(reward_model).__name__
