"""What a report reads: run folders (``metrics.json``) and wide per-class IoU CSVs, as one collection.

A wide CSV has a ``method`` column, optionally a ``seed`` column, one column per class with the
IoU in percent, and optionally an ``mIoU`` column (ignored: the mean is recomputed over the
classes). Rows from CSVs and runs from folders become the same :class:`MethodRun`, so every table
and figure has one code path; only what a CSV cannot carry (per-image statistics, training
history, samples) is missing for its rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fairseg_bench.errors import UserError
from fairseg_bench.results import RunResult, find_runs, read_metrics

MIOU_COLUMNS = ("miou", "mean iou")


@dataclass(frozen=True)
class MethodRun:
    """One trained model's result: a run folder or one row of a wide CSV."""

    method: str
    seed: int | None
    iou: np.ndarray  # (K,) fractions, NaN for a class absent from ground truth and prediction
    source: Path
    metrics: dict = field(default_factory=dict)  # the full metrics.json ({} for a CSV row)

    @property
    def folder(self) -> Path | None:
        """The run folder, or None for a CSV row."""
        return self.source.parent if self.metrics else None

    def per_image(self) -> dict[str, np.ndarray] | None:
        """``{"tp", "fp", "fn"}`` arrays ``(N_images, K)``, or None when not stored."""
        stats = self.metrics.get("per_image")
        return None if not stats else {k: np.asarray(v, dtype=np.int64) for k, v in stats.items()}

    @property
    def confusion_matrix(self) -> np.ndarray | None:
        cm = self.metrics.get("confusion_matrix")
        return None if cm is None else np.asarray(cm, dtype=np.int64)


@dataclass(frozen=True)
class ReportInput:
    """All runs of one report: one class list, several methods, one or more seeds each."""

    classes: list[str]
    runs: list[MethodRun]

    @property
    def methods(self) -> list[str]:
        """Method labels in order of first appearance."""
        return list(dict.fromkeys(r.method for r in self.runs))

    def runs_of(self, method: str) -> list[MethodRun]:
        """The runs of one method, by seed."""
        return sorted((r for r in self.runs if r.method == method), key=lambda r: (r.seed is None, r.seed or 0))

    def iou_matrix(self, method: str) -> np.ndarray:
        """Per-class IoU of every seed of ``method`` in percent. Shape ``(S, K)``."""
        return np.stack([r.iou for r in self.runs_of(method)]) * 100.0

    @property
    def metrics_runs(self) -> list[RunResult]:
        """The runs read from folders, as the results schema's ``RunResult``."""
        return [RunResult(r.source, r.metrics) for r in self.runs if r.metrics]

    def resolve(self, label: str | None, *, what: str = "reference") -> str:
        """The method named ``label`` (exact, else case-insensitive); default ``mcce`` or the first."""
        methods = self.methods
        if label is None:
            lowered = [m.lower() for m in methods]
            return methods[lowered.index("mcce")] if "mcce" in lowered else methods[0]
        if label in methods:
            return label
        matches = [m for m in methods if m.lower() == label.lower()]
        if len(matches) == 1:
            return matches[0]
        raise UserError(f"unknown {what} {label!r}; the methods are: {', '.join(methods)}")


def read_iou_csv(path: str | Path) -> tuple[list[str], list[MethodRun]]:
    """Read a wide per-class IoU CSV (IoU in percent) into runs."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    if "method" not in frame.columns:
        raise UserError(f"{path}: a per-class IoU CSV needs a 'method' column")
    classes = [c for c in frame.columns if c not in ("method", "seed") and c.strip().lower() not in MIOU_COLUMNS]
    if not classes or frame.empty:
        raise UserError(f"{path}: no class columns or no rows")
    values = frame[classes].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame[classes].notna()
    if bad.any().any():
        column = bad.any().idxmax()
        raise UserError(f"{path}: column {column!r} has a value that is not a number")
    if ((values < 0) | (values > 100)).any().any():
        raise UserError(f"{path}: IoU values must be percentages in [0, 100]")
    seeds = frame["seed"].astype(int).tolist() if "seed" in frame.columns else [None] * len(frame)
    runs = [
        MethodRun(method=str(m), seed=s, iou=row / 100.0, source=path)
        for m, s, row in zip(frame["method"], seeds, values.to_numpy(np.float64))
    ]
    return list(classes), runs


def _run_from_result(result: RunResult, label: str) -> MethodRun:
    return MethodRun(method=label, seed=result.seed, iou=result.iou, source=result.path, metrics=result.data)


def _check_classes(classes: list[str], other: list[str], source: Path, first: Path) -> list[str]:
    """The class list of ``other`` must be that of the first input (CSV columns may be reordered)."""
    if other == classes:
        return other
    if sorted(other) == sorted(classes) and str(source).endswith(".csv"):
        return other
    raise UserError(f"{source} has a different class set from {first}; compare runs of one dataset")


def load_inputs(paths) -> ReportInput:
    """Load run folders, ``metrics.json`` files and wide IoU CSVs into one :class:`ReportInput`."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise UserError("no runs given: pass run folders, metrics.json files or per-class IoU CSVs")
    results: list[RunResult] = []
    csv_rows: list[tuple[list[str], MethodRun]] = []
    for p in paths:
        if p.is_file() and p.suffix.lower() == ".csv":
            names, rows = read_iou_csv(p)
            csv_rows.extend((names, r) for r in rows)
        else:
            found = find_runs(p)
            if not found:
                raise UserError(f"no metrics.json found under {p}")
            results.extend(read_metrics(f) for f in found)
    runs: list[MethodRun] = []
    classes: list[str] | None = None
    first: Path | None = None
    experiments = list(dict.fromkeys(r.experiment for r in results))
    for result in results:
        classes, first = classes or result.classes, first or result.path
        _check_classes(classes, result.classes, result.path, first)
        # Runs of several experiments keep apart: same label, different settings.
        label = result.method if len(experiments) <= 1 else f"{result.experiment}/{result.method}"
        runs.append(_run_from_result(result, label))
    for names, row in csv_rows:
        classes, first = classes or names, first or row.source
        _check_classes(classes, names, row.source, first)
        order = [names.index(c) for c in classes]
        runs.append(MethodRun(row.method, row.seed, row.iou[order], row.source))
    _check_unique(runs)
    return ReportInput(list(classes), runs)


def _check_unique(runs: list[MethodRun]) -> None:
    """Two results for the same (method, seed) would be averaged as if independent: refuse."""
    seen: dict[tuple, Path] = {}
    for r in runs:
        key = (r.method, r.seed)
        if key in seen and r.seed is not None:
            raise UserError(f"{r.source}: a second result for {r.method} seed {r.seed} (also in {seen[key]})")
        if key in seen and r.seed is None:
            raise UserError(f"{r.source}: method {r.method!r} appears twice; give a 'seed' column to mark seeds")
        seen[key] = r.source
