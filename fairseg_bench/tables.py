"""Tables of per-class IoU and fairness (the paper's Tables 1 and 3), and their text formats.

Two small layers, both torch-free and usable by any report:

- builders, DataFrame in → DataFrame out: ``per_class_table`` (classes sorted by a reference
  method, mIoU last), ``split_columns`` (the paper's two-row layout), ``fairness_frame`` (numbers,
  one column per ``fairness_metrics`` key) and ``fairness_table`` (the paper's Table 3 layout,
  formatted cells);
- formats, DataFrame in → text out: ``to_markdown`` (GitHub-flavoured), ``to_latex`` (booktabs,
  via pandas' Styler), ``to_csv``, and ``render`` to pick one by name.

Input frames hold IoUs in percent (methods as the index, classes as columns); NaN is a class
with no ground truth and no prediction.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from fairseg_bench.core.fairness import FAIRNESS_KEYS, fairness_metrics

__all__ = [
    "per_class_table",
    "split_columns",
    "fairness_frame",
    "fairness_table",
    "format_number",
    "to_markdown",
    "to_latex",
    "to_csv",
    "render",
    "FORMATS",
]

FORMATS = ("md", "latex", "csv")


# ------------------------------------------------------------------------------- builders
def reference_order(reference: pd.Series) -> list:
    """Class names in ascending order of the reference IoU; ties keep column order; NaN last."""
    values = reference.to_numpy(dtype=np.float64)
    order = np.argsort(values, kind="stable")  # numpy sorts NaN last
    return [reference.index[i] for i in order]


def per_class_table(iou: pd.DataFrame, reference: str | None = None, miou: bool = True) -> pd.DataFrame:
    """The Table 1 layout: classes sorted by the reference method's IoU, then mIoU.

    Args:
        iou: methods × classes.
        reference: the method (row) whose IoUs order the classes; None keeps the column order.
        miou: append an ``mIoU`` column (mean over the classes with a finite IoU).
    """
    table = iou if reference is None else iou[reference_order(iou.loc[reference])]
    if miou:
        table = table.assign(mIoU=iou.mean(axis=1, skipna=True))
    return table


def split_columns(table: pd.DataFrame, parts: int = 2) -> list[pd.DataFrame]:
    """Split a wide table into ``parts`` tables of consecutive columns (the paper's two rows)."""
    size = math.ceil(table.shape[1] / max(parts, 1))
    return [table.iloc[:, i : i + size] for i in range(0, table.shape[1], size)]


def fairness_frame(iou: pd.DataFrame, reference: str | None = None, fraction: float = 0.25) -> pd.DataFrame:
    """Every fairness metric of every method: methods × ``FAIRNESS_KEYS``, in the input's scale.

    Args:
        iou: methods × classes.
        reference: the method that ranks the classes for the sorted groups (None: each method
            ranks by itself).
        fraction: f of the fairness metrics.
    """
    ref = None if reference is None else iou.loc[reference].to_numpy(dtype=np.float64)
    values = fairness_metrics(iou.to_numpy(dtype=np.float64), ref, fraction)
    frame = pd.DataFrame({key: values[key] for key in FAIRNESS_KEYS}, index=iou.index)
    return frame.astype({"n_classes": int, "k": int})


def format_number(value, digits: int = 2, na_rep: str = "") -> str:
    """A number with ``digits`` decimals, rounding half away from zero on its decimal form
    (64.595 -> 64.60, as a reader rounds, where ``f"{64.595:.2f}"`` gives 64.59); the value is
    first rounded to 9 decimals so float noise (67.63499999999999 for 67.635) does not decide."""
    if value is None:
        return na_rep
    value = float(value)
    if math.isnan(value):
        return na_rep
    if math.isinf(value):
        return str(value)
    quantum = Decimal(1).scaleb(-digits)
    return str(Decimal(repr(round(value, 9))).quantize(quantum, rounding=ROUND_HALF_UP))


def _fmt(value, digits: int) -> str:
    return format_number(value, digits, na_rep="–")


def fairness_table(frame: pd.DataFrame, fraction: float = 0.25, digits: int = 2, extras: bool = True) -> pd.DataFrame:
    """The Table 3 layout with formatted cells: mIoU, sorted bottom/top, (percentile threshold,
    mean) pairs, worst, std, then (``extras``) best, gap, CoV and Gini.

    Args:
        frame: the output of ``fairness_frame`` (percent).
        fraction: f, for the column titles.
        digits: decimals of IoU-valued cells (CoV and Gini get one more).
    """
    pct = f"{100 * fraction:g}%"
    nth = f"{100 * fraction:g}th perc."

    def pair(threshold, mean):
        return [f"({_fmt(t, digits)}, {_fmt(m, digits)})" for t, m in zip(frame[threshold], frame[mean])]

    columns = {
        ("", "mIoU"): [_fmt(v, digits) for v in frame["miou"]],
        (f"sorted {pct}", "bottom"): [_fmt(v, digits) for v in frame["sorted_bottom"]],
        (f"sorted {pct}", "top"): [_fmt(v, digits) for v in frame["sorted_top"]],
        (f"({nth}, mIoU)", "bottom"): pair("pct_bottom_threshold", "pct_bottom_mean"),
        (f"({nth}, mIoU)", "top"): pair("pct_top_threshold", "pct_top_mean"),
        ("overall", "worst"): [_fmt(v, digits) for v in frame["worst"]],
        ("overall", "std."): [_fmt(v, digits) for v in frame["std"]],
    }
    if extras:
        columns.update(
            {
                ("extras", "best"): [_fmt(v, digits) for v in frame["best"]],
                ("extras", "gap"): [_fmt(v, digits) for v in frame["gap"]],
                ("extras", "CoV"): [_fmt(v, digits + 1) for v in frame["cov"]],
                ("extras", "Gini"): [_fmt(v, digits + 1) for v in frame["gini"]],
            }
        )
    table = pd.DataFrame(columns, index=frame.index)
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


# -------------------------------------------------------------------------------- formats
def _header_text(column) -> str:
    if isinstance(column, tuple):
        return " ".join(str(part) for part in column if str(part)).strip()
    return str(column)


def _cell_text(value, digits: int, na_rep: str) -> str:
    if isinstance(value, (float, np.floating)) or value is None:
        return format_number(value, digits, na_rep)
    return str(value)


def to_markdown(table: pd.DataFrame, digits: int = 2, index: bool = True, na_rep: str = "–") -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned); multi-level headers joined."""
    headers = [_header_text(c) for c in table.columns]
    numeric = [True] * len(headers)  # value columns right-aligned, the index left-aligned
    rows = [[_cell_text(v, digits, na_rep) for v in row] for row in table.itertuples(index=False)]
    if index:
        headers = [str(table.index.name or "")] + headers
        numeric = [False] + numeric
        rows = [[str(name)] + row for name, row in zip(table.index, rows)]

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(escape(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---:" if num else ":---" for num in numeric) + "|")
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_latex(
    table: pd.DataFrame,
    digits: int = 2,
    caption: str | None = None,
    label: str | None = None,
    na_rep: str = "--",
) -> str:
    """A booktabs LaTeX table (pandas' Styler; needs ``\\usepackage{booktabs}``)."""
    styler = table.style.format(precision=digits, na_rep=na_rep, escape="latex")
    styler = styler.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
    return styler.to_latex(
        hrules=True,
        caption=caption,
        label=label,
        position_float="centering" if caption or label else None,
        multicol_align="c",
        column_format="l" + "r" * table.shape[1],
    )


def to_csv(table: pd.DataFrame, digits: int | None = 6, index: bool = True) -> str:
    """CSV text; NaN as an empty cell; floats rounded to ``digits`` (None: full precision)."""
    if digits is not None:
        table = table.round(digits)
    return table.to_csv(index=index, lineterminator="\n")


def render(table: pd.DataFrame, fmt: str, **options) -> str:
    """The table as ``md``, ``latex`` or ``csv`` text."""
    if fmt == "md":
        return to_markdown(table, **options)
    if fmt == "latex":
        return to_latex(table, **options)
    if fmt == "csv":
        return to_csv(table, **options)
    raise ValueError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")

