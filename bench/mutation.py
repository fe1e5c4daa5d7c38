"""Mutation testing of the modules where a silent bug costs most; writes bench/results/mutation.md.

Run `make mutation` (or `python -m bench.mutation [MODULE ...]`) from the checkout root. mutmut copies the code to
mutants/, breaks one thing at a time and runs the tests that reach it; a mutant that no test fails on "survived".
Every survivor must be killed by a new test or listed in EQUIVALENT with the reason no test can tell it apart.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "bench" / "results" / "mutation.md"

MODULES = {
    "gates": ["memabra.models.xǁGateResultǁ*", "memabra.evaluation.gates.*", "memabra.models.x__finite*"],
    "atomic writes": ["memabra.storage.atomic.*", "memabra.storage.documents.xǁAtomicJSONStorageǁ*",
                      "memabra.storage.documents.xǁSingleDocumentStorageǁ*"],
    "lock": ["memabra.storage.lock.*"],
    "seen ids": ["memabra.storage.seen.*"],
    "ingest": ["memabra.ingest.*"],
    "importance weighting": ["memabra.learning.stats_rows.x__row_weights*", "memabra.learning.stats_rows.x__accumulate*",
                             "memabra.learning.learner_stats.x_decay_factors*"],
    "off-policy estimators": ["memabra.evaluation.offpolicy.*"],
    "guard": ["memabra.evaluation.guard.xǁGuardMonitorǁ__init__*", "memabra.evaluation.guard.xǁGuardMonitorǁupdate*",
              "memabra.evaluation.guard.xǁGuardMonitorǁ_track_drift*", "memabra.evaluation.guard.xǁGuardMonitorǁdifference*",
              "memabra.evaluation.guard.xǁGuardMonitorǁ_verdict*", "memabra.evaluation.guard.xǁGuardMonitorǁ_drift_signal*",
              "memabra.evaluation.guard.xǁGuardMonitorǁ_to_reward*", "memabra.evaluation.guard.xǁCandidateRewardModelǁ*",
              "memabra.evaluation.guard.xǁCandidateKeysǁ*", "memabra.evaluation.guard.x_batch_from_trajectories*",
              "memabra.evaluation.guard.x_served_by*", "memabra.evaluation.guard.x_start_monitor*",
              "memabra.evaluation.guard.x_guard_check*",
              "memabra.guarding.x_served_traffic*", "memabra.guarding.x_evaluate_guard*", "memabra.guarding.x__watch*",
              "memabra.guarding.x_run_guard_check*", "memabra.guarding.x_guard_rollback*"],
    "settings file": ["memabra.settings_file.x_plain_annotation*", "memabra.settings_file.x_table_model*",
                      "memabra.settings_file.x_file_fields*", "memabra.settings_file.x__type_fits*",
                      "memabra.settings_file.x__check_value*", "memabra.settings_file.x__check_table*",
                      "memabra.settings_file.x__known_keys*", "memabra.settings_file.x_read_settings_file*",
                      "memabra.settings_file.x_parse_settings_text*", "memabra.settings_file.x_flat_keys*",
                      "memabra.store_settings.*"],
}
"""Report section -> mutmut name patterns (functions in scope; the rest of each file is not mutated)."""

SUBPROCESS_TESTS = {
    "memabra.storage.atomic.x_fault_point": ["tests/test_atomic_faults.py::test_a_kill"],
}
"""mutmut function name pattern -> ids (prefixes) of tests that reach it only in a child process, which runs the
mutant under test too (bench/mutmut_driver.py maps them; mutmut sees in-process calls only)."""

_ANY_OTHER_SOURCE = ("any bound source other than 'benchmark' reads the doubly robust interval and its reason, so a "
                     "misspelt 'doubly_robust' selects the same")
_CANNOT_FAIL_NONE = "None is falsy like False: the step after the rename still cannot fail"
_LABEL_UNUSED = "the file label given to validate_trajectories is not used: ingest reports its own file name per line"
_PER_LINE = ("the bulk call then fails and every line is validated alone, which gives the same valid trajectories and "
             "refusals (only slower)")
_FLOAT_CALLERS = "both callers pass float64 values (sums and matrix products of float64 arrays)"
_INT_REWARDS = ("validated rewards are numbers within +-1e6: an integer array gives the same float products and sums "
                "as a float64 one")
_ONE_D = "np.unique's inverse is one-dimensional already; numpy 2.4 leaves it as it is for reshape(None) and (-2)"
_EXTRA_START = "the extra trailing start is never read: bucket `at` reads starts at and at + 1 only"
_EVERY_INDEX = ("every index below the count occurs (they come from np.unique's inverse), so bincount's length is "
                "that count without minlength")
_SUM_ORDER = ("rows of one bucket are summed in another order: the sums differ at most in a float's last bits, "
              "which the build documents as its tolerance (equal to the row-by-row sums up to rounding)")
_PYDANTIC_REFUSES = ("pydantic's own validation of text, paths and choices refuses every other TOML value with the "
                     "same message")
_CODEC_CASE = "codec names are case-insensitive: 'UTF-8' is 'utf-8'"
_TEMP_EXISTS = ("the temp file exists until this unlink (nothing else removes a live writer's temp file), so "
                "missing_ok is never consulted")
_COUNT_HINT = "np.fromiter's count only sizes the array up front: without it the same items are read (only slower)"
_FROMITER_DEFAULT = "np.fromiter with dtype None builds float64, the dtype it was given"
_ROOTED_PATH = ("which weight blocks take the Y^T Y path changes only the speed: for non-negative sums s, "
                "(W sqrt(s))^T (W sqrt(s)) is W^T diag(s) W up to rounding, and diagonal sums are never negative "
                "(row weights are clipped inverse propensities times positive decay factors)")
_CAPACITY = ("the reward model's arrays only grow larger or sooner: every key read is still inside them and unseen "
             "keys hold zeros, so the predictions are the same")
_GRID_DEFAULT = "confidence's default grid is the same 1001 points as DIFFERENCE_GRID_SIZE"
_FLOAT_BATCH = ("GuardBatch holds numeric arrays (propensity NaN where none was logged): the float64 conversion gives "
                "the same values the sequences and sums read")
_FLOAT_FIELDS = ("rewards, latencies and propensities are pydantic float fields (None made NaN above): numpy builds "
                 "float64 from them with or without the dtype")
_CLIP_SLACK = ("each doubly robust term blends predictions and a reward in [0, 1] with a weight capped at W, so the "
               "paired difference already lies in [-W, W] and that side of the clip never binds")
_UNREAD_RANGE = ("this default of the range applies only when nothing was served, and a monitor that reads nothing "
                 "reports no figure in reward units")
EQUIVALENT: dict[str, str] = {
    **{f"memabra.evaluation.guard.xǁCandidateRewardModelǁ_grow__mutmut_{n}": _CAPACITY for n in (1, 3, 8, 9)},
    **{f"memabra.evaluation.guard.xǁCandidateRewardModelǁ{name}__mutmut_{n}": _CAPACITY
       for name, n in (("predict", 11), ("predict", 12), ("update", 6), ("update", 7), ("__init__", 1))},
    **{f"memabra.evaluation.guard.xǁGuardMonitorǁ__init____mutmut_{n}": _GRID_DEFAULT for n in (85, 97, 106)},
    "memabra.evaluation.guard.xǁGuardMonitorǁ__init____mutmut_37":
        "ImportanceWeightedSequence's reward_high defaults to the same 1.0",
    **{f"memabra.evaluation.guard.xǁGuardMonitorǁupdate__mutmut_{n}": _FLOAT_BATCH for n in (12, 14, 20, 22, 29, 31)},
    "memabra.evaluation.guard.xǁGuardMonitorǁupdate__mutmut_79": "astype(None) is astype(float64) in numpy",
    **{f"memabra.evaluation.guard.xǁGuardMonitorǁupdate__mutmut_{n}": _CLIP_SLACK for n in (109, 110)},
    **{f"memabra.evaluation.guard.x_batch_from_trajectories__mutmut_{n}": _FLOAT_FIELDS
       for n in (42, 44, 47, 49, 52, 54)},
    "memabra.evaluation.guard.x_batch_from_trajectories__mutmut_19":
        "numpy stores None as NaN in a float64 array, the value the condition writes",
    **{f"memabra.evaluation.guard.x_start_monitor__mutmut_{n}": _UNREAD_RANGE for n in (22, 30)},
    **{f"memabra.guarding.x__watch__mutmut_{n}":
       "a report sets promoted, prior and difference together (all or none), so any and/or of them agrees"
       for n in (57, 58)},
    "memabra.guarding.x_evaluate_guard__mutmut_24": "a missing reason does not start with 'guard:' either way",
    **{f"memabra.guarding.x_guard_rollback__mutmut_{n}":
       "GuardReport ignores the extra fields of a GuardCheck (pydantic's default), so dumping them all builds the same "
       "report" for n in (28, 30)},
    "memabra.guarding.x_served_traffic__mutmut_12":
        "without the plain documents read_batch validates the same trajectories from the segment (only slower)",
    "memabra.storage.lock.xǁStoreLockǁacquire__mutmut_14":
        "open_regular's default mode is the same 0o644 the call passes",
    "memabra.storage.lock.xǁStoreLockǁacquire__mutmut_50":
        "truncating to 1 byte instead of 0 before writing the ~90-byte holder record at offset 0 leaves the same file",
    "memabra.storage.lock.x_lock_holder__mutmut_21":
        "the holder record is under 200 bytes, so reading 4,097 bytes instead of 4,096 reads the same record",
    "memabra.ingest.xǁ_FileImportǁflush__mutmut_4": _LABEL_UNUSED,
    "memabra.ingest.xǁ_FileImportǁflush__mutmut_6": _LABEL_UNUSED,
    "memabra.ingest.xǁ_FileImportǁflush__mutmut_10": _LABEL_UNUSED,
    "memabra.ingest.x__validate_one__mutmut_2": _LABEL_UNUSED,
    "memabra.ingest.x__validate_one__mutmut_4": _LABEL_UNUSED,
    "memabra.ingest.x__validate_one__mutmut_5":
        "the file name on a refusal is not read: ingest reports its own file name per line",
    "memabra.ingest.xǁ_FileImportǁflush__mutmut_3": _PER_LINE,
    "memabra.ingest.xǁ_FileImportǁflush__mutmut_5": _PER_LINE,
    "memabra.ingest.x_ingest_lines__mutmut_8":
        "ingest_lines feeds the lines itself: the importer's path is read only when it opens a file (run)",
    "memabra.ingest.x_ingest_lines__mutmut_28":
        "flushing one line later only makes a batch one line longer: duplicates in an unflushed batch are caught "
        "when it is stored, so the counts, refusals and stored trajectories are the same",
    "memabra.ingest.x_ingest_trajectories__mutmut_46":
        "globbing inside a file finds nothing, so a file's skipped list is empty either way",
    "memabra.ingest.x_stored_trajectory_ids__mutmut_5":
        "reading a segment's cached ids never consults the learner (it is used only for cached statistics)",
    "memabra.ingest.x_stored_trajectory_ids__mutmut_9":
        "without the cached summaries the same ids are read from the segments themselves (only slower)",
    "memabra.ingest.x_stored_trajectory_ids__mutmut_10":
        "without the cached summaries the same ids are read from the segments themselves (only slower)",
    "memabra.ingest.x_stored_trajectory_ids__mutmut_11":
        "an open journal never has a cached summary, so asking the cache for one returns None as skipping it does",
    "memabra.storage.atomic.x__injected_fault__mutmut_3":
        "partition and rpartition agree when there is one '@'; with two, either the mode or the step is invalid",
    "memabra.storage.atomic.x__injected_fault__mutmut_5":
        "an unset setting parsed as 'XXXX' instead of '' is refused the same way (no '@', not a mode)",
    "memabra.evaluation.gates.xǁPromotionPolicyǁ_reward_delta_bound_gate__mutmut_8": _ANY_OTHER_SOURCE,
    "memabra.evaluation.gates.xǁPromotionPolicyǁ_reward_delta_bound_gate__mutmut_9": _ANY_OTHER_SOURCE,
    "memabra.storage.atomic.x_atomic_create_bytes__mutmut_12": _CANNOT_FAIL_NONE,
    "memabra.storage.atomic.x_atomic_write_bytes__mutmut_18": _CANNOT_FAIL_NONE,
    "memabra.storage.atomic.x_atomic_create_bytes__mutmut_19": _TEMP_EXISTS,
    "memabra.storage.atomic.x_atomic_create_bytes__mutmut_20": _TEMP_EXISTS,
    "memabra.storage.atomic.x_atomic_write_bytes__mutmut_12": _TEMP_EXISTS,
    "memabra.storage.atomic.x_atomic_write_bytes__mutmut_13": _TEMP_EXISTS,
    "memabra.evaluation.offpolicy.x__draw_counts__mutmut_27":
        "rng.integers(count) draws from [0, count) like rng.integers(0, count), from the same stream",
    "memabra.evaluation.offpolicy.x__draw_counts__mutmut_35": "astype(None) is astype(float64) in numpy",
    "memabra.evaluation.offpolicy.x__safe_ratio__mutmut_3": _FLOAT_CALLERS,
    "memabra.evaluation.offpolicy.x__safe_ratio__mutmut_5": _FLOAT_CALLERS,
    "memabra.evaluation.offpolicy.x__safe_ratio__mutmut_8": _FLOAT_CALLERS,
    "memabra.evaluation.offpolicy.x__safe_ratio__mutmut_10": _FLOAT_CALLERS,
    "memabra.evaluation.offpolicy.x__safe_ratio__mutmut_25":
        "a zero denominator's ratio is multiplied by 0: a finite numerator (weights are capped, rewards finite) gives "
        "0 whatever it was divided by",
    "memabra.evaluation.offpolicy.x__model_values__mutmut_36":
        "cells the policy never takes have probability 0, so 0 x 1.0 adds the same nothing as 0 x 0.0",
    "memabra.evaluation.offpolicy.x_importance_weights__mutmut_40":
        "the placeholder divisor is used only where the propensity is unusable, and those quotients are discarded",
    # stats_rows numbering after the merged speed change (bdf68ea): earlier names no longer apply
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _COUNT_HINT for n in (15, 23, 45, 61)},
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _FROMITER_DEFAULT for n in (11, 57)},
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _EVERY_INDEX for n in (105, 199, 205, 212)},
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _ROOTED_PATH for n in (119, 120, 121, 124, 125, 126)},
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _SUM_ORDER for n in (140, 142)},
    "memabra.learning.stats_rows.x__accumulate__mutmut_144": "numpy reads the sort kind case-insensitively",
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _EXTRA_START for n in (86, 152)},
    **{f"memabra.learning.stats_rows.x__accumulate__mutmut_{n}": _ONE_D for n in (75, 77)},
    "memabra.learning.stats_rows.x__accumulate__mutmut_83":
        "slot + feature / features (a fraction below 1) is at least k exactly when slot is, so the search finds the "
        "same bucket starts as with floor division",
    "memabra.learning.stats_rows.x__accumulate__mutmut_123":
        "the builder never accumulates an empty batch (stats and stats_of_documents return zeros first), and over a "
        "non-empty pair sum the minimum is >= 0 exactly when the minimum with a starting 0 is",
    "memabra.settings_file.x__check_table__mutmut_17": "_known_keys reads the fields it is given, never its model",
    "memabra.settings_file.x__check_table__mutmut_3":
        "a table's model has no base_dir field, so file_fields gives its model_fields",
    "memabra.settings_file.x__type_fits__mutmut_5": _PYDANTIC_REFUSES,
    "memabra.settings_file.x__type_fits__mutmut_7": _PYDANTIC_REFUSES,
    "memabra.settings_file.x_flat_keys__mutmut_2":
        "checked file values hold a dict exactly where the key is a table (a dict for a plain key is refused)",
    "memabra.settings_file.x_read_settings_file__mutmut_6": _CODEC_CASE,
    "memabra.store_settings.x_save_store_settings__mutmut_12": _CODEC_CASE,
    "memabra.store_settings.x_save_store_settings__mutmut_73": _CODEC_CASE,
    "memabra.evaluation.offpolicy.x_student_t_quantile__mutmut_24":
        "rounding the probability to 13 decimals instead of 12 moves a quantile by about 2e-11 (only for probabilities "
        "off a 12-decimal value in the 13th), far under its own numerical error of 5e-8 to 1.3e-7 (t at 3 and 1 "
        "degrees)",
    **{f"memabra.store_settings.x_save_store_settings__mutmut_{n}":
       "unreachable in practice: tomlkit parses the file only after tomllib parsed it and the settings check passed "
       "it (plain keys, string lists, [gates], [guard]); no such file is known that tomlkit 0.15 refuses (its known "
       "refusals need arrays of tables, refused first), and 8,142 generated ones (quoted, escaped and dotted keys, "
       "every string form, inline and header tables, comments, CRLF) all parsed"
       for n in range(27, 33)},
}
"""Surviving mutant -> why no test can tell it from the original (reviewed by hand; names are stable while the
function's source is unchanged)."""

KILLED = {"killed", "caught by type check", "timeout", "segfault"}


def run_mutmut(patterns: list[str], max_children: int) -> float:
    """Run mutmut over the named mutants or patterns (one process at a time by default); return the seconds it
    took. A pattern reruns every mutant it matches; an exact name runs just that one."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "bench.mutmut_driver", "--max-children", str(max_children), *patterns],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def unchecked(modules: dict[str, list[str]], statuses: dict[str, str], survivors: bool = False) -> list[str]:
    """The mutants of these modules mutmut has not decided yet (their function changed, or a run stopped), and with
    `survivors` also those that survived and are not listed in EQUIVALENT (to check them against new tests)."""
    return sorted(name for name, status in statuses.items() if module_of(name, modules) and (
        status == "not checked" or survivors and status == "survived" and name not in EQUIVALENT))


def results(root: Path = ROOT) -> dict[str, str]:
    """Every mutant mutmut knows of in the checkout at root and its status."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            found[name] = status
    return found


def merged_results(roots: list[Path | tuple[str, Path]]) -> tuple[dict[str, str], dict[str, Path]]:
    """Statuses over several checkouts of the same code (the first checkout that checked a mutant decides it, so
    list the newest runs first; a (module, checkout) pair is read for that module's mutants only), and the checkout
    each verdict comes from."""
    statuses, origin = {}, {}
    for entry in roots:
        module, root = entry if isinstance(entry, tuple) else (None, entry)
        for name, status in results(root).items():
            if module is not None and not module_of(name, {module: MODULES[module]}):
                continue
            if statuses.get(name, "not checked") == "not checked":
                statuses[name], origin[name] = status, root
    return statuses, origin


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
diffs = {}
for name in json.loads(sys.stdin.read()):
    try:
        diffs[name] = get_diff_for_mutant(name, path=find_mutant(name).path)
    except Exception as exc:  # a mutant whose source changed since: no diff to show
        diffs[name] = ""
print(json.dumps(diffs))
"""


def diffs_of(names: list[str], root: Path = ROOT) -> dict[str, str]:
    """The changed lines of each named mutant, as `- old; + new` (one process per checkout)."""
    out = subprocess.run([sys.executable, "-c", _DIFFS], cwd=root, input=json.dumps(names), capture_output=True,
                         text=True).stdout
    diffs = json.loads(out or "{}")
    return {name: "; ".join(line.strip() for line in diff.splitlines()
                            if line[:1] in "+-" and not line.startswith(("+++", "---")))[:300]
            for name, diff in diffs.items()}


def module_of(name: str, modules: dict[str, list[str]]) -> str | None:
    for module, patterns in modules.items():
        if any(re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), name) for pattern in patterns):
            return module
    return None


def write_report(modules: dict[str, list[str]], statuses: dict[str, str], seconds: float,
                 origin: dict[str, Path] | None = None) -> str:
    rows, survivors = [], []
    totals = Counter()
    for module in modules:
        names = sorted(name for name in statuses
                       if module_of(name, {module: modules[module]}))
        counts = Counter()
        for name in names:
            status = statuses[name]
            if status in KILLED:
                counts["killed"] += 1
            elif status == "survived" and name in EQUIVALENT:
                counts["equivalent"] += 1
                survivors.append((module, name, "equivalent", EQUIVALENT[name]))
            elif status == "survived":
                counts["survived"] += 1
                survivors.append((module, name, "survived", None))
            else:
                counts[status] += 1
        totals.update(counts)
        checked = counts["killed"] + counts["survived"]
        score = f"{counts['killed'] / checked:.0%}" if checked else "—"
        other = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())
                          if status not in ("killed", "survived", "equivalent"))
        rows.append(f"| {module} | {len(names)} | {counts['killed']} | {counts['survived']} | "
                    f"{counts['equivalent']} | {score} | {other or '—'} |")
    checked = totals["killed"] + totals["survived"]
    lines = [
        "# Mutation testing",
        "",
        f"`make mutation` (mutmut {mutmut_version()}), {time.strftime('%Y-%m-%d')}, "
        + (f"{seconds / 60:.1f} min for the modules below. " if seconds else "rebuilt from mutmut's last results. ")
        + "Score = killed / (killed + survived); equivalent mutants are not counted.",
        "",
        "| module | mutants | killed | survived | equivalent | score | other |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"| **all** | {sum(totals.values())} | {totals['killed']} | {totals['survived']} | {totals['equivalent']} | "
        f"{totals['killed'] / checked:.0%} | |" if checked else "| **all** | 0 | | | | | |",
        "",
        "## Survivors",
        "",
    ]
    if not survivors:
        lines.append("None.")
    by_root: dict[Path, list[str]] = {}
    for _, name, kind, _ in survivors:
        if kind == "survived":
            by_root.setdefault((origin or {}).get(name, ROOT), []).append(name)
    diffs = {name: diff for root, names in by_root.items() for name, diff in diffs_of(names, root).items()}
    for module, name, kind, detail in survivors:
        lines.append(f"- {module} · `{name}` · {kind}: {diffs.get(name, '') if detail is None else detail}")
    return "\n".join(lines) + "\n"


def mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def results_source(text: str) -> Path | tuple[str, Path]:
    """A --results-from value: DIR, or MODULE=DIR for one report section's mutants only."""
    module, separator, folder = text.partition("=")
    if not separator:
        return Path(text)
    if module not in MODULES:
        raise argparse.ArgumentTypeError(f"unknown module {module!r} in {text!r}; choose from: {', '.join(MODULES)}")
    return module, Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help=f"report sections to run (default all): {', '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from mutmut's last results")
    parser.add_argument("--unchecked", action="store_true",
                        help="run only the mutants not checked yet (mutmut keeps a verdict while its function is "
                             "unchanged; a first run generates the mutants)")
    parser.add_argument("--survivors", action="store_true",
                        help="with --unchecked, also rerun the survivors not listed in EQUIVALENT (after new tests)")
    parser.add_argument("--results-from", type=results_source, action="append", default=[], metavar="[MODULE=]DIR",
                        help="also read mutmut's results in another checkout of the same code (the first listed that "
                             "checked a mutant decides it); MODULE= reads only that module's mutants there")
    args = parser.parse_args(argv)
    unknown = [name for name in args.modules if name not in MODULES]
    if unknown:
        parser.error(f"unknown module {unknown[0]!r}; choose from: {', '.join(MODULES)}")
    chosen = {name: MODULES[name] for name in (args.modules or MODULES)}
    seconds = 0.0
    if not args.report_only:
        generated = (ROOT / "mutants").exists()
        names = unchecked(chosen, results(), args.survivors) if args.unchecked and generated else []
        if names or not (args.unchecked and generated):
            seconds = run_mutmut(names or [pattern for patterns in chosen.values() for pattern in patterns],
                                 args.max_children)
    statuses, origin = merged_results([ROOT, *args.results_from])
    report = write_report(chosen, statuses, seconds, origin)
    if REPORT.exists() and "\n## Notes" in REPORT.read_text():  # kept by hand across runs
        report += "\n## Notes" + REPORT.read_text().split("\n## Notes", 1)[1]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
