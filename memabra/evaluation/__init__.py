"""Benchmark suites, the evaluator that scores routers on them, off-policy estimates and the promotion gates."""

from memabra.evaluation.benchmark import BenchmarkSuite, BenchmarkTask
from memabra.evaluation.evaluator import Evaluation, Evaluator, Executor
from memabra.evaluation.gates import PromotionPolicy

__all__ = ["BenchmarkSuite", "BenchmarkTask", "Evaluation", "Evaluator", "Executor", "PromotionPolicy"]
