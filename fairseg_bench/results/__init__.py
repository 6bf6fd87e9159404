"""The one results schema: the record's keys, atomic writes, validated reads, and one result in memory.

A run folder ``<out>/<experiment>/<label>-s<seed>/`` holds ``config.yaml`` (the resolved config),
``last.pt``, ``history.csv``, ``samples.npz`` (:mod:`fairseg_bench.results.run_files`) and
``metrics.json``. ``metrics.json`` is the only file reports and the CI gate read; runs, checkpoint
evaluations and evaluated prediction folders write it through one builder
(:func:`fairseg_bench.results.record.build_record`). Its keys (schema version 1):

- ``schema_version`` (int), ``experiment`` (str), ``method`` (the loss's canonical label, e.g.
  ``tce-t1``), ``loss_spec`` (the spec as given), ``seed`` (int), ``config_hash`` (str),
  ``config`` (dict, the resolved config), ``dataset`` (str), ``split`` (str), ``steps`` (int);
- ``classes`` (list of K names), ``ignore_index`` (int), ``palette`` (K RGB triples);
- ``confusion_matrix`` (K x K ints; rows ground truth, columns prediction);
- ``void_predictions`` (K ints, prediction folders only: pixels of each class predicted as no
  evaluated class; false negatives, inside ``iou``, outside ``confusion_matrix``);
- ``per_image`` (``{"tp", "fp", "fn"}``, each N_images x K ints), for the bootstrap;
- ``iou`` (K floats in [0, 1], ``null`` for a class absent from ground truth and prediction),
  ``miou``, ``pixel_accuracy``, ``class_accuracy`` (K floats or null);
- ``fairness`` (dict, the keys of ``fairness_metrics`` with the run itself as reference,
  IoUs as fractions);
- ``image_level`` (:func:`fairseg_bench.core.image_metrics.image_level_metrics` of ``per_image``);
  absent from run records written before it was stored;
- ``boundary`` (Boundary IoU, Cheng et al. 2021, :mod:`fairseg_bench.core.boundary`):
  ``{"intersection": K ints, "union": K ints, "iou": K floats or null, "per_image":
  {"intersection", "union"} (N_images x K ints each)}``, counted at the default width (2 % of
  the image diagonal); absent from records written before it was counted;
- ``image_names`` (N stems, the order of ``per_image``) and ``image_attributes`` (``{name: N
  strings}``, e.g. CamVid's ``sequence``, Cityscapes' ``city``): the built-in image groups;
- ``sampler`` (``{"name", "draw_histogram": K ints, "final_weights": K floats}`` or null);
- ``timing`` (``{"wall_time_s", "train_images_per_s", "eval_images_per_s"}``);
- ``environment`` (``{"fairseg_bench", "torch", "python", "device", "git_commit"}``);
- runs and checkpoint evaluations: ``precision`` (the precision rule applied); prediction folders:
  ``source`` (``{"kind": "predictions", "path", "options"}``) and ``files`` (counts of
  ground-truth images, matched predictions and unmatched prediction files).

IoUs are fractions everywhere in files; tables show percent.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fairseg_bench.atomic import read_json, write_atomic  # noqa: F401 - re-exported: the one JSON read and write
from fairseg_bench.errors import UserError

SCHEMA_VERSION = 1
METRICS_FILE = "metrics.json"
REQUIRED_KEYS = ("schema_version", "experiment", "method", "seed", "classes", "confusion_matrix", "iou")


def jsonable(value):
    """Numpy scalars/arrays to plain Python; NaN/inf floats to null (JSON has no NaN).

    Example:
        >>> jsonable({"iou": np.array([0.5, np.nan]), "n": np.int64(3)})
        {'iou': [0.5, None], 'n': 3}
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike, obj: dict) -> None:
    """Write ``obj`` as JSON atomically; NaN becomes null."""
    write_atomic(path, json.dumps(jsonable(obj), indent=1, allow_nan=False) + "\n")


def read_record(path: str | os.PathLike) -> dict:
    """Read and validate one ``metrics.json`` (a file or a run folder): the record as stored."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    data = read_json(path)
    validate_metrics(path, data)
    return data


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


@dataclass(frozen=True)
class Result:
    """One trained model on one split, as every reader returns it: a run's or an evaluation's record,
    another tool's result file, or one row of a table (:mod:`fairseg_bench.results.read`)."""

    method: str
    seed: int | None
    classes: tuple[str, ...]
    iou: np.ndarray  # (K,) fractions, NaN for a class absent from ground truth and prediction
    source: Path
    confusion_matrix: np.ndarray | None = None  # (K, K), rows ground truth
    per_image: dict[str, np.ndarray] | None = None  # {"tp", "fp", "fn"}, each (N_images, K)
    config_hash: str | None = None
    experiment: str | None = None
    dataset: str | None = None
    split: str | None = None
    record: dict = field(default_factory=dict, repr=False)  # the whole metrics.json ({} otherwise)
    # Boundary IoU counts: {"intersection", "union"} (K,) and "per_image": {"intersection", "union"} (N, K) or None
    boundary: dict | None = None
    image_names: tuple[str, ...] | None = None  # N stems, the order of per_image
    image_attributes: dict[str, tuple[str, ...]] | None = None  # the records' built-in image groups
    # (K,) pixels of each class predicted as no evaluated class: false negatives, outside confusion_matrix
    void_predictions: np.ndarray | None = None

    @property
    def folder(self) -> Path | None:
        """The run folder, or None for a table row or another tool's file."""
        return self.source.parent if self.record else None
