"""The gate stage: a challenger is promoted only when every gate of the policy passes."""

from __future__ import annotations

from pydantic import ConfigDict

from memabra.models import BenchmarkMetrics, DeltaInterval, GatePolicy, GateResult, PromotionDecision, UncertaintyEvidence


class PromotionPolicy(GatePolicy):
    """The gates a challenger must pass to be promoted: four always, two that know their uncertainty on request."""

    model_config = ConfigDict(extra="forbid")

    def evaluate(self, baseline: BenchmarkMetrics, challenger: BenchmarkMetrics,
                 evidence: UncertaintyEvidence | None = None) -> PromotionDecision:
        """Check every gate of the effective policy (the profile's values for gates left at their defaults); the
        decision names each failing one with its value and threshold."""
        policy = self.effective()
        if policy is not self:
            return policy.evaluate(baseline, challenger, evidence)
        evidence = evidence or UncertaintyEvidence()
        reward_delta = (evidence.reward_delta if evidence.reward_delta is not None
                        else challenger.avg_reward - baseline.avg_reward)
        gates = [
            GateResult.check("reward_delta", reward_delta, ">=", self.min_reward_delta, "min_reward_delta"),
            self._guardrail_gate("error_rate_delta", challenger.error_rate - baseline.error_rate,
                                 evidence, "error_rate_delta", self.max_error_rate_increase,
                                 "max_error_rate_increase"),
            self._guardrail_gate("latency_delta_ms", challenger.avg_latency_ms - baseline.avg_latency_ms,
                                 evidence, "latency_delta_ms", self.max_latency_increase_ms,
                                 "max_latency_increase_ms"),
            GateResult.check("task_count", challenger.task_count, ">=", self.required_task_count,
                             "required_task_count"),
        ]
        if self.reward_delta_bound != "off":
            gates.append(self._reward_delta_bound_gate(evidence))
        if self.min_effective_sample_size > 0:
            gate = GateResult.check("effective_sample_size", evidence.effective_sample_size, ">=",
                                    self.min_effective_sample_size, "min_effective_sample_size")
            if not gate.passed:
                gate.explanation = (
                    f"too little held-out traffic supports the challenger's estimate: "
                    f"{evidence.effective_sample_size:.1f} effective samples, min_effective_sample_size is "
                    f"{self.min_effective_sample_size:g} (log more exploring traffic, raise holdout_share, or "
                    f"lower min_effective_sample_size)")
            gates.append(gate)
        return PromotionDecision(
            accepted=all(gate.passed for gate in gates),
            gates=gates,
            reasons=[gate.reason for gate in gates if not gate.passed],
        )

    def _guardrail_gate(self, gate_name: str, increase: float, evidence: UncertaintyEvidence, interval_field: str,
                        allowed: float, threshold_name: str) -> GateResult:
        """An increase that may be at most `allowed`. Point estimates decide, except that a policy deciding on point
        estimates (reward_delta_bound off) reads an off-policy increase's interval: it fails only when the interval's
        low end is above `allowed`, since a few effective samples make the point estimate mostly noise."""
        interval: DeltaInterval | None = getattr(evidence, interval_field)
        if interval is None or evidence.source != "offpolicy" or self.reward_delta_bound != "off":
            return GateResult.check(gate_name, increase, "<=", allowed, threshold_name)
        gate = GateResult.check(gate_name, interval.low, "<=", allowed, threshold_name)
        if not gate.passed:
            gate.explanation = (
                f"{gate_name} is clearly above {threshold_name} {allowed:g}: estimated {interval.estimate:+.4g}, "
                f"and even the low end of its {interval.level:.0%} interval ({interval.source}) is "
                f"{interval.low:+.4g}")
        return gate

    def _reward_delta_bound_gate(self, evidence: UncertaintyEvidence) -> GateResult:
        source = self.reward_delta_bound
        if source == "evidence":
            source = "doubly_robust" if evidence.source == "offpolicy" else "benchmark"
        interval = evidence.benchmark_delta if source == "benchmark" else evidence.doubly_robust_delta
        if interval is None:
            missing = "no benchmark interval" if source == "benchmark" else evidence.unavailable_reason
            return GateResult(gate="reward_delta_lower_bound", value=0.0, comparison=">=",
                              threshold=self.min_reward_delta, threshold_name="min_reward_delta", passed=False,
                              explanation=f"the challenger's reward gain could not be bounded: {missing}")
        gate = GateResult.check("reward_delta_lower_bound", interval.low, ">=", self.min_reward_delta,
                                "min_reward_delta")
        if not gate.passed:
            gate.explanation = (
                f"the challenger's reward gain is not clearly above min_reward_delta {self.min_reward_delta:g}: "
                f"it is {interval.estimate:+.4f}, but its {interval.level:.0%} interval ({interval.source}) reaches "
                f"down to {interval.low:+.4f}")
        return gate
