"""Features, routers, logging policies and the dataset builder."""

from memabra.learning.dataset import ArtifactIndex, DatasetBuilder, TrainingStats
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.features import FeatureConfig, Featurizer
from memabra.learning.routers import HeuristicRouter, Router, SimpleLearningRouter, router_from_dict

__all__ = [
    "ArtifactIndex",
    "DatasetBuilder",
    "TrainingStats",
    "ExplorationPolicy",
    "FeatureConfig",
    "Featurizer",
    "HeuristicRouter",
    "Router",
    "SimpleLearningRouter",
    "router_from_dict",
]
