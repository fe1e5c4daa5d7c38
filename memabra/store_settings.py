"""Changing the store's settings file from a front end: under the store's lock, atomically, keeping the comments
and keys it does not change, and recording the change in the store's audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from memabra.errors import SettingError
from memabra.audit_models import HistoryEntry
from memabra.settings import GATE_FIELDS, Settings
from memabra.settings_file import flat_keys, parse_settings_text
from memabra.storage.atomic import atomic_write_bytes
from memabra.storage.history import settings_changes
from memabra.storage.store import Store


def save_store_settings(store: Store, values: dict[str, Any], *, source: str = "console", reason: str | None = None,
                        command: str | None = None) -> HistoryEntry | None:
    """Write settings (by name, the gates by their own names, None removing a key) into `<base-dir>/memabra.toml`
    and append the change to the audit log; None when no value changed."""
    path = store.layout.settings_path
    with store.lock("settings change"):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        before = flat_keys(parse_settings_text(path, text, Settings), Settings)
        try:
            document = tomlkit.parse(text)
        except TOMLKitError as exc:
            raise SettingError("base_dir", f"{path} is not valid TOML ({exc}); fix it first") from None
        for name, value in values.items():
            _set_key(document, "gates" if name in GATE_FIELDS else None, name, value)
        new_text = tomlkit.dumps(document)
        after = flat_keys(parse_settings_text(path, new_text, Settings), Settings)
        changes = settings_changes(_plain(before), _plain(after))
        if not changes:
            return None
        atomic_write_bytes(path, new_text.encode("utf-8"))
        return store.history.append("settings", source, reason=reason, command=command, settings=changes)


def _set_key(document: tomlkit.TOMLDocument, table: str | None, key: str, value: Any) -> None:
    if table is not None:
        if table not in document:
            if value is None:
                return
            document.add(table, tomlkit.table())
        target = document[table]
    else:
        target = document
    if value is None:
        if key in target:
            del target[key]
        return
    value = str(value) if isinstance(value, Path) else value
    if key in target and target[key] == value:
        return  # unchanged keys keep their spelling and their comments
    target[key] = value


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {name: str(value) if isinstance(value, Path) else value for name, value in values.items()}
