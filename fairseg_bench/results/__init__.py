"""The one results schema: atomic writes, validated reads, and loading runs into pandas.

A run folder ``<out>/<experiment>/<label>-s<seed>/`` holds ``config.yaml`` (the resolved
config), ``last.pt``, ``history.csv`` and ``metrics.json``. ``metrics.json`` is the only file
reports and the CI gate read; its keys (schema version 1):

- ``schema_version`` (int), ``experiment`` (str), ``method`` (the loss's canonical label, e.g.
  ``tce-t1``), ``loss_spec`` (the spec as given), ``seed`` (int), ``config_hash`` (str),
  ``config`` (dict, the resolved config), ``dataset`` (str), ``split`` (str), ``steps`` (int);
- ``classes`` (list of K names), ``ignore_index`` (int);
- ``confusion_matrix`` (K x K ints; rows ground truth, columns prediction);
- ``per_image`` (``{"tp", "fp", "fn"}``, each N_images x K ints), for the bootstrap;
- ``iou`` (K floats in [0, 1], ``null`` for a class absent from ground truth and prediction),
  ``miou``, ``pixel_accuracy``, ``class_accuracy`` (K floats or null);
- ``fairness`` (dict, the keys of ``fairness_metrics`` with the run itself as reference,
  IoUs as fractions);
- ``boundary`` (Boundary IoU, Cheng et al. 2021, :mod:`fairseg_bench.core.boundary`):
  ``{"intersection": K ints, "union": K ints, "iou": K floats or null, "per_image":
  {"intersection", "union"} (N_images x K ints each)}``, counted at the default width (2 % of
  the image diagonal); absent from records written before it was counted;
- ``image_names`` (N stems, the order of ``per_image``) and ``image_attributes`` (``{name: N
  strings}``, e.g. CamVid's ``sequence``, Cityscapes' ``city``): the built-in image groups;
- ``sampler`` (``{"name", "draw_histogram": K ints, "final_weights": K floats}`` or null);
- ``timing`` (``{"wall_time_s", "train_images_per_s", "eval_images_per_s"}``);
- ``environment`` (``{"fairseg_bench", "torch", "python", "device", "git_commit"}``).

IoUs are fractions everywhere in files; tables show percent.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairseg_bench.atomic import read_json, write_atomic  # noqa: F401 - re-exported: the one JSON read and write
from fairseg_bench.errors import UserError

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
REQUIRED_KEYS = ("schema_version", "experiment", "method", "seed", "classes", "confusion_matrix", "iou")


def _jsonable(value):
    """Numpy scalars/arrays to plain Python; NaN/inf floats to null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike, obj: dict) -> None:
    """Write ``obj`` as JSON atomically; NaN becomes null."""
    write_atomic(path, json.dumps(_jsonable(obj), indent=1, allow_nan=False) + "\n")


def boundary_record(intersection, union) -> dict:
    """``{"boundary": {...}}`` of per-image Boundary IoU counts ``(N, K)``, or {} when there are none."""
    if intersection is None or union is None:
        return {}
    from fairseg_bench.core.boundary import boundary_iou

    inter, uni = np.asarray(intersection, np.int64), np.asarray(union, np.int64)
    totals = inter.sum(0), uni.sum(0)
    return {"boundary": {"intersection": totals[0], "union": totals[1], "iou": boundary_iou(*totals),
                         "per_image": {"intersection": inter, "union": uni}}}


def _floats(values) -> np.ndarray:
    """List with nulls -> float64 array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


@dataclass(frozen=True)
class RunResult:
    """One run's ``metrics.json``, with arrays ready to use."""

    path: Path
    data: dict

    @property
    def method(self) -> str:
        return self.data["method"]

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def experiment(self) -> str:
        return self.data["experiment"]

    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU as fractions, NaN for absent classes. Shape ``(K,)``."""
        return _floats(self.data["iou"])

    @property
    def confusion_matrix(self) -> np.ndarray:
        return np.asarray(self.data["confusion_matrix"], dtype=np.int64)

    def per_image(self) -> dict[str, np.ndarray] | None:
        """``{"tp", "fp", "fn"}`` arrays of shape ``(N_images, K)``, or None if not stored."""
        stats = self.data.get("per_image")
        return None if not stats else {k: np.asarray(v, dtype=np.int64) for k, v in stats.items()}


def read_metrics(path: str | os.PathLike) -> RunResult:
    """Read and validate one ``metrics.json`` (a file or a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    data = read_json(path)
    validate_metrics(path, data)
    return RunResult(path, data)


def validate_metrics(path: Path, data: dict) -> None:
    """The schema's checks on a parsed ``metrics.json``: a ``UserError`` naming the file."""
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise UserError(f"{path}: not a fairseg-bench metrics file (missing {', '.join(missing)})")
    if data["schema_version"] != SCHEMA_VERSION:
        raise UserError(f"{path}: schema version {data['schema_version']} is not supported (expected {SCHEMA_VERSION})")
    k = len(data["classes"])
    if len(data["iou"]) != k or np.shape(data["confusion_matrix"]) != (k, k):
        raise UserError(f"{path}: iou/confusion_matrix sizes do not match the {k} classes")
    for name, value in zip(data["classes"], data["iou"]):  # NaN/Infinity literals parse, but are not IoUs
        if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise UserError(f"{path}: iou of class {name!r} is {value!r}; expected a fraction in [0, 1] or null")


def find_runs(*paths: str | os.PathLike) -> list[Path]:
    """Every ``metrics.json`` at or below the given files/folders, sorted."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found.extend(sorted(p.rglob(METRICS_FILE)))
        else:
            raise UserError(f"{p}: no such file or folder")
    return found


def load_runs(*paths: str | os.PathLike) -> list[RunResult]:
    """Load every run at or below ``paths``; all must share one class list."""
    files = find_runs(*paths)
    if not files:
        raise UserError(f"no {METRICS_FILE} found under {', '.join(map(str, paths))}")
    runs = [read_metrics(f) for f in files]
    first = runs[0]
    for run in runs[1:]:
        if run.classes != first.classes:
            raise UserError(f"{run.path} has a different class set from {first.path}; compare runs of one dataset")
    return runs


def runs_frame(runs: list[RunResult]):
    """Long table: one row per (run, class) with columns experiment, method, seed, class, iou."""
    import pandas as pd

    rows = [
        {"experiment": r.experiment, "method": r.method, "seed": r.seed, "class": name, "iou": iou}
        for r in runs
        for name, iou in zip(r.classes, r.iou)
    ]
    return pd.DataFrame(rows)
