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


class GatedDemoExecutor:
    """The demo world's executor, waiting first until the file MEMABRA_TEST_GATE names exists (a cycle that holds
    the lock until the test lets it go)."""

    def __init__(self):
        import os
        from pathlib import Path

        from memabra.demo.world import DemoWorld

        self.world = DemoWorld(7)
        self.gate = Path(os.environ["MEMABRA_TEST_GATE"])

    def execute(self, task: Task, candidate: Candidate):
        import time

        while not self.gate.exists():
            time.sleep(0.05)
        return self.world.execute(task, candidate)


def make_gated_demo_executor() -> GatedDemoExecutor:
    return GatedDemoExecutor()
