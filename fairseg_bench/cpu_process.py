"""This process and the CPU: the cores it may use, mapping work over forked processes, and what a
CPU training process asks of the operating system (it is a batch job).

A run on CPU is one long, CPU-bound loop, often one of several single-thread processes sharing
the cores (``run --jobs 3`` on 2 cores is ``make run``). Two settings make it cheaper, both
Linux/glibc only and skipped quietly elsewhere (``benchmarks/bench_process.py`` measures them):

- ``SCHED_BATCH``: the scheduler treats the process as CPU-bound and non-interactive (no wakeup
  preemption, longer slices), so processes taking turns on a core thrash each other's caches less:
  three single-thread ``unet_add`` trainings on 2 cores ran each step in ~8 % less time.
- ``mallopt``: glibc hands freed blocks over 128 KiB–32 MiB (activations, gradients) back to the
  kernel and faults fresh zeroed pages in at the next step (~1,300 page faults, ~3 ms of system
  time per step here). Raising the mmap and trim thresholds keeps them in the heap for reuse.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and Slurm set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not on Linux)
        return os.cpu_count() or 1


_FORKED: list = []  # (fn, items) of the running fork_map: inherited by the workers, never pickled


def _call_forked(index: int):
    fn, items = _FORKED
    return fn(items[index])


def fork_map(fn, items: list, workers: int) -> list:
    """``[fn(item) for item in items]``, in ``workers`` forked processes when there are two or more
    and the platform forks (else here). ``fn`` and ``items`` reach the workers through the fork, so
    neither needs to pickle (closures, figures, data sets); only the results travel back."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(workers, len(items))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(item) for item in items]
    _FORKED[:] = [fn, items]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(_call_forked, range(len(items))))
    finally:
        _FORKED.clear()


def batch_scheduling() -> bool:
    """Put this process under ``SCHED_BATCH``; True if it now is (Linux; any user may ask it)."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or a sandbox that forbids it
        return False
    return True


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse instead of unmapping them; True if it did."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def tune_training_process() -> list[str]:
    """Both settings for this process; the names of those that took effect (for the log)."""
    applied = []
    if batch_scheduling():
        applied.append("SCHED_BATCH")
    if keep_freed_memory():
        applied.append("mallopt")
    return applied
