"""The ids a scan has met, kept as sorted 64-bit hashes (8 bytes an id) instead of a set of strings (~100 bytes an
id): enough to tell that a file holds no id met before, which is what a scan needs for nearly every file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """The sorted hashes of `ids` (Python's own string hash, so valid within this process only)."""
    hashes = np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids))
    hashes.sort()
    return hashes


class SortedIdHashes:
    """Hashes of every id added so far, as a few sorted runs whose sizes shrink at least by half from the first
    to the last (merged like a binary counter), so adding n ids costs O(n log n) and a lookup O(log² n)."""

    def __init__(self):
        self.runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(run.nbytes for run in self.runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """For each of the given hashes, whether it was added before."""
        found = np.zeros(len(hashes), dtype=bool)
        for run in self.runs:
            positions = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            found |= run[positions] == hashes
        return found

    def add(self, hashes: np.ndarray) -> None:
        """Add sorted hashes (from `id_hashes`)."""
        if not len(hashes):
            return
        self.runs.append(hashes)
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            last = self.runs.pop()
            merged = np.concatenate((self.runs.pop(), last))
            merged.sort(kind="stable")
            self.runs.append(merged)


def earlier_duplicates(ids: Sequence[str], hashes: np.ndarray, met: SortedIdHashes,
                       earlier: Iterable[Sequence[str]]) -> set[str]:
    """The ids among `ids` (hashed as `hashes`) that occur in `earlier` files, checked exactly, but only when a
    hash says one might (a 64-bit hash collision is then told apart by comparing the ids themselves)."""
    hits = met.contains(hashes)
    if not hits.any():
        return set()
    suspect_hashes = set(hashes[hits].tolist())
    suspects = {tid for tid in ids if hash(tid) in suspect_hashes}
    return {tid for file_ids in earlier for tid in file_ids if tid in suspects}
