"""Inputs and outputs of ``fairseg-bench metrics``: per-class IoU tables from files, in percent.

Accepted inputs (any mix, one class set):

- a wide CSV: a ``method`` column and one column per class (an ``mIoU`` column is a summary and
  is dropped: it is recomputed);
- a long CSV: exactly the columns ``method, class, iou``;
- a JSON file: a fairseg-bench ``metrics.json`` (IoU from its confusion matrix's run), or an
  object with ``confusion_matrix`` (K×K, rows ground truth) and optional ``classes``/``method``,
  or with ``iou`` (a list, with ``classes``, or a ``{class: iou}`` object), or an object mapping
  method names to any of these or to ``{class: iou}``.

An empty cell (or JSON null) is a class with no ground truth and no prediction: NaN, left out of
every mean. IoUs given as numbers are read in the unit ``--scale`` says: ``percent``,
``fraction``, or ``auto`` (per file: fractions if no value exceeds 1). IoUs computed from a
confusion matrix, and those in ``metrics.json`` (fractions by schema), need no scale.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fairseg_bench.core.fairness import FAIRNESS_KEYS
from fairseg_bench.core.iou import per_class_iou
from fairseg_bench.errors import UserError
from fairseg_bench.results import find_runs
from fairseg_bench.tables import (
    fairness_frame,
    fairness_table,
    per_class_table,
    render,
    split_columns,
    to_csv,
)

SCALES = ("percent", "fraction", "auto")
OUTPUT_FORMATS = ("md", "latex", "csv", "json")
TABLES = ("both", "per-class", "fairness")
_SUMMARY_COLUMNS = {"miou", "mean iou", "mean"}


# ---------------------------------------------------------------------------------- reading
def read_iou_tables(paths, scale: str = "auto") -> pd.DataFrame:
    """All methods of all files as one frame: methods × classes, IoU in percent.

    Raises:
        UserError: a missing or unreadable file, a bad value, two files disagreeing on the class
            set, or a method named twice.
    """
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
    if not paths:
        raise UserError("no input file given")
    frames = [(path, _read_one(path, scale)) for path in _expand_folders(paths)]
    return _combine(frames)


def _expand_folders(paths) -> list[Path]:
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


def _read_one(path: Path, scale: str) -> pd.DataFrame:
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.suffix.lower() == ".json":
        return _read_json(path, scale)
    return _read_csv(path, scale)


def _read_csv(path: Path, scale: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid CSV file ({str(exc).strip().splitlines()[0]})") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    lower = {c.lower(): c for c in raw.columns}
    if "method" not in lower:
        raise UserError(
            f"{path}: no 'method' column (expected a wide CSV 'method,<class>,...' or a long CSV 'method,class,iou')"
        )
    if raw.empty:
        raise UserError(f"{path}: no rows below the header")
    raw = raw.rename(columns={lower["method"]: "method"})
    raw["method"] = raw["method"].fillna("").str.strip()
    if (raw["method"] == "").any():
        raise UserError(f"{path}: a row without a method name (row {int(np.flatnonzero(raw['method'] == '')[0]) + 2})")
    if set(lower) == {"method", "class", "iou"}:
        table = _pivot_long(path, raw.rename(columns={lower["class"]: "class", lower["iou"]: "iou"}))
    else:
        table = _wide(path, raw)
    return _apply_scale(path, _numeric(path, table), scale)


def _wide(path: Path, raw: pd.DataFrame) -> pd.DataFrame:
    duplicated = raw["method"][raw["method"].duplicated()].tolist()
    if duplicated:
        raise UserError(f"{path}: method {duplicated[0]!r} appears in more than one row")
    classes = [c for c in raw.columns if c != "method" and c.lower() not in _SUMMARY_COLUMNS]
    if not classes:
        raise UserError(f"{path}: no class columns besides 'method'")
    unnamed = [c for c in classes if c.startswith("Unnamed:")]
    if unnamed:
        raise UserError(f"{path}: a column without a name (class names must head every column)")
    return raw.set_index("method")[classes]


def _pivot_long(path: Path, raw: pd.DataFrame) -> pd.DataFrame:
    raw["class"] = raw["class"].fillna("").str.strip()
    if (raw["class"] == "").any():
        raise UserError(f"{path}: a row without a class name")
    dup = raw.duplicated(["method", "class"])
    if dup.any():
        row = raw[dup].iloc[0]
        raise UserError(f"{path}: method {row['method']!r}, class {row['class']!r} appears twice")
    classes = list(dict.fromkeys(raw["class"]))
    methods = list(dict.fromkeys(raw["method"]))
    table = raw.pivot(index="method", columns="class", values="iou").reindex(index=methods, columns=classes)
    present = raw.groupby("method")["class"].apply(set)
    for method in methods:
        missing = [c for c in classes if c not in present[method]]
        if missing:
            raise UserError(f"{path}: method {method!r} has no row for class {missing[0]!r} (leave the iou empty for an absent class)")
    return table


def _numeric(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    """Cells as floats; a non-empty cell that is not a number is an error naming it."""
    out = table.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    text = table.astype(object)
    bad = out.isna() & text.notna() & ~text.apply(lambda col: col.astype(str).str.strip().str.lower().isin(["", "nan", "null", "none"]))
    if bad.to_numpy().any():
        method, cls = bad.stack()[bad.stack()].index[0]
        raise UserError(f"{path}: IoU {table.loc[method, cls]!r} of method {method!r}, class {cls!r} is not a number")
    infinite = ~np.isfinite(out.to_numpy()) & ~out.isna().to_numpy()
    if infinite.any():
        i, j = np.argwhere(infinite)[0]
        raise UserError(f"{path}: IoU of method {out.index[i]!r}, class {out.columns[j]!r} is infinite")
    return out


def _apply_scale(path: Path, table: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Convert to percent, checking the range of the unit the values are in."""
    values = table.to_numpy()
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return table
    if scale == "auto":
        scale = "fraction" if finite.max() <= 1 else "percent"
    upper = 1.0 if scale == "fraction" else 100.0
    for label, mask in (("below 0", table < 0), (f"above {upper:g}", table > upper + 1e-9)):
        if mask.to_numpy().any():
            method, cls = mask.stack()[mask.stack()].index[0]
            hint = " (--scale fraction expects values in [0, 1])" if scale == "fraction" and label.startswith("above") else ""
            raise UserError(f"{path}: IoU {table.loc[method, cls]:g} of method {method!r}, class {cls!r} is {label}{hint}")
    return table * 100.0 if scale == "fraction" else table


def _read_json(path: Path, scale: str) -> pd.DataFrame:
    from fairseg_bench.results import read_json, read_metrics

    obj = read_json(path)
    if "schema_version" in obj:
        run = read_metrics(path)
        iou = per_class_iou(run.confusion_matrix) * 100.0
        name = f"{run.method}-s{run.seed}"  # several seeds of one method stay apart
        return pd.DataFrame([iou], index=pd.Index([name], name="method"), columns=run.classes)
    entries = _json_entries(path, obj)
    rows, scaled = [], []
    for method, (classes, values, needs_scale) in entries.items():
        frame = pd.DataFrame([values], index=pd.Index([method], name="method"), columns=classes, dtype=np.float64)
        (scaled if needs_scale else rows).append(frame)
    columns = _check_same_classes(path, [f for f in rows + scaled])
    out = []
    if scaled:
        out.append(_apply_scale(path, pd.concat(scaled)[columns], scale))
    if rows:
        out.append(pd.concat(rows)[columns])
    frame = pd.concat(out).reindex(list(entries))
    frame.index.name = "method"
    return frame


def _json_entries(path: Path, obj: dict) -> dict:
    """method -> (classes, values, whether values need the --scale)."""
    if _is_entry(obj):
        return {str(obj.get("method", path.stem)): _json_entry(path, obj, path.stem)}
    if obj and all(isinstance(v, dict) for v in obj.values()):
        return {str(method): _json_entry(path, entry, str(method)) for method, entry in obj.items()}
    raise UserError(
        f"{path}: expected a metrics.json, an object with 'confusion_matrix' or 'iou', or an object mapping methods to those"
    )


def _is_entry(obj: dict) -> bool:
    return "confusion_matrix" in obj or "iou" in obj


def _json_entry(path: Path, entry: dict, method: str):
    if "confusion_matrix" in entry:
        cm = np.asarray(entry["confusion_matrix"], dtype=object)
        try:
            cm = cm.astype(np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{path}: the confusion matrix of {method!r} holds a value that is not a number") from None
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
            raise UserError(f"{path}: the confusion matrix of {method!r} is not square (shape {cm.shape})")
        if (cm < 0).any() or not np.isfinite(cm).all():
            raise UserError(f"{path}: the confusion matrix of {method!r} holds a negative or non-finite count")
        classes = _class_names(path, entry, cm.shape[0], method)
        return classes, per_class_iou(cm) * 100.0, False
    if "iou" in entry:
        iou = entry["iou"]
        if isinstance(iou, dict):
            classes, values = list(map(str, iou)), list(iou.values())
        else:
            values = list(iou) if isinstance(iou, list) else [iou]
            classes = _class_names(path, entry, len(values), method)
        return classes, _json_numbers(path, values, classes, method), True
    # {class: iou}
    return list(map(str, entry)), _json_numbers(path, list(entry.values()), list(map(str, entry)), method), True


def _class_names(path: Path, entry: dict, k: int, method: str) -> list[str]:
    classes = entry.get("classes")
    if classes is None:
        return [str(i) for i in range(k)]
    if not isinstance(classes, list) or len(classes) != k:
        raise UserError(f"{path}: {method!r} lists {len(classes) if isinstance(classes, list) else 'no'} class names for {k} classes")
    return [str(c) for c in classes]


def _json_numbers(path: Path, values: list, classes: list, method: str) -> list[float]:
    out = []
    for cls, value in zip(classes, values):
        if value is None:
            out.append(math.nan)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(float(value))
        else:
            raise UserError(f"{path}: IoU {value!r} of method {method!r}, class {cls!r} is not a number")
    return out


def _check_same_classes(source, frames: list[pd.DataFrame]) -> list:
    """The shared class list (order of the first frame); a different set is an error."""
    first = list(frames[0].columns)
    for frame in frames[1:]:
        cols = list(frame.columns)
        if set(cols) != set(first):
            extra = sorted(set(cols) - set(first))
            missing = sorted(set(first) - set(cols))
            what = f"has class {extra[0]!r} that {frames[0].index[0]!r} lacks" if extra else f"lacks class {missing[0]!r}"
            raise UserError(f"{source}: method {frame.index[0]!r} {what}: every input must have the same classes")
    return first


def _combine(frames: list[tuple[Path, pd.DataFrame]]) -> pd.DataFrame:
    """Stack the files' methods; same classes everywhere, every method once."""
    first_path, first = frames[0]
    seen: dict[str, Path] = {}
    out = []
    for path, frame in frames:
        if set(frame.columns) != set(first.columns):
            extra = sorted(set(frame.columns) - set(first.columns))
            missing = sorted(set(first.columns) - set(frame.columns))
            what = f"has class {extra[0]!r}" if extra else f"lacks class {missing[0]!r}"
            raise UserError(f"{path} {what} unlike {first_path}: every input must have the same classes")
        for method in frame.index:
            if method in seen:
                raise UserError(f"method {method!r} appears twice ({seen[method]} and {path})")
            seen[method] = path
        out.append(frame[list(first.columns)])
    table = pd.concat(out)
    table.index.name = "method"
    table.columns.name = None
    empty = [m for m in table.index if table.loc[m].isna().all()]
    if empty:
        raise UserError(f"method {empty[0]!r} has no IoU value (every class empty)")
    return table


# ------------------------------------------------------------------------------ reference
def resolve_reference(table: pd.DataFrame, name: str | None) -> str:
    """The reference method: ``name`` (exact, else case-insensitive), by default the first
    method called MCCE (``mcce``, ``MCCE [1]``, ...), else the first method."""
    methods = list(table.index)
    if name is None:
        return next((m for m in methods if str(m).lower().startswith("mcce")), methods[0])
    if name in methods:
        return name
    folded = [m for m in methods if str(m).lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise UserError(f"reference {name!r} is not among the methods: {', '.join(map(str, methods))}")


# ---------------------------------------------------------------------------------- output
def metrics_report(
    table: pd.DataFrame,
    reference: str,
    fraction: float = 0.25,
    fmt: str = "md",
    which: str = "both",
    split: bool = False,
    digits: int = 2,
) -> str:
    """The text ``fairseg-bench metrics`` prints.

    Args:
        table: methods × classes, percent (from ``read_iou_tables``).
        reference: method ranking the classes (Table 1 order and the sorted groups).
        fraction: f of the fairness metrics.
        fmt: ``md``, ``latex``, ``csv`` or ``json``.
        which: ``both``, ``per-class`` (Table 1) or ``fairness`` (Table 3).
        split: per-class table in two halves, as the paper prints it (md/latex).
        digits: decimals shown (md/latex).
    """
    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    if which not in TABLES:
        raise UserError(f"unknown table {which!r}; choose from {', '.join(TABLES)}")
    per_class = per_class_table(table, reference)
    fairness = fairness_frame(table, reference, fraction)
    if fmt == "json":
        return _json_report(per_class, fairness, which)
    if fmt == "csv":
        parts = []
        if which in ("both", "per-class"):
            parts.append(per_class.drop(columns="mIoU") if which == "both" else per_class)
        if which in ("both", "fairness"):
            parts.append(fairness)
        return to_csv(pd.concat(parts, axis=1))
    return _text_report(table, per_class, fairness, reference, fraction, fmt, which, split, digits)


def _text_report(table, per_class, fairness, reference, fraction, fmt, which, split, digits) -> str:
    k, n = int(fairness.loc[reference, "k"]), int(fairness.loc[reference, "n_classes"])
    per_class_title = f"Per-class IoU (%), classes sorted by {reference}"
    fairness_title = (
        f"Fairness across classes (%): sorted groups of k = {k} of {n} classes ranked by {reference}; "
        f"percentiles of each method's own IoUs"
    )
    blocks = []
    if which in ("both", "per-class"):
        parts = split_columns(per_class, 2) if split else [per_class]
        if fmt == "md":
            blocks.append(f"**{per_class_title}**\n\n" + "\n".join(render(p, "md", digits=digits) for p in parts))
        else:
            blocks += [render(p, "latex", digits=digits, caption=per_class_title if i == 0 else None) for i, p in enumerate(parts)]
    if which in ("both", "fairness"):
        layout = fairness_table(fairness, fraction, digits)
        if fmt == "md":
            blocks.append(f"**{fairness_title}**\n\n" + render(layout, "md"))
        else:
            blocks.append(render(layout, "latex", caption=fairness_title))
    return "\n".join(blocks)


def _json_report(per_class: pd.DataFrame, fairness: pd.DataFrame, which: str) -> str:
    """``{method: {key: value}}``: fairness keys (IoU-valued ones in percent), or per-class IoUs."""
    out = {}
    for method in fairness.index:
        entry = {}
        if which in ("both", "fairness"):
            for key in FAIRNESS_KEYS:
                value = fairness.loc[method, key]
                entry[key] = int(value) if key in ("n_classes", "k") else _json_float(value)
        if which == "per-class":
            entry.update({str(c): _json_float(per_class.loc[method, c]) for c in per_class.columns})
        out[str(method)] = entry
    return json.dumps(out, indent=1) + "\n"


def _json_float(value):
    value = float(value)
    return None if math.isnan(value) else value


__all__ = ["read_iou_tables", "resolve_reference", "metrics_report", "SCALES", "OUTPUT_FORMATS", "TABLES"]
