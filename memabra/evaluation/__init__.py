"""Benchmark suites, the evaluator that scores routers on them, and the promotion policy."""

from memabra.evaluation.benchmark import BenchmarkSuite, BenchmarkTask
from memabra.evaluation.evaluator import Evaluation, Evaluator, Executor
from memabra.models import PromotionPolicy

__all__ = ["BenchmarkSuite", "BenchmarkTask", "Evaluation", "Evaluator", "Executor", "PromotionPolicy"]
