"""The benchmark harness: `make bench` (or `python -m bench [--full] [--runs N]`) measures whole processes and
writes bench/results/results.md and results.json. CI never runs it; no test asserts on its numbers."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work"
RESULTS = ROOT / "bench" / "results"
VW_VENV = WORK / "vw-venv"
VW_REQUIREMENTS = ["vowpalwabbit==9.11.9", "orjson==3.13.0"]
NEW_SEGMENTS = 2
"""The incremental case: the newest 2 segments (10,000 trajectories) are new, the rest seen and cached."""


def run_process(args: list[str], source: Path = ROOT, python: str = sys.executable) -> tuple[dict, float, float]:
    """Run one probe in a fresh process (memabra imported from `source`); return its JSON, wall time and peak MB."""
    env = {**os.environ, "PYTHONPATH": f"{source}{os.pathsep}{ROOT}"}
    env.pop("MEMABRA_BASE_DIR", None)
    start = time.perf_counter()
    # cwd is the first entry of a `-m` process's path, so it decides which memabra is imported.
    process = subprocess.Popen([python, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=source)
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{stderr.decode()[-2000:]}")
    document = json.loads(stdout.decode().strip().splitlines()[-1])
    return document, wall, document.get("peak_mb", 0.0)


def probe(name: str, *args: str, source: Path = ROOT) -> tuple[dict, float, float]:
    return run_process(["-m", "bench.probes", name, *map(str, args)], source=source)


def median_of(runs: int, measure) -> dict:
    """Run `measure()` (returning a dict of numbers) several times; keep each number's median."""
    samples = [measure() for _ in range(runs)]
    return _median_dicts(samples)


def _median_dicts(samples: list):
    first = samples[0]
    if isinstance(first, dict):
        return {key: _median_dicts([sample[key] for sample in samples]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return statistics.median(samples)
    return first


# -- stores ---------------------------------------------------------------------------------------------------------

def demo_store(size: int) -> Path:
    """A store of `size` demo trajectories (seed 7), generated once and kept under bench/.work/stores/."""
    base = WORK / "stores" / f"{size}"
    marker = base / ".bench-complete"
    if not marker.exists():
        shutil.rmtree(base, ignore_errors=True)
        print(f"generating {size:,} demo trajectories ...", file=sys.stderr, flush=True)
        for chunk_start in range(0, size, 100_000):
            probe("demo", base, min(100_000, size - chunk_start))
        marker.write_text(json.dumps(sorted(os.listdir(base / "trajectories"))))
    return base


def segment_keys(base: Path) -> list[str]:
    return [name[:-5] for name in json.loads((base / ".bench-complete").read_text())]


def reset_store(base: Path, keep_cache: bool = False) -> None:
    """Back to only the generated trajectories: no versions, reports, seen ids, benchmark segments (or cache)."""
    for name in ("router-versions", "training-reports"):
        shutil.rmtree(base / name, ignore_errors=True)
    (base / "seen-trajectories.json").unlink(missing_ok=True)
    if not keep_cache:
        shutil.rmtree(base / ".cache", ignore_errors=True)
    generated = set(json.loads((base / ".bench-complete").read_text()))
    for path in (base / "trajectories").iterdir():
        if path.name not in generated:
            path.unlink()


def prepare_incremental(base: Path, source: Path = ROOT) -> None:
    """As after a cycle that saw all but the newest segments: those seen, cached and (where the code keeps one) in
    the running total; the newest ones new and not cached."""
    reset_store(base, keep_cache=True)
    keys = segment_keys(base)
    folder, aside = base / "trajectories", WORK / "aside"
    aside.mkdir(parents=True, exist_ok=True)
    for key in keys[-NEW_SEGMENTS:]:
        os.replace(folder / f"{key}.json", aside / f"{key}.json")
    try:
        probe("scan", base, source=source)  # the earlier cycle's scan, over the segments it saw
    finally:
        for key in keys[-NEW_SEGMENTS:]:
            os.replace(aside / f"{key}.json", folder / f"{key}.json")
    seen = {"trajectory_ids": [], "segments": keys[:-NEW_SEGMENTS], "updated_at": None}
    (base / "seen-trajectories.json").write_text(json.dumps(seen))
    for key in keys[-NEW_SEGMENTS:]:
        (base / ".cache" / "segments" / f"{key}.npz").unlink(missing_ok=True)


# -- measurements ---------------------------------------------------------------------------------------------------

def measure_cycle(base: Path, runs: int, incremental: bool, source: Path = ROOT) -> dict:
    if incremental:
        reset_store(base, keep_cache=True)
        probe("cycle", base, 0, source=source)  # fills the cache of every segment

    def once():
        prepare_incremental(base, source) if incremental else reset_store(base)
        result, wall, peak = probe("cycle", base, 0, source=source)
        return {"seconds": wall, "cpu_seconds": result["cpu_seconds"], "peak_mb": peak, "stages": result["stages"],
                "training": result["training"], "new": result["new"]}

    result = median_of(runs, once)
    reset_store(base, keep_cache=True)
    return result


def measure_floor(base: Path, runs: int) -> dict:
    def once():
        floor, wall, peak = probe("floor", base, "gc")
        _, wall_nogc, _ = probe("floor", base, "nogc")
        return {"seconds": wall, "cpu_seconds": floor["cpu_seconds"], "seconds_gc_off": wall_nogc, "peak_mb": peak}

    return median_of(runs, once)


def measure_demo(count: int, runs: int, source: Path = ROOT) -> dict:
    def once():
        target = WORK / "demo-run"
        shutil.rmtree(target, ignore_errors=True)
        result, wall, peak = probe("demo", target, count, source=source)
        shutil.rmtree(target, ignore_errors=True)
        return {"seconds": wall, "cpu_seconds": result["cpu_seconds"], "peak_mb": peak}

    return median_of(runs, once)


def vw_python() -> str | None:
    """The harness's own VW venv (created on first use); None when VW cannot be installed here."""
    python = VW_VENV / "bin" / "python"
    if not (VW_VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VW_VENV)], check=True)
        installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *VW_REQUIREMENTS])
        if installed.returncode != 0:
            return None
        (VW_VENV / ".installed").touch()
    return str(python)


def measure_training(base: Path, runs: int) -> dict:
    export = WORK / f"logs-{base.name}.jsonl"
    ours = median_of(runs, lambda: probe("train", base, export)[0])
    python = vw_python()
    vw = None
    if python:
        vw = median_of(runs, lambda: run_process([str(ROOT / "bench" / "vw_probe.py"), str(export)],
                                                 python=python)[0])
    return {"memabra": ours, "vowpal_wabbit": vw}


# -- report ---------------------------------------------------------------------------------------------------------

def targets(results: dict) -> list[dict]:
    """Each target of issue 7 with the measured value and whether it is met."""
    checks = []

    def check(name, value, limit, met):
        checks.append({"target": name, "measured": value, "limit": limit, "met": bool(met)})

    cycles, floors = results["first_cycle"], results["parse_floor"]
    if "100000" in cycles:
        ratio = cycles["100000"]["seconds"] / floors["100000"]["seconds"]
        check("first cycle at 100k / parse floor", round(ratio, 2), "<= 1.5", ratio <= 1.5)
        cpu_ratio = cycles["100000"]["cpu_seconds"] / floors["100000"]["cpu_seconds"]
        check("first cycle at 100k / parse floor, CPU seconds", round(cpu_ratio, 2), "<= 1.5", cpu_ratio <= 1.5)
        check("first cycle at 100k peak memory (MB)", round(cycles["100000"]["peak_mb"]), "< 1024",
              cycles["100000"]["peak_mb"] < 1024)
    incremental = results["incremental"]
    largest = max(incremental, key=int)
    ratio = incremental[largest]["seconds"] / cycles["10000"]["seconds"]
    check(f"cycle with {int(largest):,} stored, 10k new / 10k stored, 10k new", round(ratio, 2), "<= 2", ratio <= 2)
    check(f"cycle with {int(largest):,} stored, 10k new: peak memory (MB)", round(incremental[largest]["peak_mb"]),
          "< 1536", incremental[largest]["peak_mb"] < 1536)
    for size, appended in results["append"].items():
        check(f"append p50 at {int(size):,} stored (us)", round(appended["dict"]["p50_us"], 1), "< 1000",
              appended["dict"]["p50_us"] < 1000)
    check("route p50, 6 candidates (us)", round(results["route"]["router"]["p50_us"], 1), "< 100",
          results["route"]["router"]["p50_us"] < 100)
    training = results["training"]
    ours, vw = training["memabra"], training["vowpal_wabbit"]
    if vw:
        speedup = ours["per_second"] / vw["per_second"]
        check("training throughput / VW", round(speedup, 1), ">= 5", speedup >= 5)
        cpu_speedup = ours["per_cpu_second"] / vw["per_cpu_second"]
        check("training throughput per CPU second / VW's", round(cpu_speedup, 1), ">= 5", cpu_speedup >= 5)
        check("policy value - VW's", round(ours["policy_value"] - vw["policy_value"], 4), ">= 0",
              ours["policy_value"] >= vw["policy_value"])
    share = ours["policy_value"] / ours["oracle_value"]
    check("policy value / oracle after 10k", round(share, 4), ">= 0.98", share >= 0.98)
    check("demo generation, 100k (s)", round(results["demo_generation"]["seconds"], 2), "< 5",
          results["demo_generation"]["seconds"] < 5)
    check("demo generation, 100k (CPU s)", round(results["demo_generation"]["cpu_seconds"], 2), "< 5",
          results["demo_generation"]["cpu_seconds"] < 5)
    return checks


def markdown(results: dict) -> str:
    lines = [f"# memabra benchmark ({results['machine']})", "",
             f"Medians of {results['runs']} runs, each a fresh process; times in seconds, memory is peak RSS in MB.",
             f"Load average while measuring: {results.get('load_average', '?')} (this 2-core machine is shared; "
             "where wall time and CPU time part, the machine was busy with other work).",
             "", "## Targets", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    lines += [f"| {c['target']} | {c['measured']} | {c['limit']} | {'yes' if c['met'] else '**no**'} |"
              for c in results["targets"]]
    lines += ["", "## Cycles by stage", "",
              "| case | total | CPU | startup | load | dataset | train | evaluate | save | peak MB | parse floor "
              "(GC on / off) | total / floor |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, group in (("first cycle", results["first_cycle"]), ("10k new", results["incremental"])):
        for size, cycle in sorted(group.items(), key=lambda item: int(item[0])):
            stages = cycle["stages"]
            floor = results["parse_floor"].get(size)
            floor_text = f"{floor['seconds']:.2f} / {floor['seconds_gc_off']:.2f}" if floor else ""
            ratio = f"{cycle['seconds'] / floor['seconds']:.2f}" if floor and label == "first cycle" else ""
            lines.append(f"| {label}, {int(size):,} stored | {cycle['seconds']:.2f} | {cycle['cpu_seconds']:.2f} | "
                         f"{stages['startup']:.2f} | "
                         f"{stages['load']:.2f} | {stages['dataset']:.2f} | {stages['train']:.3f} | "
                         f"{stages['evaluate']:.2f} | {stages['save']:.2f} | {cycle['peak_mb']:.0f} | "
                         f"{floor_text} | {ratio} |")
    lines += ["", "## Append and route (microseconds)", "", "| what | p50 | p99 | max |", "|---|---|---|---|"]
    for size, appended in results["append"].items():
        for kind in ("dict", "model"):
            a = appended[kind]
            lines.append(f"| append a {kind}, {int(size):,} stored | {a['p50_us']:.1f} | {a['p99_us']:.1f} | "
                         f"{a['max_us']:.0f} |")
    for kind in ("router", "served_with_exploration"):
        r = results["route"][kind]
        lines.append(f"| route 6 candidates ({kind}) | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['max_us']:.0f} |")
    training = results["training"]
    lines += ["", "## Training on 10k logged trajectories", "",
              "| learner | trajectories/s | per CPU second | policy value | oracle |", "|---|---|---|---|---|"]
    ours = training["memabra"]
    lines.append(f"| memabra | {ours['per_second']:,.0f} | {ours['per_cpu_second']:,.0f} | "
                 f"{ours['policy_value']:.4f} | {ours['oracle_value']:.4f} |")
    if training["vowpal_wabbit"]:
        vw = training["vowpal_wabbit"]
        lines.append(f"| Vowpal Wabbit cb_explore_adf -q sa, one pass | {vw['per_second']:,.0f} | "
                     f"{vw['per_cpu_second']:,.0f} | {vw['policy_value']:.4f} | {ours['oracle_value']:.4f} |")
    demo = results["demo_generation"]
    lines += ["", f"Demo generation: 100,000 trajectories in {demo['seconds']:.2f} s (whole process, "
              f"{demo['cpu_seconds']:.2f} s CPU, peak {demo['peak_mb']:.0f} MB).", ""]
    return "\n".join(lines)


def before_after(before: Path, runs: int) -> dict:
    """The measurements whose targets were missed at first, for an earlier checkout and for this one."""
    measured = {}
    for label, source in (("before", before), ("after", ROOT)):
        hundred_k, ten_k = demo_store(100_000), demo_store(10_000)
        measured[label] = {
            "first cycle, 10,000 stored": measure_cycle(ten_k, runs, incremental=False, source=source),
            "first cycle, 100,000 stored": measure_cycle(hundred_k, runs, incremental=False, source=source),
            "10k new, 100,000 stored": measure_cycle(hundred_k, runs, incremental=True, source=source),
            "demo generation, 100,000": measure_demo(100_000, runs, source=source),
        }
    return measured


def before_after_markdown(measured: dict, before: str) -> str:
    lines = [f"# Before and after ({before} against this checkout)", "",
             "Whole processes, medians; wall seconds with CPU seconds in brackets, peak RSS in MB.", "",
             "| measurement | before | after | before peak MB | after peak MB |", "|---|---|---|---|---|"]
    for name, after in measured["after"].items():
        old = measured["before"][name]
        lines.append(f"| {name} | {old['seconds']:.2f} ({old['cpu_seconds']:.2f}) | {after['seconds']:.2f} "
                     f"({after['cpu_seconds']:.2f}) | {old['peak_mb']:.0f} | {after['peak_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="also measure 1,000,000 stored trajectories")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median kept; default 3)")
    parser.add_argument("--output", default="results", help="file name stem under bench/results/")
    parser.add_argument("--before", metavar="PATH", type=Path,
                        help="compare cycles and demo generation with the memabra package under PATH (an earlier "
                             "checkout) and write bench/results/before-after.md instead")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.before:
        measured = before_after(args.before.resolve(), args.runs)
        (RESULTS / "before-after.json").write_text(json.dumps(measured, indent=2) + "\n")
        (RESULTS / "before-after.md").write_text(before_after_markdown(measured, str(args.before)))
        print(before_after_markdown(measured, str(args.before)))
        return 0
    sizes = [1_000, 10_000, 100_000] + ([1_000_000] if args.full else [])
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                     "runs": args.runs, "first_cycle": {}, "parse_floor": {}, "incremental": {}, "append": {}}
    for size in sizes:
        base = demo_store(size)
        print(f"measuring {size:,} stored ...", file=sys.stderr, flush=True)
        results["parse_floor"][str(size)] = measure_floor(base, args.runs)
        results["first_cycle"][str(size)] = measure_cycle(base, args.runs, incremental=False)
        if size >= 100_000:
            results["incremental"][str(size)] = measure_cycle(base, args.runs, incremental=True)
    for size in (1_000, sizes[-1]):
        results["append"][str(size)] = median_of(args.runs, lambda: probe("append", demo_store(size))[0])
    ten_k = demo_store(10_000)
    reset_store(ten_k, keep_cache=True)
    probe("cycle", ten_k, 0)  # promote a learned router to route with
    results["route"] = median_of(args.runs, lambda: probe("route", ten_k)[0])
    reset_store(ten_k, keep_cache=True)
    results["training"] = measure_training(ten_k, args.runs)
    results["demo_generation"] = measure_demo(100_000, args.runs)
    results["load_average"] = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    results["targets"] = targets(results)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{args.output}.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
