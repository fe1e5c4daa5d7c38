"""Errors an operator can act on, each with the exit code the CLI returns for it."""

from __future__ import annotations

import re
from typing import Callable

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_REGRESSED = 3
"""`--guard-check` found the active version regressed against its prior (`regressed`), or rolled it back
(`rolled_back`): a cron job can alert on it."""
EXIT_CHECK_FAILED = 4
EXIT_LOCKED = 75
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class MemabraError(Exception):
    """Base of every error memabra raises on purpose; its message is one line for a person."""

    exit_code = EXIT_UNEXPECTED


class BadInputError(MemabraError):
    """The caller asked for something malformed or missing (bad id, bad flag, unusable path)."""

    exit_code = EXIT_BAD_INPUT


class LockHeldError(MemabraError):
    """Another cycle or rollback holds the base dir's lock."""

    exit_code = EXIT_LOCKED

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder


class CorruptDocumentError(MemabraError):
    """A file in the store is not a whole, valid document."""

    def __init__(self, path, detail: str):
        self.path = path
        self.detail = detail
        super().__init__(self.worded())

    def worded(self, check_command: str = "python -m memabra.cli --check") -> str:
        """The message with the check to run spelled out (front ends give it the store path in use)."""
        return f"{self.path} is not a valid document ({self.detail}); run `{check_command}` to see how to repair it"


class StoreWriteError(MemabraError):
    """The store could not be written (read-only folder, full disk); nothing was half-written."""


class CycleCancelled(MemabraError):
    """A running cycle was cancelled between batches; it wrote nothing."""


class SettingError(BadInputError):
    """A setting has a value it cannot take. The message names settings as `{setting:NAME}`, so each front end
    words them its own way (`--holdout-share` for the CLI; the console and memabra.toml say `holdout_share`)."""

    def __init__(self, setting: str, template: str):
        self.setting = setting
        self.template = template
        super().__init__(self.worded())

    def worded(self, label: Callable[[str], str] = str) -> str:
        """The message with each named setting called `label(name)`."""
        return _SETTING_REFERENCE.sub(lambda match: label(match.group(1)), self.template)


_SETTING_REFERENCE = re.compile(r"\{setting:(\w+)\}")
