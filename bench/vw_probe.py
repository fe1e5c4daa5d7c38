"""Vowpal Wabbit's cb_explore_adf on the logs `bench.probes train` exported; runs in the harness's own VW venv."""

from __future__ import annotations

import json
import re
import sys
import time

import vowpalwabbit

TOKEN = re.compile(r"[a-z0-9]+")


def _words(text: str) -> str:
    return " ".join(TOKEN.findall(text.lower())) or "empty"


def example(row: dict, labelled: bool) -> list[str]:
    """One multi-line ADF example: shared task words, one line per candidate, the logged pick labelled."""
    lines = [f"shared |s {_words(row['text'])}"]
    for index, candidate in enumerate(row["candidates"]):
        label = ""
        if labelled and index == row["chosen"]:
            label = f"0:{-row['reward']:.6f}:{row['propensity']:.6f} "
        lines.append(f"{label}|a kind_{candidate['kind']} {_words(candidate['name'])} "
                     f"score:{candidate['score']:.6f} hint:{candidate['hint']:.6f}")
    return lines


def main(path: str) -> dict:
    rows = [json.loads(line) for line in open(path)]
    logged = [row for row in rows if "chosen" in row]
    bench = [row for row in rows if "expected" in row]
    examples = [example(row, True) for row in logged]
    vw = vowpalwabbit.Workspace("--cb_explore_adf -q sa --quiet")
    start, cpu_start = time.perf_counter(), time.process_time()
    for lines in examples:
        vw.learn(lines)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    value = 0.0
    for row in bench:
        pmf = vw.predict(example(row, False))
        best = max(range(len(pmf)), key=pmf.__getitem__)
        value += row["expected"][best]
    vw.finish()
    return {"trajectories": len(logged), "seconds": seconds, "per_second": len(logged) / seconds,
            "per_cpu_second": len(logged) / cpu_seconds,
            "policy_value": value / len(bench), "version": vowpalwabbit.__version__ if hasattr(vowpalwabbit, "__version__") else None}


if __name__ == "__main__":
    import resource

    measured = main(sys.argv[1])
    measured["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(measured))
