"""A run folder's files besides ``metrics.json``, written by the runner and read by the report.

- ``history.csv``: one row per step, ``step, lr, loss, grad_norm, images_per_s`` and, for a class
  sampler, ``drawn_class`` and one ``w_<class>`` column per class (the draw weights);
- ``samples.npz``: a few validation samples, ``image`` ``(S, H, W, 3)`` uint8, ``target`` and
  ``pred`` ``(S, H, W)`` class ids (the ignore index in ``target``).

The readers return None for a file that is missing or unreadable: the figures built on them are
left out, the report goes on.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from fairseg_bench.atomic import write_atomic

HISTORY_FILE = "history.csv"
SAMPLES_FILE = "samples.npz"
SAMPLE_KEYS = ("image", "target", "pred")

__all__ = ["HISTORY_FILE", "SAMPLES_FILE", "history_frame", "read_history", "read_samples", "write_history",
           "write_samples"]


def history_frame(history: list[dict], classes: list[str]):
    """The training log as a frame: each row's ``weights`` (K floats) becomes the ``w_<class>`` columns."""
    import pandas as pd

    rows = []
    for row in history:
        row = dict(row)
        weights = row.pop("weights", None)
        if weights is not None:
            row.update({f"w_{name}": float(w) for name, w in zip(classes, weights)})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["step", "lr", "loss", "grad_norm", "images_per_s"])
    if "drawn_class" in frame:
        frame["drawn_class"] = frame["drawn_class"].astype("Int64")
    return frame


def write_history(folder: Path, history: list[dict], classes: list[str]) -> None:
    """Write ``folder/history.csv`` atomically."""
    write_atomic(Path(folder) / HISTORY_FILE, history_frame(history, classes).to_csv(index=False))


def read_history(folder: Path):
    """``folder/history.csv`` as a pandas frame, or None."""
    import pandas as pd

    path = Path(folder) / HISTORY_FILE
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


def write_samples(folder: Path, samples: dict[str, np.ndarray]) -> None:
    """Write ``folder/samples.npz`` (compressed) atomically."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **samples)
    write_atomic(Path(folder) / SAMPLES_FILE, buffer.getvalue())


def read_samples(folder: Path) -> dict[str, np.ndarray] | None:
    """``{"image", "target", "pred"}`` of ``folder/samples.npz``, or None."""
    path = Path(folder) / SAMPLES_FILE
    if not path.is_file():
        return None
    with np.load(path) as npz:
        if not set(SAMPLE_KEYS) <= set(npz.files):
            return None
        return {k: npz[k] for k in SAMPLE_KEYS}
