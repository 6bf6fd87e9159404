"""The paper's tables from a :class:`~fairseg_bench.report.summary.Summary`, in four formats.

- Table 1: per-class IoU (%) of every method, classes sorted by the reference, split in two rows
  of classes as in the paper, the best value per class in bold; with several seeds ``mean ± std``;
  ``†`` where the paired bootstrap interval of the difference against the reference excludes 0.
- Table 1 Δ: the same layout with the differences against the reference (percentage points).
- Table 2: every method against a chosen row (e.g. a published SoTA row), sorted by that row.
- Table 3: the fairness metrics (sorted bottom/top 25 %, percentile thresholds and means, worst,
  std, and the extras best, gap, CoV, Gini).

A :class:`Table` holds numbers (``mean``, ``std``) plus ``marks`` and ``bold`` and renders itself
to GitHub Markdown, LaTeX (booktabs, through pandas' ``Styler.to_latex``), HTML and CSV.
"""
from __future__ import annotations

import math
from decimal import Decimal
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairseg_bench.report.summary import MIOU, Summary
from fairseg_bench.tables import format_number, to_markdown
from fairseg_bench.tables import split_columns as shared_split

DAGGER = "†"
DASH = "–"

# Table 3 columns: (group, column) -> fairness key, and whether higher is fairer (None: not bolded).
FAIRNESS_COLUMNS = [
    (("sorted 25%", "bottom"), "sorted_bottom", True),
    (("sorted 25%", "top"), "sorted_top", None),
    (("25th perc. bottom", "threshold"), "pct_bottom_threshold", True),
    (("25th perc. bottom", "mIoU"), "pct_bottom_mean", True),
    (("25th perc. top", "threshold"), "pct_top_threshold", None),
    (("25th perc. top", "mIoU"), "pct_top_mean", None),
    (("overall", "worst"), "worst", True),
    (("overall", "std."), "std", False),
    (("overall", "mIoU"), "miou", True),
    (("extra", "best"), "best", None),
    (("extra", "gap"), "gap", False),
    (("extra", "CoV"), "cov", False),
    (("extra", "Gini"), "gini", False),
]


@dataclass
class Part:
    """One block of a table: rows are methods, columns are classes or metrics."""

    mean: pd.DataFrame
    std: pd.DataFrame | None = None
    marks: pd.DataFrame | None = None  # strings appended to a cell, e.g. "†"
    bold: pd.DataFrame | None = None
    signed: bool = False  # show a + on positive numbers (differences)


@dataclass
class Table:
    """A titled table of one or more parts, with notes under it and a numeric CSV frame."""

    name: str
    title: str
    parts: list[Part]
    csv: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    row_header: str = "Method"
    continued_header: str = "continued"
    decimals: int = 2

    # -- cells ---------------------------------------------------------------------------

    def _number(self, value: float, signed: bool) -> str:
        if value is None or not math.isfinite(value):
            return DASH
        text = format_number(value, self.decimals)
        text = text[1:] if text.startswith("-") and Decimal(text) == 0 else text  # no "-0.00"
        return ("+" + text) if signed and not text.startswith("-") and Decimal(text) != 0 else text

    def cells(self, part: Part, *, pm: str = " ± ", mark=lambda m: m, dash: str = DASH) -> pd.DataFrame:
        """Cell strings of a part (without bold): ``mean ± std`` and marks."""
        out = pd.DataFrame("", index=part.mean.index, columns=part.mean.columns, dtype=object)
        for r in range(part.mean.shape[0]):
            for c in range(part.mean.shape[1]):
                mean = part.mean.iat[r, c]
                text = self._number(mean, part.signed)
                if text == DASH:
                    out.iat[r, c] = dash
                    continue
                std = None if part.std is None else part.std.iat[r, c]
                if std is not None and math.isfinite(std):
                    text += pm + self._number(std, False)
                m = "" if part.marks is None else part.marks.iat[r, c]
                out.iat[r, c] = text + (mark(m) if m else "")
        return out

    def _bold(self, part: Part) -> pd.DataFrame:
        return part.bold if part.bold is not None else pd.DataFrame(False, index=part.mean.index, columns=part.mean.columns)

    def _header(self, i: int) -> str:
        return self.row_header if i == 0 else self.continued_header

    # -- formats -------------------------------------------------------------------------

    def to_markdown(self) -> str:
        """GitHub-flavoured Markdown: a heading, one pipe table per part, the notes."""
        blocks = [f"### {self.title}"]
        for i, part in enumerate(self.parts):
            cells = self.cells(part)
            bold = self._bold(part)
            cells = cells.where(~bold, "**" + cells.astype(str) + "**")
            blocks.append(markdown_table(cells, self._header(i)))
        blocks.extend(f"{note}" for note in self.notes)
        return "\n\n".join(blocks) + "\n"

    def to_latex(self, label: str | None = None) -> str:
        """A ``table`` environment with one booktabs ``tabular`` per part (pandas ``Styler.to_latex``)."""
        tabulars = []
        for i, part in enumerate(self.parts):
            cells = self.cells(part, pm=r" $\pm$ ", mark=lambda m: r"$^{\dagger}$" if m == DAGGER else m, dash="--")
            _label_corner(cells, self._header(i))
            styler = cells.style.format_index(escape="latex", axis=0).format_index(escape="latex", axis=1)
            bold = self._bold(part)
            styler = styler.apply(lambda _: np.where(bold.to_numpy(), "bfseries: ;", ""), axis=None)
            ncols = cells.shape[1]
            tabulars.append(styler.to_latex(
                hrules=True, column_format="l" + "r" * ncols, multicol_align="c", siunitx=False,
            ).strip())
        body = "\n\\medskip\n".join(tabulars)
        notes = " ".join(self.notes)
        caption = latex_escape(self.title) + (f" {latex_escape(notes)}" if notes else "")
        for text, tex in _LATEX_SYMBOLS.items():
            caption = caption.replace(text, tex)
        label = label or f"tab:{self.name}"
        return (
            "\\begin{table}[t]\n\\centering\n\\footnotesize\n\\setlength{\\tabcolsep}{3pt}\n"
            f"\\caption{{{caption}}}\n\\label{{{label}}}\n{body}\n\\end{{table}}\n"
        )

    def to_html(self) -> str:
        """HTML tables (pandas Styler) with the best values in bold and the notes under them."""
        html = []
        for i, part in enumerate(self.parts):
            cells = self.cells(part)
            _label_corner(cells, self._header(i))
            bold = self._bold(part)
            styler = cells.style.set_uuid(f"{self.name}-{i}")  # stable ids: the page regenerates byte for byte
            styler = styler.format(escape="html").format_index(escape="html", axis=0).format_index(escape="html", axis=1)
            styler = styler.apply(lambda _: np.where(bold.to_numpy(), "font-weight: bold;", ""), axis=None)
            html.append(styler.set_table_attributes('class="report-table"').to_html())
        notes = "".join(f"<p class='note'>{_html_escape(n)}</p>" for n in self.notes)
        return f"<h3 id='{self.name}'>{_html_escape(self.title)}</h3>\n" + "\n".join(html) + notes

    def to_csv(self) -> str:
        """The numbers behind the table, unrounded, one row per method (or per method and class)."""
        return self.csv.to_csv(float_format="%.6g")


def _label_corner(cells: pd.DataFrame, header: str) -> None:
    """Put the row header in the top-left corner, on the header row next to the column labels."""
    cells.index.name = None
    cells.columns.names = [None] * (cells.columns.nlevels - 1) + [header]


# --- minimal format helpers ------------------------------------------------------------------

def markdown_table(cells: pd.DataFrame, index_header: str) -> str:
    """A GFM pipe table of ready-made cell strings, the row header in the top-left cell."""
    cells = cells.copy()
    cells.index.name = index_header
    return to_markdown(cells).rstrip("\n")


_LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                   "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


_LATEX_SYMBOLS = {DAGGER: r"$^{\dagger}$", "±": r"$\pm$", "Δ": r"$\Delta$", DASH: "--", "−": "$-$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _html_escape(text: str) -> str:
    import html

    return html.escape(str(text))


# --- the tables ------------------------------------------------------------------------------

def split_columns(columns: list, parts: int = 2) -> list[list]:
    """Column names of the paper's two rows (19 classes + mIoU -> 10 and 10)."""
    return [list(block.columns) for block in shared_split(pd.DataFrame(columns=columns), parts)]


def best_mask(values: pd.DataFrame, decimals: int, higher: bool = True) -> pd.DataFrame:
    """True at the best value of each column as printed (ties at the printed precision all win,
    unless the whole column ties)."""
    rounded = values.round(decimals)
    best = rounded.max() if higher else rounded.min()
    differs = rounded.nunique() > 1  # a column where every method prints the same has no best
    return rounded.eq(best, axis=1) & rounded.notna() & differs


def _seed_note(summary: Summary) -> str | None:
    seeds = summary.n_seeds
    if seeds.max() <= 1:
        return None
    counts = ", ".join(f"{m}: {n}" for m, n in seeds.items())
    return f"Values are mean ± sample std over seeds ({counts})."


def _dagger_note(summary: Summary) -> str:
    level = round(summary.confidence * 100)
    seeds = " and seeds" if (summary.n_seeds > 1).any() else ""
    return (f"{DAGGER}: the paired bootstrap {level}% interval (over validation images{seeds}) of the "
            f"difference against {summary.reference} excludes zero.")


def table1(summary: Summary, *, decimals: int = 2) -> Table:
    """Per-class IoU (%) sorted by the reference, split in two rows of classes, best in bold."""
    columns = summary.order + [MIOU]
    marks = summary.significant[columns].replace({True: DAGGER, False: ""})
    parts = [
        Part(mean=summary.iou[cols], std=summary.iou_std[cols], marks=marks[cols],
             bold=best_mask(summary.iou[cols], decimals))
        for cols in split_columns(columns)
    ]
    notes = [n for n in (_seed_note(summary), _dagger_note(summary) if marks.eq(DAGGER).any().any() else None) if n]
    title = f"Table 1: per-class IoU (%), sorted by {summary.reference}."
    return Table("table1", title, parts, csv=summary.iou[columns], notes=notes, decimals=decimals)


def table1_delta(summary: Summary, *, decimals: int = 2) -> Table:
    """Differences (percentage points) against the reference, per class, with the † mark."""
    columns = summary.order + [MIOU]
    others = [m for m in summary.methods if m != summary.reference]
    delta = summary.delta.loc[others, columns]
    marks = summary.significant.loc[others, columns].replace({True: DAGGER, False: ""})
    parts = [Part(mean=delta[cols], marks=marks[cols], signed=True) for cols in split_columns(columns)]
    long = _long_frame(summary, columns)
    if summary.delta_low.loc[others].notna().any().any():
        notes = [_dagger_note(summary), "Differences of the seed means; their intervals are in the CSV."]
    else:
        notes = ["No intervals: the inputs carry no per-image statistics."]
    title = f"Table 1 Δ: IoU difference (percentage points) against {summary.reference}."
    return Table("table1_delta", title, parts, csv=long, notes=notes, decimals=decimals)


def _long_frame(summary: Summary, columns: list[str]) -> pd.DataFrame:
    """One row per (method, class): mean, std, seeds, interval, difference and its interval."""
    pieces = {
        "iou": summary.iou, "iou_std": summary.iou_std, "iou_low": summary.iou_low, "iou_high": summary.iou_high,
        "delta": summary.delta, "delta_low": summary.delta_low, "delta_high": summary.delta_high,
        "significant": summary.significant,
    }
    long = pd.concat({k: v[columns].stack(future_stack=True) for k, v in pieces.items()}, axis=1)
    long.index.names = ["method", "class"]
    long.insert(2, "seeds", long.index.get_level_values("method").map(summary.n_seeds))
    return long


def table2(summary: Summary, against: pd.DataFrame, *, decimals: int = 2) -> Table:
    """Every method against the rows of ``against`` (IoU % per class), sorted by its first row.

    Args:
        summary: the report's numbers.
        against: rows indexed by label (e.g. a published SoTA row), columns the class names.
    """
    against = against[summary.classes].astype(float)
    first = against.iloc[0].to_numpy()
    key = np.where(np.isnan(first), np.inf, first)
    order = [summary.classes[i] for i in np.argsort(key, kind="stable")]
    columns = order + [MIOU]
    rows = against.copy()
    rows[MIOU] = against.mean(axis=1, skipna=True)
    mean = pd.concat([rows[columns], summary.iou[columns]])
    std = pd.concat([pd.DataFrame(np.nan, index=rows.index, columns=columns), summary.iou_std[columns]])
    mean.index.name = std.index.name = "method"
    parts = [Part(mean=mean[cols], std=std[cols], bold=best_mask(mean[cols], decimals)) for cols in split_columns(columns)]
    title = f"Table 2: per-class IoU (%), sorted by {against.index[0]}."
    notes = [n for n in (_seed_note(summary),) if n]
    return Table("table2", title, parts, csv=mean, notes=notes, decimals=decimals)


def table3(summary: Summary, *, decimals: int = 2) -> Table:
    """Fairness metrics (%, CoV and Gini as fractions), best fairness value per column in bold."""
    keys = [key for _, key, _ in FAIRNESS_COLUMNS]
    header = pd.MultiIndex.from_tuples([col for col, _, _ in FAIRNESS_COLUMNS])
    rename = lambda f: f[keys].set_axis(header, axis=1)  # noqa: E731
    mean, std = rename(summary.fairness), rename(summary.fairness_std)
    bold = pd.DataFrame(False, index=mean.index, columns=header)
    for col, key, higher in FAIRNESS_COLUMNS:
        if higher is not None:
            bold[col] = best_mask(mean[[col]], decimals, higher)[col]
    sig = rename(summary.fairness_significant).replace({True: DAGGER, False: ""})
    sig.loc[summary.reference] = ""
    notes = [
        f"Sorted bottom/top: the mean IoU over the {_k(summary)} classes that {summary.reference}"
        f"{' (seed mean)' if summary.n_seeds.max() > 1 else ''} does worst/best on. Percentile: the model's own 25th/75th percentile IoU and "
        f"the mean of the IoUs at or beyond it. Bold: the fairest value per column.",
    ]
    if sig.eq(DAGGER).any().any():
        notes.append(_dagger_note(summary))
    note = _seed_note(summary)
    if note:
        notes.append(note)
    csv = summary.fairness.copy()
    for name, frame in (("std", summary.fairness_std), ("low", summary.fairness_low), ("high", summary.fairness_high)):
        csv = csv.join(frame.add_suffix(f"_{name}"))
    title = "Table 3: fairness across classes."
    # The paper's columns first, the extras in a second block (one row of 13 columns is too wide).
    blocks = [[c for c in header if c[0] != "extra"], [c for c in header if c[0] == "extra"]]
    parts = [Part(mean=mean[cols], std=std[cols], marks=sig[cols], bold=bold[cols]) for cols in blocks]
    return Table("table3", title, parts, csv=csv, notes=notes, decimals=decimals)


def _k(summary: Summary, fraction: float = 0.25) -> int:
    return math.ceil(fraction * len(summary.classes))
