"""The settings file read and written in process: each refusal's exact words, relative paths, the tables' flat names,
files that cannot be read, and writes that remove keys or leave a file's spelling alone."""

import locale
from pathlib import Path

import pytest

from memabra.errors import SettingError
from memabra.settings import Settings, load_settings
from memabra.settings_file import flat_keys, parse_settings_text, read_settings_file
from memabra.storage.store import Store
from memabra.store_settings import save_store_settings

FILE = Path("/srv/store/memabra.toml")
GATE_KEYS = ("min_reward_delta, max_error_rate_increase, max_latency_increase_ms, required_task_count, "
             "reward_delta_bound, min_effective_sample_size, confidence_level, interval, gate_profile")


@pytest.mark.parametrize("text, setting, message", [
    ("min_reward_delta = 0.1\n", "min_reward_delta", "unknown key min_reward_delta; it belongs in the [gates] table"),
    ("[gates]\nmin_reward_delta = 'high'\n", "min_reward_delta",
     "[gates] min_reward_delta = 'high' is not allowed: expected a number"),
    ("holdout_share = 1.5\n", "holdout_share", "holdout_share = 1.5 is not allowed: expected a number >= 0.0 and < 1.0"),
    ("min_new_trajectories = '50'\n", "min_new_trajectories",
     "min_new_trajectories = '50' is not allowed: expected a whole number >= 0"),
    ("min_new_trajectories = true\n", "min_new_trajectories",
     "min_new_trajectories = True is not allowed: expected a whole number >= 0"),
    ("min_new_trajectories = 2.5\n", "min_new_trajectories",
     "min_new_trajectories = 2.5 is not allowed: expected a whole number >= 0"),
    ("dry_run = 1\n", "dry_run", "dry_run = 1 is not allowed: expected true or false"),
    ("executor = 5\n", "executor", "executor = 5 is not allowed: expected text"),
    ("exploration = 'wild'\n", "exploration",
     'exploration = \'wild\' is not allowed: expected one of "epsilon_greedy", "softmax", "greedy"'),
    ("seed = {a = 1}\n", "seed",
     "seed = {'a': 1} is not allowed: expected a whole number >= 0 and <= 9223372036854775807"),
    ("holdout = 0.1\n", "holdout",
     "unknown key holdout; allowed keys: min_new_trajectories, dry_run, holdout_share, evidence, [gates], [guard], "
     "benchmark_concurrency, benchmark_timeout, engine, dask_address, half_life, metadata_words, metadata_features, "
     "payload_features, executor, benchmark_suite, exploration, epsilon, temperature, seed"),
    ("[gates]\nmin_reward = 0.1\n", "min_reward",
     f"unknown key [gates] min_reward; allowed keys in [gates]: {GATE_KEYS}"),
    ("gates = 3\n", "gates", f"gates = 3 is not allowed: expected a table [gates] of {GATE_KEYS}"),
])
def test_a_refused_key_names_the_file_the_key_and_what_it_may_be(text, setting, message):
    with pytest.raises(SettingError) as refused:
        parse_settings_text(FILE, text, Settings)
    assert (refused.value.setting, str(refused.value)) == (setting, f"{FILE}: {message}")


def test_a_file_that_is_not_toml_points_at_the_reference():
    with pytest.raises(SettingError) as refused:
        parse_settings_text(FILE, "[gates\n", Settings)
    assert refused.value.setting == "base_dir"
    assert str(refused.value) == (f"{FILE} is not valid TOML (Expected ']' at the end of a table declaration (at "
                                  "line 1, column 7)); fix it (see docs/settings.md)")


def test_values_are_checked_and_converted_and_relative_paths_are_relative_to_the_file():
    values = parse_settings_text(FILE, 'holdout_share = 0\ntemperature = 1\nbenchmark_suite = "suites/x.json"\n'
                                       'executor = "agent:make"\nmetadata_words = ["team"]\n'
                                       '[gates]\nrequired_task_count = 80\n[guard]\nmode = "alert"\n', Settings)
    assert values == {"holdout_share": 0.0, "temperature": 1.0, "benchmark_suite": Path("/srv/store/suites/x.json"),
                      "executor": "agent:make", "metadata_words": ["team"], "gates": {"required_task_count": 80},
                      "guard": {"mode": "alert"}}
    assert type(values["holdout_share"]) is float and type(values["gates"]["required_task_count"]) is int
    assert parse_settings_text(FILE, 'benchmark_suite = "/abs/x.json"\n', Settings) == {
        "benchmark_suite": Path("/abs/x.json")}
    assert flat_keys(values, Settings) == {
        "holdout_share": 0.0, "temperature": 1.0, "benchmark_suite": Path("/srv/store/suites/x.json"),
        "executor": "agent:make", "metadata_words": ["team"], "required_task_count": 80, "guard.mode": "alert"}


def test_a_missing_file_is_no_settings_and_an_unreadable_one_is_refused(tmp_path):
    assert read_settings_file(tmp_path / "memabra.toml", Settings) == {}
    (tmp_path / "plain").write_text("x")
    assert read_settings_file(tmp_path / "plain" / "memabra.toml", Settings) == {}
    (tmp_path / "memabra.toml").write_bytes(b"seed = 3\n\xff\n")
    with pytest.raises(SettingError) as refused:
        read_settings_file(tmp_path / "memabra.toml", Settings)
    assert refused.value.setting == "base_dir"
    assert str(refused.value).startswith(f"{tmp_path / 'memabra.toml'} cannot be read (")
    assert str(refused.value).endswith("); fix it or remove it")
    (tmp_path / "memabra.toml").write_bytes(b"seed = 3\n")
    assert read_settings_file(str(tmp_path / "memabra.toml"), Settings) == {"seed": 3}
    (tmp_path / "memabra.toml").unlink()
    (tmp_path / "memabra.toml").mkdir()
    with pytest.raises(SettingError, match="cannot be read"):
        read_settings_file(tmp_path / "memabra.toml", Settings)


def test_a_write_removes_keys_given_none_and_keeps_unchanged_spelling(tmp_path):
    store = Store(tmp_path / "store")
    path = store.base_dir / "memabra.toml"
    store.base_dir.mkdir(parents=True)
    path.write_text("seed = 3  # fixed\nholdout_share = 0.30\n")
    entry = save_store_settings(store, {"seed": None, "holdout_share": 0.3, "min_reward_delta": None,
                                        "benchmark_suite": Path("suites/a.json")}, source="cli", command="set")
    assert path.read_text() == 'holdout_share = 0.30\nbenchmark_suite = "suites/a.json"\n'
    assert {name: (change.before, change.after) for name, change in entry.settings.items()} == {
        "seed": (3, None), "benchmark_suite": (None, str(store.base_dir / "suites" / "a.json"))}
    assert (entry.source, entry.command) == ("cli", "set")
    assert load_settings(base_dir=store.base_dir).seed == Settings(base_dir=store.base_dir).seed
    assert save_store_settings(store, {"min_reward_delta": None}) is None
    assert "[gates]" not in path.read_text()
    save_store_settings(store, {"min_reward_delta": 0.2})
    save_store_settings(store, {"min_reward_delta": None})
    assert load_settings(base_dir=store.base_dir).gates.min_reward_delta == Settings(
        base_dir=store.base_dir).gates.min_reward_delta


def test_a_write_to_a_store_without_the_file_creates_it(tmp_path):
    store = Store(tmp_path / "store")
    entry = save_store_settings(store, {"min_reward_delta": 0.25, "seed": 9})
    assert (store.base_dir / "memabra.toml").read_text() == "seed = 9\n\n[gates]\nmin_reward_delta = 0.25\n"
    assert {name: change.after for name, change in entry.settings.items()} == {"min_reward_delta": 0.25, "seed": 9}


def test_optional_and_union_fields_of_any_settings_model_are_read_by_their_type(tmp_path):
    from typing import Optional

    from pydantic import BaseModel, Field

    class Options(BaseModel):
        count: Optional[int] = Field(None, ge=0)
        label: int | str | None = None

    assert parse_settings_text(FILE, 'count = 3\nlabel = "a"\n', Options) == {"count": 3, "label": "a"}
    with pytest.raises(SettingError) as refused:
        parse_settings_text(FILE, 'count = "x"\n', Options)
    assert str(refused.value) == f"{FILE}: count = 'x' is not allowed: expected a whole number >= 0"


def test_a_write_holds_the_store_lock_as_a_settings_change_and_logs_its_source(tmp_path, monkeypatch):
    import memabra.store_settings as store_settings
    from memabra.storage.lock import lock_holder

    store = Store(tmp_path / "store")
    held = []
    real_write = store_settings.atomic_write_bytes

    def write(path, data):
        held.append(lock_holder(store.base_dir)["operation"])
        real_write(path, data)

    monkeypatch.setattr(store_settings, "atomic_write_bytes", write)
    entry = save_store_settings(store, {"seed": 4})
    assert held == ["settings change"] and entry.source == "console"


def test_a_write_reads_and_keeps_a_utf8_file_under_an_ascii_locale(tmp_path):
    store = Store(tmp_path / "store")
    path = store.base_dir / "memabra.toml"
    store.base_dir.mkdir(parents=True)
    path.write_bytes('# équipe « routage »\nexecutor = "agent:café"\n'.encode("utf-8"))
    previous = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        entry = save_store_settings(store, {"seed": 5})
    finally:
        locale.setlocale(locale.LC_CTYPE, previous)
    assert path.read_bytes().decode("utf-8") == '# équipe « routage »\nexecutor = "agent:café"\nseed = 5\n'
    assert {name: change.after for name, change in entry.settings.items()} == {"seed": 5}
