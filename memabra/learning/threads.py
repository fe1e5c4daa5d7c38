"""BLAS thread control for the small matrices of training and scanning."""

from __future__ import annotations

from threadpoolctl import ThreadpoolController

_THREADPOOLS: ThreadpoolController | None = None


def single_threaded_blas():
    """Limit BLAS to one thread while in effect: these matrices are small, and extra threads only spin on a busy
    machine (measured here: 3x the CPU and wall time of one thread while other processes run)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")
