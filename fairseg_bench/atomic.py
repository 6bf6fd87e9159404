"""Atomic file writes: a temporary file in the same folder, fsync, then a rename.

A leaf module (standard library only) so that every layer, the engine's checkpoints included,
writes files the same way without importing the results layer.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _test_write_delay() -> None:
    """Test hook: ``FAIRSEG_BENCH_TEST_WRITE_DELAY=<seconds>`` holds every atomic write between its
    complete temporary file and the rename, so crash tests can kill a process mid-write."""
    delay = os.environ.get("FAIRSEG_BENCH_TEST_WRITE_DELAY")
    if delay:
        time.sleep(float(delay))


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make results private to the writer
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        _test_write_delay()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
