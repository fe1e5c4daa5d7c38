"""A seeded store with a fixed history (versions, reports, current) for the console's tests and snapshots."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import orjson

from memabra.demo.history import HistoryStep, write_demo_history

HISTORY_START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
HISTORY = (HistoryStep(150), HistoryStep(250), HistoryStep(100, "dry_run"), HistoryStep(500),
           HistoryStep(1000, "rejected"), HistoryStep(2000, "appended"))
"""Five real cycles (promoted, promoted, dry run that would fail, promoted, rejected), then 2,000 new trajectories."""

OFF_POLICY = {
    "held_out_count": 400,
    "estimators": {
        "ips": {"baseline": {"estimate": 0.612, "low": 0.571, "high": 0.655, "ess": 388.0},
                "challenger": {"estimate": 0.803, "low": 0.702, "high": 0.901, "ess": 61.5},
                "delta": {"estimate": 0.191, "low": 0.082, "high": 0.297, "ess": 61.5}},
        "dr": {"baseline": {"estimate": 0.618, "low": 0.590, "high": 0.646, "ess": 388.0},
               "challenger": {"estimate": 0.811, "low": 0.760, "high": 0.860, "ess": 61.5},
               "delta": {"estimate": 0.193, "low": 0.139, "high": 0.247, "ess": 61.5}},
    },
}


def build_history(base_dir: Path):
    """Run the fixed history of cycles on an empty store."""
    return write_demo_history(base_dir, HISTORY, HISTORY_START)


def add_off_policy(base_dir: Path, report_id: str) -> None:
    """Give one stored report the estimates a cycle with held-out traffic writes (history cycles hold none out)."""
    path = base_dir / "training-reports" / f"{report_id}.json"
    document = orjson.loads(path.read_bytes())
    document["off_policy"].update(OFF_POLICY)
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
