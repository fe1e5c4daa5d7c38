"""The simulated agent world that ships with memabra: default executor, benchmark suite and demo trajectories."""

from memabra.demo.world import FAMILIES, DemoWorld

__all__ = ["DemoWorld", "FAMILIES"]
