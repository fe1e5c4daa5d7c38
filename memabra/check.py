"""`--check`: verify every file of the store and, with repair, fix what can be fixed without losing data.

Repair moves unreadable files to `<base-dir>/quarantine/<relative path>.quarantined` (never deletes a document),
seals journals of dead writers, removes temp files of interrupted writes and journals already sealed, and drops
seen ids no stored trajectory has (keeping a copy of the old seen file in quarantine). It never chooses the active
router: a current.json that is unreadable or names a missing version is left for `--rollback`, unless no intact
version is left to roll back to (then it is quarantined and the built-in heuristic is active, as in a new store).
"""

from __future__ import annotations

import os
from pathlib import Path

from memabra.suggestions import command_to_run
from memabra.errors import BadInputError, CorruptDocumentError
from memabra.guarding import GUARD_REPORTS_DIR, GuardRollbackReport
from memabra.learning.versions import router_from_dict
from memabra.audit_models import HistoryEntry, ReviewedChallenger
from memabra.models import VERSION_ID_PATTERN, CurrentRouter, RouterVersion, TrainingReport
from memabra.runtime.case_index import CASES_TABLE, CaseIndex
from memabra.storage.atomic import atomic_write_bytes, dump_json, process_alive, read_json, temp_file_writer
from memabra.storage.documents import DocumentFile
from memabra.results import CheckResult, Problem
from memabra.check_files import check_cache, check_folders, check_kinds, check_names
from memabra.storage.quarantine import quarantine_file
from memabra.storage.safe_io import outside_folder
from memabra.storage.seen import SeenTrajectories
from memabra.storage.store import Store
from memabra.storage.trajectories import (SEGMENT_TABLE, UNREADABLE_FILE, TrajectoryFile,
                                          validate_trajectories)

SKIPPED_FOLDERS = ("quarantine", ".cache")
"""Top-level folders the check leaves alone: set-aside files, and derived data rebuilt whenever it is unreadable."""

KEPT_DOCUMENTS = (
    ("history_dir", HistoryEntry, "entry_id", "history entry", "--history and --active-at no longer see it"),
    ("challengers_dir", ReviewedChallenger, "report_id", "dry-run challenger", "its dry run can no longer be promoted"),
)
"""Folders of `<id>.json` documents checked like reports: folder, model, id field, what it is, what losing it means."""


class _StoreCheck:
    def __init__(self, store: Store, repair: bool):
        self.base_dir = store.base_dir
        self.layout = store.layout
        self.repair = repair
        self.trajectories = store.trajectories
        self.problems: list[Problem] = []
        self.checked = {"files": 0, "trajectory_files": 0, "trajectories": 0, "invalid_trajectories": 0,
                        "versions": 0, "reports": 0, "guard_reports": 0, "seen_ids": 0, "seen_segments": 0}
        self.stored_ids: set[str] = set()
        self.segment_keys: set[str] = set()
        self.intact_versions: set[str] = set()
        self.promoted_versions: set[str] = set()

    @property
    def repair_command(self) -> str:
        return command_to_run(self.base_dir, "--check", "--repair")

    def relative(self, path: Path) -> str:
        return str(Path(path).relative_to(self.base_dir))

    def report(self, path: Path, problem: str, fix: str, repaired: bool = False) -> None:
        self.problems.append(Problem(path=self.relative(path), problem=problem, fix=fix, repaired=repaired))

    def set_aside(self, path: Path, problem: str, consequence: str) -> None:
        """Report an unreadable file; repair moves it to quarantine."""
        if self.repair:
            target = quarantine_file(self.layout, path)
            self.report(path, problem, f"moved it to {self.relative(target)}; {consequence}", repaired=True)
        else:
            self.report(path, problem, f"run `{self.repair_command}` to move it to quarantine/; {consequence}")

    def run(self) -> None:
        # Seen ids and current are read before what they refer to: every id seen (every version current) by
        # then is stored by then, so a cycle finishing during the check cannot make either look dangling.
        seen = self.read_seen()
        current = self.read_current()
        self.outside = check_folders(self)
        files = self.list_files()
        self.checked["files"] = len(files)
        self.bad_files = check_kinds(self, files)
        files = [path for path in files if path not in self.bad_files]
        for path in files:
            self.check_temp_file(path)
        check_names(self, self.layout.versions_dir, "version")
        check_names(self, self.layout.reports_dir, "report")
        self.check_journals()
        for path in self.files_in(self.layout.trajectories_dir):
            self.check_segment(path)
        for path in self.files_in(self.layout.versions_dir):
            self.check_version(path)
        if current is not None:
            self.check_current(current)
        elif self.promoted_versions & self.intact_versions:
            self.current_problem("current.json is missing while versions that were active are stored")
        for path in self.files_in(self.layout.reports_dir):
            self.check_report(path)
        for folder, model, id_field, what, consequence in KEPT_DOCUMENTS:
            for path in self.files_in(getattr(self.layout, folder)):
                if VERSION_ID_PATTERN.match(path.stem):
                    self.read_timestamped(path, model, id_field, what, consequence)
                else:
                    self.check_other_json(path)
        guard_reports_dir = self.base_dir / GUARD_REPORTS_DIR
        for path in self.files_in(guard_reports_dir):
            self.check_guard_report(path)
        if seen is not None:
            self.check_seen_ids(seen)
        self.check_case_index()
        check_cache(self)
        known_folders = {self.layout.trajectories_dir, self.layout.versions_dir, self.layout.reports_dir,
                         *(getattr(self.layout, kept[0]) for kept in KEPT_DOCUMENTS), guard_reports_dir}
        known_files = {self.layout.current_path, self.layout.seen_path, self.layout.case_index_path}
        for path in files:
            if (path.suffix == ".json" and not path.name.startswith(".") and path.parent not in known_folders
                    and path not in known_files and path.exists()):
                self.check_other_json(path)

    def list_files(self) -> list[Path]:
        found = []
        for folder, subfolders, names in os.walk(self.base_dir):
            if Path(folder) == self.base_dir:
                subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
            kept = [name for name in subfolders if outside_folder(self.base_dir, Path(folder) / name) is None]
            found.extend(Path(folder) / name for name in names)
            found.extend(Path(folder) / name for name in subfolders if name not in kept and
                         not os.path.islink(Path(folder) / name))
            subfolders[:] = kept
        return sorted(found)

    def files_in(self, folder: Path) -> list[Path]:
        """The documents directly in a folder (names not starting with `.`, ending in `.json`), never through a
        link or in a folder leading out of the store."""
        if outside_folder(self.base_dir, folder) is not None:
            return []
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(folder / name for name in names
                      if name.endswith(".json") and not name.startswith(".") and not (folder / name).is_symlink()
                      and (folder / name).is_file() and os.access(folder / name, os.R_OK))

    def check_temp_file(self, path: Path) -> None:
        pid = temp_file_writer(path.name)
        if pid is None or process_alive(pid):
            return
        problem = f"temp file of a write that process {pid} never finished (the process is gone)"
        state = "the document it was meant to replace is intact"
        if path.name.startswith(f".{self.layout.current_path.name}."):
            state = current_state(self.layout.current_path)
        if self.repair:
            path.unlink(missing_ok=True)
            self.report(path, problem, f"deleted it: the write never took effect and {state}", repaired=True)
        else:
            self.report(path, problem, f"run `{self.repair_command}` to delete it ({state})")

    def check_journals(self) -> None:
        for item in self.trajectories.journals():
            segment = item.path.with_name(f"{item.key}.json")
            if self.trajectories.writer_alive(item):
                self.count_journal(item)  # still being appended to
            elif segment.exists():
                self.check_sealed_journal(item, segment)
            elif self.repair:
                self.trajectories.seal(item)
                self.report(item.path, "journal of a writer that is gone, not sealed yet",
                            f"sealed it into {self.relative(segment)} (a torn last line, an append that never "
                            "returned, is left out)", repaired=True)
            else:
                self.report(item.path, "journal of a writer that is gone, not sealed yet",
                            f"run `{self.repair_command}` (or the next cycle) to seal it into a segment; "
                            "its trajectories are read meanwhile")
                self.count_journal(item)

    def count_journal(self, item: TrajectoryFile) -> None:
        """Count an unsealed journal's trajectories as stored (cycles read them)."""
        valid, invalid = validate_trajectories(self.trajectories.read_documents(item), self.relative(item.path))
        self.stored_ids.update(trajectory.trajectory_id for trajectory in valid)
        self.checked["trajectories"] += len(valid)
        self.checked["invalid_trajectories"] += len(invalid)

    def check_sealed_journal(self, item: TrajectoryFile, segment: Path) -> None:
        """A journal whose segment exists: its writer died between sealing it and removing it."""
        if self.trajectories.journal_matches_segment(item):
            problem = "journal left behind after it was sealed into its segment (its writer died while removing it)"
            if self.repair:
                item.path.unlink(missing_ok=True)
                self.report(item.path, problem, f"deleted it: {self.relative(segment)} holds every line of it",
                            repaired=True)
            else:
                self.report(item.path, problem, f"run `{self.repair_command}` to delete it ({self.relative(segment)} "
                                                "holds every line of it)")
        else:
            self.set_aside(item.path, f"journal left beside {self.relative(segment)} holding lines the segment "
                                      "does not", "its lines are no longer read")

    def check_segment(self, path: Path) -> None:
        self.checked["trajectory_files"] += 1
        batch = self.trajectories.read_batch(TrajectoryFile(path.stem, path, True))
        unreadable = [entry for entry in batch.invalid if entry.position == UNREADABLE_FILE]
        if unreadable:
            self.set_aside(path, f"trajectory segment is unreadable ({unreadable[0].error.partition(': ')[2]})",
                           "its trajectories are no longer read")
            return
        valid, invalid = batch.trajectories, batch.invalid
        self.segment_keys.add(path.stem)
        self.stored_ids.update(trajectory.trajectory_id for trajectory in valid)
        self.checked["trajectories"] += len(valid)
        self.checked["invalid_trajectories"] += len(invalid)
        if not invalid:
            return
        problem = (f"{len(invalid)} of {len(valid) + len(invalid)} trajectory documents are invalid "
                   f"(first: document {invalid[0].position + 1}, {invalid[0].error}); cycles ignore them")
        if not valid:
            self.set_aside(path, problem, "it held no valid trajectory")
        elif self.repair:
            table = read_json(path)[SEGMENT_TABLE]
            positions = list(table)
            kept = dict(table)
            for entry in invalid:
                kept.pop(positions[entry.position])
            copy = quarantine_file(self.layout, path, keep_original=True)
            atomic_write_bytes(path, dump_json({SEGMENT_TABLE: kept}))
            self.report(path, problem, f"kept the {len(valid)} valid documents; the whole original is in "
                                       f"{self.relative(copy)}", repaired=True)
        else:
            self.report(path, problem, f"run `{self.repair_command}` to keep only the valid documents (the whole "
                                       "original is kept in quarantine/)")

    def read_timestamped(self, path: Path, model, id_field: str, what: str, consequence: str):
        """Load a `<id>.json` document whose id field must match its name; set it aside when it does not load."""
        try:
            document = DocumentFile(path, model).read()
            if getattr(document, id_field) != path.stem:
                raise CorruptDocumentError(path, f"it holds {what} {getattr(document, id_field)}, not {path.stem}")
        except CorruptDocumentError as exc:
            self.set_aside(path, f"{what} is unreadable ({exc.detail})", consequence)
            return None
        return document

    def check_version(self, path: Path) -> None:
        if not VERSION_ID_PATTERN.match(path.stem):
            self.check_other_json(path)
            return
        self.checked["versions"] += 1
        consequence = "it can no longer be rolled back to"
        version = self.read_timestamped(path, RouterVersion, "version_id", "router version", consequence)
        if version is None:
            return
        try:
            router_from_dict(version.router)
        except (ValueError, KeyError, TypeError) as exc:
            self.set_aside(path, f"router version does not load ({exc})", consequence)
        else:
            self.intact_versions.add(path.stem)
            if version.parent_version_id:
                self.promoted_versions.add(version.parent_version_id)

    def read_current(self) -> CurrentRouter | CorruptDocumentError | None:
        try:
            return DocumentFile(self.layout.current_path, CurrentRouter).read()
        except CorruptDocumentError as exc:
            return exc

    def check_current(self, current: CurrentRouter | CorruptDocumentError) -> None:
        if isinstance(current, CorruptDocumentError):
            self.current_problem(f"current.json is unreadable ({current.detail})")
        elif current.version_id not in self.intact_versions:
            self.current_problem(f"current.json names version {current.version_id}, which is missing or unreadable")

    def current_problem(self, problem: str) -> None:
        """Choosing the active router is the operator's call, unless no intact version is left to choose."""
        path = self.layout.current_path
        if self.intact_versions:
            newest = max(self.intact_versions)
            rollback = command_to_run(self.base_dir, "--rollback", newest)
            self.report(path, problem, f"choose the active router: `{rollback}` "
                                       "(the newest intact version) or another intact one; repair leaves this "
                                       "choice to you")
        else:
            self.set_aside(path, problem + "; no intact version is left",
                           "the built-in heuristic router is active, as in a new store")

    def check_report(self, path: Path) -> None:
        if not VERSION_ID_PATTERN.match(path.stem):
            self.check_other_json(path)
            return
        self.checked["reports"] += 1
        self.read_timestamped(path, TrainingReport, "report_id", "training report", "it is no longer listed")

    def check_guard_report(self, path: Path) -> None:
        if not VERSION_ID_PATTERN.match(path.stem):
            self.check_other_json(path)
            return
        self.checked["guard_reports"] += 1
        self.read_timestamped(path, GuardRollbackReport, "report_id", "guard report",
                              "the rollback it explains stays in current.json's reason")

    def read_seen(self) -> SeenTrajectories | None:
        path = self.layout.seen_path
        try:
            return DocumentFile(path, SeenTrajectories).read()
        except CorruptDocumentError as exc:
            self.set_aside(path, f"seen trajectory ids are unreadable ({exc.detail})",
                           "every stored trajectory counts as new again until the next cycle marks it seen")
            return None

    def check_seen_ids(self, seen: SeenTrajectories) -> None:
        """Seen ids and segments that nothing stored has: harmless, but a sign that trajectories went missing."""
        self.checked["seen_ids"] = len(seen.trajectory_ids)
        self.checked["seen_segments"] = len(seen.segments)
        dangling_ids = [tid for tid in seen.trajectory_ids if tid not in self.stored_ids]
        dangling_segments = [key for key in seen.segments if key not in self.segment_keys]
        if not dangling_ids and not dangling_segments:
            return
        path = self.layout.seen_path
        problem = (f"{len(dangling_ids)} seen ids and {len(dangling_segments)} seen segments refer to no stored "
                   f"trajectory (first: {(dangling_ids or dangling_segments)[0]})")
        if self.repair:
            copy = quarantine_file(self.layout, path, keep_original=True)
            kept_ids = set(seen.trajectory_ids).difference(dangling_ids)
            kept_segments = set(seen.segments).difference(dangling_segments)
            DocumentFile(path, SeenTrajectories).write(seen.model_copy(update={
                "trajectory_ids": sorted(kept_ids), "segments": sorted(kept_segments)}))
            self.report(path, problem, f"dropped them (the old file is in {self.relative(copy)}); should those "
                                       "trajectories come back, they count as new once", repaired=True)
        else:
            self.report(path, problem, f"run `{self.repair_command}` to drop them (a copy of the file is kept in "
                                       "quarantine/); they change nothing but the count of new trajectories")

    def check_case_index(self) -> None:
        path = self.layout.case_index_path
        try:
            CaseIndex.load(path)
        except CorruptDocumentError as exc:
            detail = exc.detail
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            detail = f"expected a {CASES_TABLE!r} table of cases ({exc})"
        else:
            return
        self.set_aside(path, f"case index is unreadable ({detail})", "rebuild it with --rebuild-case-index")

    def check_other_json(self, path: Path) -> None:
        """A `*.json` memabra does not own still has to be whole JSON (the store's naming rule)."""
        try:
            read_json(path)
        except CorruptDocumentError as exc:
            self.set_aside(path, f"not a whole JSON document ({exc.detail})", "memabra reads it only if a flag names it")

    def result(self) -> CheckResult:
        return CheckResult(
            base_dir=str(self.base_dir),
            healthy=all(problem.repaired for problem in self.problems),
            repair=self.repair,
            problem_count=len(self.problems),
            repaired_count=sum(problem.repaired for problem in self.problems),
            problems=self.problems,
            checked=self.checked,
        )


def current_state(path: Path) -> str:
    """What an interrupted change of the active version left: the old current.json, unchanged."""
    try:
        current = DocumentFile(path, CurrentRouter).read()
    except CorruptDocumentError:
        return ("the change of the active version never took effect: current.json is still the old, unreadable "
                "one; finish it with --rollback <version id> again")
    if current is None:
        return "the change of the active version never took effect: no current.json was written"
    return (f"the change of the active version never took effect: version {current.version_id} is still active; "
            "run the rollback again to finish it")


def check_store(store: Store | Path, repair: bool = False) -> CheckResult:
    """Verify every file of the store (repair: under the lock, fix what loses no data) and return what was found."""
    store = Store.of(store)
    if not store.base_dir.is_dir():
        raise BadInputError(f"--base-dir {store.base_dir} is not a folder holding a store; check the path")
    check = _StoreCheck(store, repair)
    if repair:
        lock = store.layout.lock_path
        if os.path.islink(lock) or os.path.lexists(lock) and not os.path.isfile(lock):
            check_kinds(check, [lock])  # moved aside (the link itself), so the lock can be taken
        with store.lock("repair"):
            check.run()
    else:
        check.run()
    return check.result()
