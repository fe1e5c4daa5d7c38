"""Executor plug-ins the plug-in tests name on the command line (`--executor tests.executor_plugins:...`)."""

import threading

from memabra.models import Candidate, Task

NEVER = threading.Event()


class KindExecutor:
    """Rewards the candidate kind a task's metadata names; some tasks raise or hang, as real agents do."""

    def execute(self, task: Task, candidate: Candidate):
        if "explode" in task.text:
            raise RuntimeError("the tool crashed")
        if "hang" in task.text:
            NEVER.wait(timeout=600)  # far past any benchmark timeout a test sets
        best = candidate.kind.value == task.metadata["best_kind"]
        return {"reward": 1.0 if best else 0.2, "latency_ms": 5.0}


def make_executor() -> KindExecutor:
    return KindExecutor()


class ChattyExecutor(KindExecutor):
    """Prints as it works, as agents under development do."""

    def execute(self, task: Task, candidate: Candidate):
        print(f"running {candidate.candidate_id} on {task.task_id}")
        return super().execute(task, candidate)


def make_chatty_executor() -> ChattyExecutor:
    print("chatty executor ready")
    return ChattyExecutor()


def broken_factory():
    raise RuntimeError("cannot reach the agent")


def not_an_executor():
    return object()
