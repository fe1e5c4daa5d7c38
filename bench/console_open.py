"""How fast the console opens and scrolls a store with 1,000 versions and 1,000 reports.

Run: `.venv/bin/python -m bench.console_open [--versions N] [--reports N]` (prints seconds; asserts nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from memabra.demo.history import HistoryStep, write_demo_history
from memabra.overview import load_overview
from memabra.storage.versions import ReportStore, RouterVersionStore


def build_large_store(base_dir: Path, versions: int, reports: int) -> None:
    """Replay a short real history, then copy its versions and reports under fresh ids until the counts are met."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    write_demo_history(base_dir, (HistoryStep(150), HistoryStep(400), HistoryStep(1000)), start)
    version_store, report_store = RouterVersionStore(base_dir), ReportStore(base_dir)
    templates = version_store.versions.list()
    report_templates = report_store.list()
    moment = start + timedelta(days=1)
    for index in range(versions - len(templates)):
        template = templates[index % len(templates)]
        version_store.versions.create(lambda version_id: template.model_copy(
            update={"version_id": version_id, "created_at": moment}), now=moment + timedelta(seconds=index))
    for index in range(reports - len(report_templates)):
        template = report_templates[index % len(report_templates)]
        report_store.create(lambda report_id: template.model_copy(update={"report_id": report_id}),
                            now=moment + timedelta(seconds=index))


async def open_console(base_dir: Path) -> dict[str, float]:
    from textual.widgets import DataTable

    from memabra.tui.app import MemabraConsole

    timings = {}
    started = time.perf_counter()
    app = MemabraConsole(base_dir, poll_seconds=3600)
    async with app.run_test(size=(120, 35)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        timings["open_until_tables_filled_s"] = time.perf_counter() - started
        table = app.query_one("#versions", DataTable)
        assert table.row_count >= 1000, table.row_count
        scroll_started = time.perf_counter()
        for _ in range(40):
            await pilot.press("pagedown")
        await pilot.press("end")
        await pilot.pause()
        timings["scroll_40_pages_and_end_s"] = time.perf_counter() - scroll_started
        reload_started = time.perf_counter()
        app.reload()
        await app.workers.wait_for_complete()
        await pilot.pause()
        timings["reload_s"] = time.perf_counter() - reload_started
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--reports", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base_dir = Path(folder) / "store"
        started = time.perf_counter()
        build_large_store(base_dir, args.versions, args.reports)
        print(f"built {args.versions} versions and {args.reports} reports in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        overview = load_overview(base_dir)
        print(f"load_overview (status + listings): {time.perf_counter() - started:.3f} s "
              f"({len(overview.versions)} versions, {len(overview.reports)} reports)")
        for name, seconds in asyncio.run(open_console(base_dir)).items():
            print(f"{name}: {seconds:.3f}")


if __name__ == "__main__":
    main()
