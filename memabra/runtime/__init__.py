"""The runner and the episodic case index."""

from memabra.runtime.case_index import CaseIndex
from memabra.runtime.runner import AgentRunner, Retriever

__all__ = ["CaseIndex", "AgentRunner", "Retriever"]
