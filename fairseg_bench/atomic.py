"""Atomic file writes (a temporary file in the same folder, fsync, then a rename) and the one
JSON read that pairs with them.

A leaf module (standard library only) so that every layer, the engine's checkpoints and the
foreign result formats included, reads and writes files the same way without importing the
results layer.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from fairseg_bench.errors import UserError


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


def write_atomic(path: str | os.PathLike, data: bytes | str, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: readers see all or nothing.

    ``durable=False`` skips the fsync, for caches that are rebuilt when lost.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would make results private to the writer
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        _test_write_delay()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_json(path: str | os.PathLike):
    """Any JSON value from ``path``; a missing, truncated or corrupt file is a ``UserError``."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON (truncated or corrupt?): {exc}") from None


def read_json(path: str | os.PathLike) -> dict:
    """Read a JSON object; a missing, truncated or non-object file is a ``UserError``."""
    obj = load_json(path)
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object")
    return obj
