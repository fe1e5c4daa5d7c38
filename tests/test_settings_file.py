"""The store's settings file: precedence, where each value came from, bad files, the console writing it, the docs."""

import json
from pathlib import Path

import pytest
from textual.widgets import Input

from memabra.api import run_online_learning_workflow
from memabra.serving import load_active_router
from memabra.settings import Settings, load_settings, settings_file_reference
from memabra.settings_file import EXAMPLE, parse_settings_text
from memabra.storage.store import Store
from memabra.storage.versions import RouterVersionStore
from memabra.store_settings import save_store_settings
from tests.helpers import ROOT, run_main
from tests.console_helpers import SIZE, make_app, settle, text_of


def write_settings(base: Path, text: str) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    path = base / "memabra.toml"
    path.write_text(text)
    return path


def test_a_store_without_the_file_has_the_defaults(tmp_path):
    settings = load_settings(base_dir=tmp_path)
    assert settings.model_dump() == Settings(base_dir=tmp_path).model_dump()
    origins = settings.origins()
    assert origins.pop("base_dir") == "flag" and set(origins.values()) == {"default"}


def test_min_reward_delta_in_the_file_decides_a_plain_cycle_and_a_flag_overrides_it(seeded_store, tmp_path):
    write_settings(seeded_store, "[gates]\nmin_reward_delta = 0.9  # no challenger gains this much\n")
    code, out, err = run_main("--base-dir", seeded_store)
    assert code == 0, err
    rejected = json.loads(out)
    assert rejected["status"] == "rejected" and rejected["policy"]["min_reward_delta"] == 0.9
    assert any("min_reward_delta" in reason for reason in rejected["reasons"])
    assert RouterVersionStore(seeded_store).current() is None

    code, out, err = run_main("--base-dir", seeded_store, "--min-reward-delta", "-1", "--min-new-trajectories", "0")
    assert code == 0, err
    assert json.loads(out)["status"] == "promoted" and json.loads(out)["policy"]["min_reward_delta"] == -1


def test_status_shows_each_value_and_where_it_came_from(tmp_path, monkeypatch):
    base = tmp_path / "store"
    write_settings(base, "min_new_trajectories = 7\nbenchmark_suite = 'suites/mine.json'\n"
                         "[gates]\nrequired_task_count = 30\nmax_error_rate_increase = 0.2\n")
    monkeypatch.setenv("MEMABRA_REQUIRED_TASK_COUNT", "40")
    code, out, err = run_main("--base-dir", base, "--status", "--max-error-rate-increase", "0.3")
    assert code == 0, err
    settings = json.loads(out)["settings"]
    assert settings["min_new_trajectories"] == {"value": 7, "source": "memabra.toml"}
    assert settings["benchmark_suite"] == {"value": str(base / "suites" / "mine.json"), "source": "memabra.toml"}
    assert settings["required_task_count"] == {"value": 40, "source": "environment"}
    assert settings["max_error_rate_increase"] == {"value": 0.3, "source": "flag"}
    assert settings["seed"] == {"value": 7, "source": "default"}
    assert list(settings)[:3] == ["base_dir", "min_new_trajectories", "dry_run"]


@pytest.mark.parametrize("text, named, allowed", [
    ("min_reward_delta = 0.1\n", "min_reward_delta", "[gates]"),
    ("[gates]\nmin_reward_delta = 'high'\n", "[gates] min_reward_delta", "expected a number"),
    ("holdout_share = 1.5\n", "holdout_share", "a number >= 0.0 and < 1.0"),
    ("min_new_trajectories = '50'\n", "min_new_trajectories", "a whole number >= 0"),
    ("exploration = 'wild'\n", "exploration", '"epsilon_greedy", "softmax", "greedy"'),
    ("holdout = 0.1\n", "holdout", "allowed keys: min_new_trajectories, dry_run, holdout_share"),
    ("[gates]\nmin_reward = 0.1\n", "[gates] min_reward", "allowed keys in [gates]: min_reward_delta"),
    ("[gates\n", "not valid TOML", "docs/settings.md"),
])
def test_a_bad_file_is_exit_2_naming_file_key_and_allowed_values_and_nothing_runs(seeded_store, text, named,
                                                                                    allowed, cli):
    path = write_settings(seeded_store, text)
    result = cli("--base-dir", seeded_store, "--min-new-trajectories", "1")
    assert result.code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    line = result.error_lines[0]
    assert str(path) in line and named in line and allowed in line
    assert not (seeded_store / "training-reports").exists()


def test_every_front_end_reads_the_file(seeded_store):
    write_settings(seeded_store, "min_new_trajectories = 100000\nexploration = 'softmax'\ntemperature = 0.5\n")
    result = run_online_learning_workflow(base_dir=seeded_store)
    assert result.status == "skipped" and "100000" in result.reasons[0]
    router = load_active_router(seeded_store)
    assert (router.exploration.kind, router.exploration.temperature) == ("softmax", 0.5)


def test_writing_keeps_comments_and_other_keys_and_logs_the_change(tmp_path):
    store = Store(tmp_path / "store")
    path = write_settings(store.base_dir, "# ops owns this file\nseed = 3  # fixed\n\n[gates]\n"
                                          "# strict in production\nmin_reward_delta = 0.05\n")
    entry = save_store_settings(store, {"min_reward_delta": 0.1, "required_task_count": 80,
                                        "min_new_trajectories": 20, "seed": 3}, reason="tighter")
    text = path.read_text()
    assert "# ops owns this file" in text and "seed = 3  # fixed" in text and "# strict in production" in text
    settings = load_settings(base_dir=store.base_dir)
    assert (settings.gates.min_reward_delta, settings.gates.required_task_count) == (0.1, 80)
    assert settings.min_new_trajectories == 20 and settings.seed == 3
    assert {name: (change.before, change.after) for name, change in entry.settings.items()} == {
        "min_reward_delta": (0.05, 0.1), "required_task_count": (None, 80), "min_new_trajectories": (None, 20)}
    assert save_store_settings(store, {"seed": 3}) is None
    logged = store.history.entries()
    assert [(e.kind, e.reason) for e in logged] == [("settings", "tighter")]
    assert sorted(p.name for p in store.base_dir.iterdir() if p.name.startswith(".memabra")) == []


async def test_a_gate_changed_in_the_console_is_what_the_next_cron_cycle_applies(history_store):
    app = make_app(history_store)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        field = app.screen.query_one("#min_reward_delta", Input)
        field.value = "0.9"
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert app.settings.origins()["min_reward_delta"] == "memabra.toml"
        assert "memabra.toml: min_reward_delta 0.9" in text_of(app, "#settings-sources")
    assert "min_reward_delta = 0.9" in (history_store / "memabra.toml").read_text()
    code, out, err = run_main("--base-dir", history_store)
    assert code == 0, err
    cycle = json.loads(out)
    assert cycle["status"] == "rejected" and cycle["policy"]["min_reward_delta"] == 0.9
    code, out, _ = run_main("--base-dir", history_store, "--history")
    change = json.loads(out)["settings_changes"][0]
    assert change["source"] == "console" and change["settings"]["min_reward_delta"] == {"before": None, "after": 0.9}


def test_docs_settings_md_is_generated_from_the_fields():
    written = (ROOT / "docs" / "settings.md").read_text()
    assert written == settings_file_reference(), "docs/settings.md drifted: run `python -m memabra.settings`"
    for name in list(Settings.model_fields) + ["min_reward_delta", "confidence_level"]:
        assert name == "base_dir" or f"`{name}`" in written or f"`[{name}]`" in written


def test_the_documented_example_is_a_valid_file_and_in_the_readme(tmp_path):
    values = parse_settings_text(tmp_path / "memabra.toml", EXAMPLE, Settings)
    assert values["gates"]["required_task_count"] == 100
    assert EXAMPLE.strip() in (ROOT / "README.md").read_text()
