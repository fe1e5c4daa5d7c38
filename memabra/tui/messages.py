"""Messages the console's thread workers post to the UI (workers never touch widgets)."""

from __future__ import annotations

from textual.message import Message

from memabra.models import CurrentRouter
from memabra.overview import Overview
from memabra.results import CheckResult, CycleResult
from memabra.workflow import ProgressEvent


class CycleProgress(Message):
    """A cycle moved on; a newer event of the same stage replaces one still queued."""

    def __init__(self, event: ProgressEvent):
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CycleProgress) and message.event.stage == self.event.stage


class CycleFinished(Message):
    """A cycle returned its result (promoted, rejected, dry_run, skipped or cancelled)."""

    def __init__(self, result: CycleResult):
        super().__init__()
        self.result = result


class StoreLoaded(Message):
    """A fresh read of the store for the main screen."""

    def __init__(self, overview: Overview, fingerprint: tuple):
        super().__init__()
        self.overview = overview
        self.fingerprint = fingerprint


class RolledBack(Message):
    """A rollback or a reviewed promotion made another version current."""

    def __init__(self, current: CurrentRouter):
        super().__init__()
        self.current = current


class CheckFinished(Message):
    """A store check (or repair) returned what it found."""

    def __init__(self, result: CheckResult):
        super().__init__()
        self.result = result
