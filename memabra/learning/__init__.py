"""The learning stages (scan, dataset, train), features, routers and logging policies."""

from memabra.learning.dataset import DatasetBuilder, TrainingStats
from memabra.learning.exploration import ExplorationPolicy
from memabra.learning.features import FeatureConfig, Featurizer
from memabra.learning.routers import HeuristicRouter, Router, SimpleLearningRouter
from memabra.learning.scan import ArtifactIndex
from memabra.learning.train import train_router
from memabra.learning.versions import router_from_dict

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
    "train_router",
]
