"""Checkpoints: a run's :class:`~fairseg_bench.engine.TrainState` and every RNG in one atomic,
weights-only file (``last.pt``), saved during training and loaded to resume.

``torch.load(weights_only=True)`` reads tensors, containers and Python scalars only (a
checkpoint cannot run code when loaded), so numpy arrays travel as ``{"__ndarray__": tensor}``
and the RNG states as tensors and lists. A checkpoint holds the train state's ``state_dict()``,
``rng`` (one entry per rank: each rank's data augmentation draws its own stream) and the
``config_hash`` of the run that wrote it.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from fairseg_bench.atomic import write_atomic
from fairseg_bench.errors import UserError

if TYPE_CHECKING:
    from fairseg_bench.engine import TrainState

CHECKPOINT = "last.pt"


# ----------------------------------------------------------------------------- weights-only form
def to_safe(obj):
    """Numpy arrays/scalars inside ``obj`` -> tensors/Python scalars that weights_only loads."""
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def from_safe(obj):
    """Inverse of :func:`to_safe`."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_safe(v) for v in obj)
    return obj


# ----------------------------------------------------------------------------- RNG states
def rng_states() -> dict:
    """The torch (CPU and CUDA), numpy and Python RNG states, weights-only safe."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_states(state: dict) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def every_rank_rng_states(world_size: int) -> list[dict]:
    """:func:`rng_states` of every rank, in rank order (gathered when ``world_size`` > 1)."""
    if world_size == 1:
        return [rng_states()]
    states: list = [None] * world_size
    dist.all_gather_object(states, rng_states())
    return states


# ----------------------------------------------------------------------------- files
def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename: ``path`` is always a complete checkpoint."""
    buffer = io.BytesIO()
    torch.save(to_safe(state), buffer)
    write_atomic(path, buffer.getvalue())  # fsync'd before the rename: no empty file after a power cut


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary objects) onto the CPU."""
    try:
        return from_safe(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise UserError(f"{path}: not a readable checkpoint ({exc})") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))  # what the file asked the unpickler to import
        what = f" ({found.group(1)})" if found else ""
        raise UserError(f"{path}: not a readable checkpoint: refused, it holds Python objects{what} beyond "
                        f"tensors and plain containers, which could run code (weights_only loading)") from None
    except Exception as exc:  # the unpickler raises many kinds on a truncated or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from None


# ----------------------------------------------------------------------------- a run's checkpoint
def resume(state: TrainState, path: Path, config_hash: str, rank: int = 0) -> bool:
    """Load ``path`` into ``state`` (and this rank's RNGs) if it exists; True if it did."""
    if not path.is_file():
        return False
    saved = load_checkpoint(path)
    if saved.get("config_hash") != config_hash:
        raise UserError(f"{path} was written by a different config; remove it or use another --out")
    state.load_state_dict(saved)
    rngs = saved["rng"]
    set_rng_states(rngs[rank] if rank < len(rngs) else rngs[0])  # (a run resumed on more ranks than it had)
    return True


class Checkpointer:
    """Called by the training loop at every checkpoint step: saves ``state`` with every rank's RNGs
    (rank 0 writes) and keeps the training time over all sessions of the run."""

    def __init__(self, state: TrainState, path: Path, config_hash: str, *, resumed: bool, rank: int = 0,
                 world_size: int = 1):
        self.state, self.path, self.config_hash = state, path, config_hash
        self.rank, self.world_size = rank, world_size
        self.session_start = time.perf_counter()
        self.time_before = state.train_time_s  # training time of earlier sessions
        self.saved_step = state.step if resumed else None

    def training_time(self) -> float:
        """Seconds of training over every session, this one up to now."""
        return self.time_before + time.perf_counter() - self.session_start

    def __call__(self, step: int) -> None:
        rngs = every_rank_rng_states(self.world_size)
        self.state.step, self.state.train_time_s = step, self.training_time()
        if self.rank == 0:
            save_checkpoint(self.path, {**self.state.state_dict(), "rng": rngs, "config_hash": self.config_hash})
        self.saved_step = step
