"""The store's settings file, `<base-dir>/memabra.toml`: read and checked key by key against the settings' own
fields, so a bad file is one line naming the file, the key and the values it may take; and its reference page.

A field whose type is a pydantic model is a table of the file (`[gates]`); adding such a field adds the table.
"""

from __future__ import annotations

import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import annotated_types
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from memabra.errors import SettingError

FILE_NAME = "memabra.toml"
NOT_IN_FILE = ("base_dir",)
"""Settings the file cannot hold: it lives in the base dir, so it cannot choose it."""
REFERENCE_PATH = Path("docs/settings.md")
EXAMPLE = """# <base-dir>/memabra.toml: what every cycle of this store applies, whoever starts it
min_new_trajectories = 200
holdout_share = 0.3
executor = "my_agent.bench:make_executor"   # your agent runs the benchmark
benchmark_suite = "suites/support.json"     # relative to the base dir

[gates]
min_reward_delta = 0.01
max_error_rate_increase = 0.01
max_latency_increase_ms = 200
required_task_count = 100
reward_delta_bound = "benchmark"
"""
"""A settings file as a team might keep it (shown in README and docs/settings.md, and checked by the tests)."""


def plain_annotation(info: FieldInfo) -> Any:
    """A field's type without `| None`."""
    annotation = info.annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
    return annotation


def table_model(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a field that is a table of the file, or None for a plain key."""
    annotation = plain_annotation(info)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def file_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The top-level keys and tables a settings file may hold, in declaration order."""
    return {name: info for name, info in model.model_fields.items() if name not in NOT_IN_FILE}


def allowed_values(info: FieldInfo) -> str:
    """What a key may be set to, in words (`a number >= 0 and < 1`, `one of "off", "benchmark"`)."""
    annotation = plain_annotation(info)
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(f'"{choice}"' for choice in typing.get_args(annotation))
    kind = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            Path: "a path (relative to the base dir)"}.get(annotation, "a value")
    bounds = []
    for constraint in info.metadata:
        for attribute, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(constraint, getattr(annotated_types, attribute.capitalize())):
                bounds.append(f"{sign} {getattr(constraint, attribute)}")
    return kind + (" " + " and ".join(bounds) if bounds else "")


def _type_fits(annotation: Any, value: Any) -> bool:
    if annotation is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if annotation is int:
        return isinstance(value, int)
    if annotation is float:
        return isinstance(value, (int, float))
    if annotation in (str, Path) or typing.get_origin(annotation) is typing.Literal:
        return isinstance(value, str)
    return True


def _check_value(path: Path, where: str, key: str, info: FieldInfo, value: Any) -> Any:
    annotation = plain_annotation(info)
    problem = f"{path}: {where} = {value!r} is not allowed: expected {allowed_values(info)}"
    if isinstance(value, dict) or not _type_fits(annotation, value):
        raise SettingError(key, problem)
    try:
        checked = TypeAdapter(Annotated[annotation, *info.metadata] if info.metadata else annotation).validate_python(value)
    except ValidationError:
        raise SettingError(key, problem) from None
    if annotation is Path and not checked.is_absolute():
        checked = path.parent / checked
    return checked


def _check_table(path: Path, data: dict[str, Any], model: type[BaseModel], table: str | None) -> dict[str, Any]:
    fields = file_fields(model) if table is None else model.model_fields
    values: dict[str, Any] = {}
    for key, value in data.items():
        where = f"[{table}] {key}" if table else key
        info = fields.get(key)
        if info is None:
            raise SettingError(key, f"{path}: unknown key {where}; {_known_keys(model, table, key, fields)}")
        nested = table_model(info)
        if nested is None:
            values[key] = _check_value(path, where, key, info, value)
        elif isinstance(value, dict):
            values[key] = _check_table(path, value, nested, key)
        else:
            raise SettingError(key, f"{path}: {key} = {value!r} is not allowed: expected a table [{key}] of "
                                    f"{', '.join(nested.model_fields)}")
    return values


def _known_keys(model: type[BaseModel], table: str | None, key: str, fields: dict[str, FieldInfo]) -> str:
    if table is None:
        for name, info in fields.items():
            nested = table_model(info)
            if nested is not None and key in nested.model_fields:
                return f"it belongs in the [{name}] table"
    keys = [f"[{name}]" if table_model(info) else name for name, info in fields.items()]
    return "allowed keys" + (f" in [{table}]" if table else "") + ": " + ", ".join(keys)


def read_settings_file(path: Path, model: type[BaseModel]) -> dict[str, Any]:
    """The file's values as settings data ({} when there is no file); a SettingError naming the file, the key and
    the allowed values when a key is unknown or holds a value it cannot take."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return {}  # no store yet, or a base dir that is a file (refused where the base dir is checked)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingError("base_dir", f"{path} cannot be read ({exc}); fix it or remove it") from None
    return parse_settings_text(path, text, model)


def parse_settings_text(path: Path, text: str, model: type[BaseModel]) -> dict[str, Any]:
    """Settings data from the text of a settings file at `path` (see read_settings_file)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingError("base_dir", f"{path} is not valid TOML ({exc}); fix it (see {REFERENCE_PATH})") from None
    return _check_table(path, data, model, None)


def flat_keys(values: dict[str, Any], model: type[BaseModel], flattened: tuple[str, ...] = ("gates",)) -> dict[str, Any]:
    """A file's values by setting name: keys of the `flattened` tables by their own names, of other tables as
    `table.key`."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and table_model(model.model_fields[key]) is not None:
            for inner, inner_value in value.items():
                flat[inner if key in flattened else f"{key}.{inner}"] = inner_value
        else:
            flat[key] = value
    return flat


def settings_reference(model: type[BaseModel]) -> str:
    """docs/settings.md: every key and table of the settings file with its allowed values, default and meaning,
    generated from the fields."""
    lines = ["# The store's settings file: `<base-dir>/memabra.toml`", "",
             "<!-- Generated from memabra/settings.py by `python -m memabra.settings`; "
             "tests/test_settings_file.py fails when it drifts. -->", "",
             "Settings every front end reads once the base dir is known (the CLI, the console, "
             "`run_online_learning_workflow`, `load_active_router`). Precedence: flags > `MEMABRA_*` environment "
             "variables > this file > defaults. A store without the file behaves as if every key had its default. "
             "An unknown key, a value of the wrong type or an impossible value stops every command with exit 2 and "
             "one line naming the file, the key and the allowed values. Relative paths are relative to the base dir. "
             "The console's gates dialog (`t`) rewrites the keys it changes and keeps everything else, comments "
             "included; each change is recorded in the store's history.", "", "## Example", "", "```toml",
             EXAMPLE.rstrip(), "```", ""]
    tables: list[tuple[str, type[BaseModel]]] = []
    rows = []
    for name, info in file_fields(model).items():
        nested = table_model(info)
        if nested is not None:
            tables.append((name, nested))
        else:
            rows.append(_reference_row(name, info))
    lines += ["## Top-level keys", "", "| key | allowed values | default | what it does |", "|---|---|---|---|", *rows]
    for table, nested in tables:
        described = " ".join((model.model_fields[table].description or "").split())
        lines += ["", f"## `[{table}]`", "", described, "", "| key | allowed values | default | what it does |",
                  "|---|---|---|---|", *(_reference_row(name, info) for name, info in nested.model_fields.items())]
    return "\n".join(lines) + "\n"


def _reference_row(name: str, info: FieldInfo) -> str:
    default = info.get_default(call_default_factory=True)
    shown = "none" if default is None else f"`{default}`"
    what = " ".join((info.description or "").split()).replace("|", "\\|")
    return f"| `{name}` | {allowed_values(info)} | {shown} | {what} |"

