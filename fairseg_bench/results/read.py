"""The one reader: every result file becomes one :class:`Results` (method × seed × class) of
:class:`~fairseg_bench.results.Result` s.

Inputs: run folders (every ``metrics.json`` below them), a run's ``metrics.json`` or an
``evaluate`` ``metrics-<split>.json``, wide CSVs (``method``, optional ``seed``, one column per
class, an ``mIoU`` column ignored), long CSVs (``method, class, iou`` and optional ``seed``), and
JSON files with a confusion matrix or per-class IoUs (one method, or an object of methods).

Reading never renders and never summarises; :mod:`fairseg_bench.results.summary` computes every
number from the :class:`Results` this module returns.

Formats are a registry: :data:`INPUT_FORMATS` lists ``InputFormat(name, kind, detect, read)``
entries, tried in order on each file; ``kind`` is ``"json"`` (``detect`` gets the parsed object)
or ``"csv"`` (``detect`` gets the frame, every cell a string). To add a format (cityscapesScripts'
``resultPixelLevelSemanticLabeling.json``, mmsegmentation's ``eval_*.json``, detectron2's
``sem_seg`` results, Hugging Face ``mean_iou``), write ``detect`` and ``read(path, parsed, scale)
-> list[Result]`` and call :func:`register_format` (``first=True`` to try it before the generic
entries); nothing else changes.

IoUs are fractions in a :class:`Result`. Numbers read as numbers follow ``scale``: ``percent``,
``fraction``, or ``auto`` (per file: fractions when no value exceeds 1). An empty cell or JSON
null is a class with no ground truth and no prediction (NaN, left out of every mean).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fairseg_bench.core.fairness import fairness_metrics
from fairseg_bench.core.iou import mean_iou, per_class_iou
from fairseg_bench.errors import UserError
from fairseg_bench.results import Result, find_runs, read_json, validate_metrics
from fairseg_bench.results.foreign import FORMATS as FOREIGN_FORMATS
from fairseg_bench.results.foreign import parse_foreign
from fairseg_bench.run_status import sweep_rows

SCALES = ("percent", "fraction", "auto")
SUMMARY_COLUMNS = {"miou", "mean iou", "mean"}
#: how far a stored number may sit from the one its confusion matrix gives (float rounding)
CONSISTENCY_TOLERANCE = 1e-6

__all__ = ["Result", "Results", "InputFormat", "INPUT_FORMATS", "register_format", "read_results", "SCALES"]


@dataclass(frozen=True)
class Results:
    """Every result of one comparison: one class list, methods with one or more seeds."""

    classes: list[str]
    runs: list[Result]
    notes: list[str] = field(default_factory=list)  # said under every table (e.g. mixed configs)
    warnings: list[str] = field(default_factory=list)  # also said on stderr (e.g. unfinished runs)

    @property
    def methods(self) -> list[str]:
        """Method labels in order of first appearance."""
        return list(dict.fromkeys(r.method for r in self.runs))

    def runs_of(self, method: str) -> list[Result]:
        """The results of one method, by seed."""
        return sorted((r for r in self.runs if r.method == method), key=lambda r: (r.seed is None, r.seed or 0))

    def iou(self, method: str) -> np.ndarray:
        """Per-class IoU of every seed of ``method``, fractions. Shape ``(S, K)``."""
        return np.stack([r.iou for r in self.runs_of(method)])

    def resolve(self, label: str | None, *, what: str = "reference") -> str:
        """The method named ``label`` (exact, else case-insensitive).

        Default: the first MCCE in label order, else the first label in order; by name, not by the
        order the inputs came in, so ``run`` and ``report`` on one folder pick the same reference.
        """
        methods = self.methods
        if label is None:
            ordered = sorted(methods)
            return next((m for m in ordered if m.lower().rsplit("/", 1)[-1].startswith("mcce")), ordered[0])
        if label in methods:
            return label
        matches = [m for m in methods if m.lower() == label.lower()]
        if len(matches) == 1:
            return matches[0]
        raise UserError(f"unknown {what} {label!r}; the methods are: {', '.join(methods)}")


@dataclass(frozen=True)
class InputFormat:
    """One entry of the reader's registry."""

    name: str
    kind: str  # "json" or "csv"
    detect: Callable[[object], bool]
    read: Callable[[Path, object, str], list[Result]]
    takes_classes: bool = False  # read(path, parsed, scale, classes): a format whose files may name no classes


# ------------------------------------------------------------------------------- numbers
def _to_fractions(path: Path, values: np.ndarray, labels: list[tuple[str, str]], scale: str) -> np.ndarray:
    """IoU numbers in ``scale`` to fractions, each checked against its unit's range."""
    finite = values[np.isfinite(values)]
    if scale == "auto":
        scale = "fraction" if finite.size == 0 or finite.max() <= 1 else "percent"
    upper = 1.0 if scale == "fraction" else 100.0
    for i, value in enumerate(values.ravel()):
        if math.isnan(value):
            continue
        method, cls = labels[i]
        if math.isinf(value):
            raise UserError(f"{path}: IoU of method {method!r}, class {cls!r} is infinite")
        if value < 0 or value > upper + 1e-9:
            hint = " (--scale fraction expects values in [0, 1])" if scale == "fraction" and value > upper else ""
            where = "below 0" if value < 0 else f"above {upper:g}"
            raise UserError(f"{path}: IoU {value:g} of method {method!r}, class {cls!r} is {where}{hint}")
    return values / upper


def _iou_cell(path: Path, value, method: str, cls: str) -> float:
    """A cell or JSON value as a float; empty/null is NaN; anything else is an error naming it."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "nan", "null", "none")):
        return math.nan
    if isinstance(value, bool):
        value = "bool"
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: IoU {value!r} of method {method!r}, class {cls!r} is not a number") from None


# --------------------------------------------------------------------- fairseg-bench runs
def _is_run(obj) -> bool:
    return isinstance(obj, dict) and "schema_version" in obj


def _read_run(path: Path, obj: dict, scale: str) -> list[Result]:
    """A fairseg-bench ``metrics.json``; its stored numbers must agree with its confusion matrix."""
    validate_metrics(path, obj)
    cm = np.asarray(obj["confusion_matrix"], dtype=np.int64)
    stored = np.array([np.nan if v is None else v for v in obj["iou"]], dtype=np.float64)
    has_counts = cm.sum() > 0  # an all-zero matrix carries no counts: the stored IoUs stand alone
    void = obj.get("void_predictions")  # evaluated prediction folders: predictions of no class (FN)
    void = None if void is None else np.asarray(void, dtype=np.int64)
    iou = per_class_iou(cm, void=void) if has_counts else stored
    _check_consistent(path, obj, stored, iou)
    per_image = obj.get("per_image") or None
    if per_image is not None:
        per_image = {k: np.asarray(per_image[k], dtype=np.int64) for k in ("tp", "fp", "fn")}
    n_images = None if per_image is None else per_image["tp"].shape[0]
    names, attributes = _image_keys(path, obj, n_images)
    return [Result(
        method=str(obj["method"]), seed=int(obj["seed"]), classes=tuple(map(str, obj["classes"])), iou=iou,
        source=path, confusion_matrix=cm if has_counts else None, per_image=per_image,
        config_hash=obj.get("config_hash"), experiment=obj.get("experiment"), dataset=obj.get("dataset"),
        split=obj.get("split"), record=obj, boundary=_boundary(path, obj, len(obj["classes"]), n_images),
        image_names=names, image_attributes=attributes, void_predictions=void,
    )]


def _boundary(path: Path, obj: dict, k: int, n_images: int | None) -> dict | None:
    """The record's Boundary IoU counts as int64 arrays, checked against K and N; None if not recorded."""
    block = obj.get("boundary")
    if not block:
        return None
    try:
        out = {key: np.asarray(block[key], dtype=np.int64) for key in ("intersection", "union")}
        images = block.get("per_image")
        out["per_image"] = None if not images else {
            key: np.asarray(images[key], dtype=np.int64).reshape(-1, k) for key in ("intersection", "union")}
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: malformed boundary block (expected intersection, union and per_image counts)") \
            from None
    sizes_ok = out["intersection"].shape == out["union"].shape == (k,)
    if out["per_image"] is not None:
        sizes_ok &= n_images is None or out["per_image"]["intersection"].shape[0] == n_images
        sizes_ok &= out["per_image"]["intersection"].shape == out["per_image"]["union"].shape
    if not sizes_ok or (out["intersection"] > out["union"]).any():
        raise UserError(f"{path}: boundary counts do not match the {k} classes and the per-image statistics")
    return out


def _image_keys(path: Path, obj: dict, n_images: int | None):
    """``image_names`` and ``image_attributes`` as tuples, each N long when the record has per-image rows."""
    names = obj.get("image_names")
    if names is None:
        return None, None
    names = tuple(map(str, names))
    attributes = {str(k): tuple(map(str, v)) for k, v in (obj.get("image_attributes") or {}).items()}
    if any(len(v) != len(names) for v in attributes.values()) or (n_images is not None and len(names) != n_images):
        raise UserError(f"{path}: image_names/image_attributes do not hold one entry per image of per_image")
    return names, attributes or None


def _check_consistent(path: Path, obj: dict, stored: np.ndarray, iou: np.ndarray) -> None:
    """Stored IoU, mIoU and fairness block against the confusion matrix: a mismatch names the file."""

    def differs(a, b) -> bool:
        a, b = float(a), float(b)
        return (math.isnan(a) != math.isnan(b)) or (not math.isnan(a) and abs(a - b) > CONSISTENCY_TOLERANCE)

    def fail(what: str, value, expected) -> None:
        raise UserError(f"{path}: stored {what} is {value} but its own confusion matrix and IoUs give "
                        f"{expected:.6g}; the file disagrees with itself (edited by hand?)")

    for name, a, b in zip(obj["classes"], stored, iou):
        if differs(a, b):
            fail(f"IoU of class {name!r}", a, b)
    if obj.get("miou") is not None and differs(obj["miou"], mean_iou(iou)):
        fail("miou", obj["miou"], mean_iou(iou))
    expected = fairness_metrics(iou)
    for key, value in (obj.get("fairness") or {}).items():
        if key in expected and value is not None and differs(value, expected[key]):
            fail(f"fairness {key}", value, expected[key])


# --------------------------------------------------------------------------- other JSON
def _is_entry(obj) -> bool:
    return isinstance(obj, dict) and ("confusion_matrix" in obj or "iou" in obj)


def _is_method_map(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, dict) for v in obj.values())


def _read_entry_file(path: Path, obj: dict, scale: str) -> list[Result]:
    return [_json_entry(path, obj, str(obj.get("method", path.stem)), scale)]


def _read_method_map(path: Path, obj: dict, scale: str) -> list[Result]:
    return [_json_entry(path, entry, str(method), scale) for method, entry in obj.items()]


def _json_entry(path: Path, entry: dict, method: str, scale: str) -> Result:
    """A confusion matrix, an ``iou`` list/object, or a ``{class: iou}`` object."""
    if "confusion_matrix" in entry:
        cm = _confusion(path, entry["confusion_matrix"], method)
        classes = _class_names(path, entry, cm.shape[0], method)
        return Result(method, _seed(entry), classes, per_class_iou(cm), path, confusion_matrix=cm.astype(np.int64))
    iou = entry.get("iou", entry)
    if isinstance(iou, dict):
        classes, values = tuple(map(str, iou)), list(iou.values())
    else:
        values = list(iou) if isinstance(iou, list) else [iou]
        classes = _class_names(path, entry, len(values), method)
    numbers = np.array([_iou_cell(path, v, method, c) for c, v in zip(classes, values)], dtype=np.float64)
    fractions = _to_fractions(path, numbers, [(method, c) for c in classes], scale)
    return Result(method, _seed(entry), classes, fractions, path)


def _seed(entry: dict) -> int | None:
    seed = entry.get("seed") if isinstance(entry, dict) else None
    return None if seed is None else int(seed)


def _confusion(path: Path, value, method: str) -> np.ndarray:
    try:
        cm = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{path}: the confusion matrix of {method!r} holds a value that is not a number") from None
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise UserError(f"{path}: the confusion matrix of {method!r} is not square (shape {cm.shape})")
    if (cm < 0).any() or not np.isfinite(cm).all():
        raise UserError(f"{path}: the confusion matrix of {method!r} holds a negative or non-finite count")
    return cm


def _class_names(path: Path, entry: dict, k: int, method: str) -> tuple[str, ...]:
    classes = entry.get("classes")
    if classes is None:
        return tuple(str(i) for i in range(k))
    if not isinstance(classes, list) or len(classes) != k:
        count = len(classes) if isinstance(classes, list) else "no"
        raise UserError(f"{path}: {method!r} lists {count} class names for {k} classes")
    return tuple(map(str, classes))


# -------------------------------------------------------------------------------- CSV
def _is_long(frame) -> bool:
    return {"method", "class", "iou"} <= set(frame.columns) and set(frame.columns) <= {"method", "class", "iou", "seed"}


def _is_wide(frame) -> bool:
    return "method" in frame.columns


def _csv_seeds(path: Path, column) -> list[int | None]:
    seeds = []
    for value in column:
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
        if not text:
            seeds.append(None)
        elif text.isdigit():
            seeds.append(int(text))
        else:
            raise UserError(f"{path}: seed {text!r} is not a non-negative integer")
    return seeds


def _read_wide(path: Path, frame, scale: str) -> list[Result]:
    classes = [c for c in frame.columns if c not in ("method", "seed") and c.lower() not in SUMMARY_COLUMNS]
    if not classes:
        raise UserError(f"{path}: no class columns besides 'method'")
    if any(c.startswith("Unnamed:") for c in classes):
        raise UserError(f"{path}: a column without a name (class names must head every column)")
    seeds = _csv_seeds(path, frame["seed"]) if "seed" in frame.columns else [None] * len(frame)
    methods = list(frame["method"])
    values = np.array([[_iou_cell(path, frame[c].iat[i], methods[i], c) for c in classes] for i in range(len(frame))])
    labels = [(m, c) for m in methods for c in classes]
    fractions = _to_fractions(path, values, labels, scale).reshape(values.shape)
    return [Result(m, s, tuple(classes), row, path) for m, s, row in zip(methods, seeds, fractions)]


def _read_long(path: Path, frame, scale: str) -> list[Result]:
    """A long table, pivoted to the wide layout (one row per method and seed)."""
    import pandas as pd

    frame = frame.assign(seed=frame["seed"] if "seed" in frame.columns else "", **{"class": frame["class"].str.strip()})
    if (frame["class"] == "").any():
        raise UserError(f"{path}: a row without a class name")
    twice = frame.duplicated(["method", "seed", "class"])
    if twice.any():
        row = frame[twice].iloc[0]
        raise UserError(f"{path}: method {row['method']!r}, class {row['class']!r} appears twice")
    classes = list(dict.fromkeys(frame["class"]))
    rows = []
    for (method, seed), part in frame.groupby(["method", "seed"], sort=False):
        missing = [c for c in classes if c not in set(part["class"])]
        if missing:
            raise UserError(f"{path}: method {method!r} has no row for class {missing[0]!r} "
                            "(leave the iou empty for an absent class)")
        rows.append({"method": method, "seed": seed, **dict(zip(part["class"], part["iou"]))})
    wide = pd.DataFrame(rows, columns=["method", "seed", *classes])
    return _read_wide(path, wide if (wide["seed"] != "").any() else wide.drop(columns="seed"), scale)


def _read_csv_frame(path: Path):
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, skipinitialspace=True, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid CSV file ({str(exc).strip().splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    frame = frame.rename(columns={lower[k]: k for k in ("method", "class", "iou", "seed") if k in lower})
    if "method" not in frame.columns:
        raise UserError(f"{path}: no 'method' column (expected a wide CSV 'method,<class>,...' "
                        "or a long CSV 'method,class,iou')")
    if frame.empty:
        raise UserError(f"{path}: no rows below the header")
    frame["method"] = frame["method"].str.strip()
    if (frame["method"] == "").any():
        row = int(np.flatnonzero(frame["method"] == "")[0]) + 2
        raise UserError(f"{path}: a row without a method name (row {row})")
    return frame


# ---------------------------------------------------------------------- other tools' files
def _read_foreign(path: Path, obj, scale: str, classes=None) -> list[Result]:
    """Another tool's file (:mod:`fairseg_bench.results.foreign`); ``classes``: names, or a dataset name."""
    names, dataset = (None, classes) if isinstance(classes, str) else (classes, None)
    return [parse_foreign(obj, path, classes=names, dataset=dataset)]


def _foreign_formats() -> list[InputFormat]:
    return [InputFormat(f.description, "json", f.detect, _read_foreign, takes_classes=True)
            for f in FOREIGN_FORMATS.values()]


# ---------------------------------------------------------------------------- registry
INPUT_FORMATS: list[InputFormat] = [
    InputFormat("fairseg-bench metrics.json", "json", _is_run, _read_run),
    *_foreign_formats(),  # before the generic JSON entries: a detectron2 {"sem_seg": {...}} is a dict of dicts
    InputFormat("confusion matrix or IoU JSON", "json", _is_entry, _read_entry_file),
    InputFormat("JSON of methods", "json", _is_method_map, _read_method_map),
    InputFormat("long CSV (method, class, iou)", "csv", _is_long, _read_long),
    InputFormat("wide CSV (method, one column per class)", "csv", _is_wide, _read_wide),
]


def register_format(entry: InputFormat, *, first: bool = False) -> None:
    """Add a format to the registry (``first``: try it before the built-in ones)."""
    INPUT_FORMATS.insert(0, entry) if first else INPUT_FORMATS.append(entry)


def read_file(path: Path, scale: str = "auto", classes=None) -> list[Result]:
    """Every result in one file, by the first registry entry that recognises it.

    ``classes`` (a list of names, or a dataset name) goes to the formats that take it: the class
    list of a Hugging Face ``mean_iou`` file, and the names another tool's file must match.
    """
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    kind = "json" if path.suffix.lower() == ".json" else "csv"
    parsed = read_json(path) if kind == "json" else _read_csv_frame(path)
    for entry in INPUT_FORMATS:
        if entry.kind == kind and entry.detect(parsed):
            if entry.takes_classes:
                return entry.read(path, parsed, scale, classes)
            return entry.read(path, parsed, scale)
    names = ", ".join(e.name for e in INPUT_FORMATS if e.kind == kind)
    raise UserError(f"{path}: not a known result format (expected one of: {names})")


def _expand(paths) -> list[Path]:
    """Files as given; a folder stands for every run ``metrics.json`` below it."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            runs = find_runs(path)
            if not runs:
                raise UserError(f"{path}: a folder with no run metrics.json below it; give a CSV or JSON file")
            files.extend(runs)
        else:
            files.append(path)
    return files


# ---------------------------------------------------------------------------- combining
def read_results(paths, *, scale: str = "auto", mixed_configs: bool = False, classes=None) -> Results:
    """Read every input into one :class:`Results`.

    Args:
        paths: files and folders (see the module docstring).
        scale: unit of IoU numbers in tables: ``percent``, ``fraction`` or ``auto``.
        mixed_configs: allow runs of different configs (a note says so); refused by default.
        classes: class names (list) or a dataset name, for result files of other tools that name
            no classes (Hugging Face ``mean_iou``) or must match a dataset's.

    Raises:
        UserError: an unreadable or inconsistent file, two inputs with different class sets, a
            (method, seed) given twice, or runs of several configs without ``mixed_configs``.
    """
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise UserError("no input given: pass run folders, metrics.json files or per-class IoU tables")
    results = [r for path in _expand(paths) for r in read_file(path, scale, classes)]
    classes = _common_class_list(results)
    results = [_reorder(r, classes) for r in results]
    notes = _config_notes(results, mixed_configs)
    results = _label_experiments(results)
    _check_unique(results)
    empty = next((r for r in results if np.isnan(r.iou).all()), None)
    if empty is not None:
        raise UserError(f"method {empty.method!r} has no IoU value (every class empty) in {empty.source}")
    return Results(classes, results, notes, _unfinished_notes(paths))


def _unfinished_notes(paths) -> list[str]:
    """A note per input folder whose sweep has runs without ``metrics.json`` (started or queued),
    so a report of a sweep in progress says what it lacks (the rows ``fairseg-bench status`` shows)."""
    notes = []
    for folder in (Path(p) for p in paths if Path(p).is_dir()):
        left = [row for row in sweep_rows(folder) if row["state"] != "done"]
        if left:
            names = ", ".join(f"{row['run']} ({row['state']})" for row in left)
            notes.append(f"{len(left)} run(s) under {folder} have not finished and are left out: {names} "
                         f"(`fairseg-bench status {folder}` shows where they stand).")
    return notes


def _common_class_list(results: list[Result]) -> list[str]:
    first = results[0]
    for r in results[1:]:
        if set(r.classes) != set(first.classes):
            extra = sorted(set(r.classes) - set(first.classes))
            missing = sorted(set(first.classes) - set(r.classes))
            what = f"has class {extra[0]!r}" if extra else f"lacks class {missing[0]!r}"
            raise UserError(f"{r.source}: method {r.method!r} {what} unlike {first.source}: "
                            "every input must have the same classes")
    return list(first.classes)


def _reorder(result: Result, classes: list[str]) -> Result:
    """A result with its classes in the shared order (tables may list them in another order)."""
    if list(result.classes) == classes:
        return result
    if result.record:
        raise UserError(f"{result.source} lists the classes in another order than the other runs; "
                        "compare runs of one dataset")
    order = [result.classes.index(c) for c in classes]
    cm = None if result.confusion_matrix is None else result.confusion_matrix[np.ix_(order, order)]
    void = None if result.void_predictions is None else result.void_predictions[order]
    return replace(result, classes=tuple(classes), iou=result.iou[order], confusion_matrix=cm, void_predictions=void)


def _config_notes(results: list[Result], mixed_configs: bool) -> list[str]:
    hashes = list(dict.fromkeys(r.config_hash for r in results if r.config_hash))
    if len(hashes) <= 1:
        return []
    listed = ", ".join(h[:12] for h in hashes)
    if not mixed_configs:
        raise UserError(f"the runs come from {len(hashes)} different configs ({listed}); point at one experiment "
                        "folder, or pass --mixed-configs to compare them anyway")
    return [f"The runs come from {len(hashes)} different configs ({listed}): their differences are not only the loss."]


def _label_experiments(results: list[Result]) -> list[Result]:
    """Runs of several experiments keep apart: ``<experiment>/<method>``."""
    experiments = {r.experiment for r in results if r.record}
    if len(experiments) <= 1:
        return results
    return [replace(r, method=f"{r.experiment}/{r.method}") if r.record else r for r in results]


def _check_unique(results: list[Result]) -> None:
    """Two results for one (method, seed) would be averaged as if independent: refuse."""
    seen: dict[tuple, Path] = {}
    for r in results:
        key = (r.method, r.seed)
        if key in seen:
            what = f"seed {r.seed}" if r.seed is not None else "no seed (give a 'seed' column to mark seeds)"
            raise UserError(f"method {r.method!r} with {what} appears twice ({seen[key]} and {r.source})")
        seen[key] = r.source
