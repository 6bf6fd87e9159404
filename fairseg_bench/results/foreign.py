"""Other tools' result files, read as they are into the one :class:`~fairseg_bench.results.Result`
(IoUs as fractions): pure functions, numpy only (no torch). The reader's registry
(:mod:`fairseg_bench.results.read`) tries these formats on every JSON file.

Formats, each recognised from its keys (:func:`detect_format`):

- ``cityscapes``: cityscapesScripts' ``resultPixelLevelSemanticLabeling.json`` -- ``confMatrix``
  (34 x 34 over labelIds, rows ground truth) and ``classScores`` (IoU fractions by class name,
  NaN for the ignored labels). The IoU is taken from ``classScores``; the confusion matrix is
  folded to the 19 trainIds (ignored ground-truth rows dropped, predictions of ignored labelIds
  kept as void: false negatives, as the evaluator counts them, in ``void_predictions``).
- ``mmseg``: mmsegmentation 0.x ``eval_*.json`` -- ``{"config", "metric": {"IoU.<class>": fraction}}``
  (or the metric dict itself).
- ``detectron2``: detectron2's ``SemSegEvaluator`` result saved as JSON -- ``{"sem_seg":
  {"IoU-<class>": percent}}`` (or the inner dict).
- ``hf``: Hugging Face ``evaluate``'s ``mean_iou`` output -- ``per_category_iou`` (fractions, in
  class order) with no class names: they come from ``classes`` (a list, or a dataset name).

Class names are compared after normalisation (case, spaces, underscores); with ``classes`` given
(or a dataset name) they must be the same set, and the result is put in that order. Without them a
file whose names are a registered dataset's takes that dataset's order; otherwise its own.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fairseg_bench.atomic import load_json
from fairseg_bench.errors import UserError
from fairseg_bench.results import Result

__all__ = ["FORMATS", "detect_format", "read_foreign", "parse_foreign", "is_foreign"]


# ----------------------------------------------------------------------------- class names
def normalise(name: str) -> str:
    """``'Traffic_Light '`` -> ``'traffic light'``: the form class names are compared in."""
    return " ".join(str(name).replace("_", " ").split()).lower()


def _dataset_classes(name: str) -> list[str]:
    from fairseg_bench.data.label_sets import DATASET_CLASSES

    if name not in DATASET_CLASSES:
        choices = ", ".join(sorted(DATASET_CLASSES))
        raise UserError(f"unknown dataset {name!r} for a result file; choose one of {choices}")
    return list(DATASET_CLASSES[name])


def _recognise(names: list[str]) -> tuple[str | None, list[str]]:
    """The registered dataset whose class set the names are, with its order; else (None, names)."""
    from fairseg_bench.data.label_sets import DATASET_CLASSES

    wanted = sorted(map(normalise, names))
    for dataset, classes in DATASET_CLASSES.items():
        if sorted(map(normalise, classes)) == wanted:
            return dataset, list(classes)
    return None, list(names)


def _ordered(values: dict[str, float], expected: list[str], path: Path) -> np.ndarray:
    """Values by class name, in the order of ``expected``; the sets must match."""
    by_norm = {normalise(k): v for k, v in values.items()}
    want = [normalise(c) for c in expected]
    missing = [c for c, n in zip(expected, want, strict=True) if n not in by_norm]
    extra = sorted(set(by_norm) - set(want))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
        if extra:
            parts.append(f"unknown {', '.join(extra[:3])}" + (" ..." if len(extra) > 3 else ""))
        raise UserError(f"{path}: its class names do not match the dataset's {len(expected)} classes "
                        f"({'; '.join(parts)})")
    return np.array([by_norm[n] for n in want], dtype=np.float64)


def _json_number(value, path: Path, key: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{path}: {key} is {value!r}, not a number")
    return float(value)


def _resolve(names_values: dict[str, float], path: Path, classes, dataset) -> tuple[str | None, list[str], np.ndarray]:
    """(dataset, class order, values in that order) for a name -> value mapping."""
    if classes is None and dataset is not None:
        classes = _dataset_classes(dataset)
    if classes is None:
        dataset, classes = _recognise(list(names_values))
    return dataset, list(classes), _ordered(names_values, list(classes), path)


def _check_range(iou: np.ndarray, path: Path, scale: str) -> np.ndarray:
    """``iou`` (fractions) if every value lies in [0, 1]; ``scale`` names the file's unit in the error."""
    bad = ~np.isnan(iou) & ((iou < 0) | (iou > 1))
    if bad.any():
        raise UserError(f"{path}: an IoU outside [0, 1] ({scale}); is this the right file?")
    return iou


# ----------------------------------------------------------------------------- formats
def _is_cityscapes(obj: dict) -> bool:
    return "confMatrix" in obj and "classScores" in obj


def _parse_cityscapes(obj: dict, path: Path, classes=None, dataset=None) -> dict:
    from fairseg_bench.data.label_sets import CITYSCAPES_CLASSES, CITYSCAPES_LABEL_IDS, LABEL_ID_TO_TRAIN_ID

    if dataset not in (None, "cityscapes"):
        raise UserError(f"{path}: a cityscapesScripts result holds Cityscapes classes, not {dataset}'s")
    scores = {k: _json_number(v, path, f"classScores[{k!r}]") for k, v in obj["classScores"].items()}
    expected = list(classes) if classes is not None else list(CITYSCAPES_CLASSES)
    if sorted(map(normalise, expected)) != sorted(map(normalise, CITYSCAPES_CLASSES)):
        raise UserError(f"{path}: a cityscapesScripts result holds the 19 Cityscapes classes; the classes given differ")
    scores = {k: v for k, v in scores.items() if normalise(k) in set(map(normalise, expected))}
    iou = _ordered(scores, expected, path)
    conf = np.asarray(obj["confMatrix"], dtype=np.float64)
    if conf.shape != (CITYSCAPES_LABEL_IDS, CITYSCAPES_LABEL_IDS) or (conf < 0).any() or (conf % 1).any():
        n = CITYSCAPES_LABEL_IDS
        raise UserError(f"{path}: confMatrix must be a {n} x {n} matrix of counts")
    order = [normalise(c) for c in CITYSCAPES_CLASSES]
    position = {i: order.index(normalise(expected[i])) for i in range(len(expected))}  # expected -> trainId
    label_ids = {train: label for label, train in LABEL_ID_TO_TRAIN_ID.items()}
    rows = [label_ids[position[i]] for i in range(len(expected))]
    block = conf[np.ix_(rows, rows)].astype(np.int64)
    void = conf[rows].sum(1).astype(np.int64) - block.sum(1)
    return {"classes": expected, "iou": iou, "dataset": "cityscapes", "confusion_matrix": block,
            "void_predictions": void}


def _metric_dict(obj: dict, prefix: str, wrapper: str) -> dict | None:
    inner = obj.get(wrapper) if isinstance(obj.get(wrapper), dict) else obj
    return inner if any(isinstance(k, str) and k.startswith(prefix) for k in inner) else None


def _is_mmseg(obj: dict) -> bool:
    return _metric_dict(obj, "IoU.", "metric") is not None


def _prefixed_ious(obj: dict, path: Path, prefix: str, wrapper: str) -> dict[str, float]:
    """``{class: IoU}`` from the keys ``<prefix><class>`` of ``obj`` or of ``obj[wrapper]``."""
    metric = _metric_dict(obj, prefix, wrapper)
    return {k[len(prefix):]: _json_number(v, path, k) for k, v in metric.items() if k.startswith(prefix)}


def _parse_mmseg(obj: dict, path: Path, classes=None, dataset=None) -> dict:
    values = _prefixed_ious(obj, path, "IoU.", "metric")
    dataset, classes, iou = _resolve(values, path, classes, dataset)
    return {"classes": classes, "iou": _check_range(iou, path, "fractions expected"), "dataset": dataset}


def _is_detectron2(obj: dict) -> bool:
    return _metric_dict(obj, "IoU-", "sem_seg") is not None


def _parse_detectron2(obj: dict, path: Path, classes=None, dataset=None) -> dict:
    values = _prefixed_ious(obj, path, "IoU-", "sem_seg")
    dataset, classes, iou = _resolve(values, path, classes, dataset)
    return {"classes": classes, "iou": _check_range(iou / 100.0, path, "percent expected"), "dataset": dataset}


def _is_hf(obj: dict) -> bool:
    return isinstance(obj.get("per_category_iou"), list)


def _parse_hf(obj: dict, path: Path, classes=None, dataset=None) -> dict:
    values = [_json_number(v, path, "per_category_iou") for v in obj["per_category_iou"]]
    if classes is None and dataset is None:
        raise UserError(f"{path}: a Hugging Face mean_iou result names no classes; give them with --classes "
                        "(a file, one name a line, or a dataset: cityscapes, ade20k, voc, camvid)")
    if classes is None:
        classes = _dataset_classes(dataset)
    if len(values) != len(classes):
        raise UserError(f"{path}: {len(values)} per_category_iou values for {len(classes)} classes; "
                        "its class names do not match the dataset's")
    iou = np.array(values, dtype=np.float64)
    return {"classes": list(classes), "iou": _check_range(iou, path, "fractions expected"), "dataset": dataset}


@dataclass(frozen=True)
class ForeignFormat:
    """One readable format: how to recognise it and how to parse it."""

    name: str
    description: str
    detect: Callable[[dict], bool]
    parse: Callable[..., dict]


FORMATS: dict[str, ForeignFormat] = {f.name: f for f in (
    ForeignFormat("cityscapes", "cityscapesScripts resultPixelLevelSemanticLabeling.json (confMatrix, classScores)",
                  _is_cityscapes, _parse_cityscapes),
    ForeignFormat("mmseg", "mmsegmentation 0.x eval_*.json (IoU.<class>, fractions)", _is_mmseg, _parse_mmseg),
    ForeignFormat("detectron2", "detectron2 sem_seg results as JSON (IoU-<class>, percent)",
                  _is_detectron2, _parse_detectron2),
    ForeignFormat("hf", "Hugging Face evaluate mean_iou (per_category_iou, with a class list or dataset)",
                  _is_hf, _parse_hf),
)}


def detect_format(obj) -> str | None:
    """The name of the format ``obj`` (a parsed JSON value) is in, or None."""
    if not isinstance(obj, dict):
        return None
    for fmt in FORMATS.values():
        if fmt.detect(obj):
            return fmt.name
    return None


def is_foreign(obj) -> bool:
    """Whether a parsed JSON value is another tool's result file."""
    return detect_format(obj) is not None


def understood() -> str:
    """The formats understood, for error messages."""
    return "; ".join(f.description for f in FORMATS.values())


def default_method(path: Path) -> str:
    """The file's stem, or its folder's name when the stem is a tool's default file name."""
    stem = path.stem
    generic = stem in ("resultPixelLevelSemanticLabeling", "results", "result", "metrics", "mean_iou") or \
        stem.startswith("eval_")
    return path.resolve().parent.name if generic and path.resolve().parent.name else stem


def parse_foreign(obj, path, *, classes=None, dataset: str | None = None, method: str | None = None) -> Result:
    """A parsed JSON value -> :class:`~fairseg_bench.results.Result` (no seed); an unknown format is a
    one-line ``UserError``."""
    path = Path(path)
    name = detect_format(obj)
    if name is None:
        raise UserError(f"{path}: not a result format fairseg-bench reads; it reads fairseg-bench metrics.json "
                        f"and {understood()}")
    parsed = FORMATS[name].parse(obj, path, classes=None if classes is None else list(classes), dataset=dataset)
    return Result(method=method or default_method(path), seed=None, classes=tuple(parsed.pop("classes")),
                  source=path, **parsed)


def read_foreign(path, *, classes=None, dataset: str | None = None, method: str | None = None) -> Result:
    """Read another tool's result file (JSON; NaN literals allowed)."""
    path = Path(path)
    return parse_foreign(load_json(path), path, classes=classes, dataset=dataset, method=method)
