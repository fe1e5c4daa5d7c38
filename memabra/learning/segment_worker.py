"""The second process of a scan: `python -m memabra.learning.segment_worker REQUEST` summarises and caches the
segments the request lists (newest first) that the scan has not claimed, printing each key once it is cached."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from memabra.learning.dataset import DatasetBuilder
from memabra.learning.pair_features import LearnerConfig
from memabra.learning.summaries import SummaryCache, claim_segment, summarise_file
from memabra.storage.trajectories import TrajectoryFile, TrajectoryStore, gc_paused


def main(request: dict) -> None:
    builder = DatasetBuilder(LearnerConfig.from_dict(request["config"]))
    store = TrajectoryStore(Path(request["base_dir"]))
    cache = SummaryCache(store.layout, builder)
    claims = Path(request["claims"])
    for key, path in request["segments"]:
        if not claim_segment(claims, key):
            return  # the scan has come this far itself: every older segment is its own
        item = TrajectoryFile(key, Path(path), True)
        with gc_paused():
            summary = summarise_file(store, item, builder)
        cache.save(item, summary)
        print(key, flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
