"""The one renderer: every table of every command, from a :class:`~fairseg_bench.results.summary.Summary`.

- Table 1: per-class IoU (%) of every method, classes sorted by the reference (or in the
  dataset's order), in two rows of classes as in the paper (``two_rows``), best value per class
  in bold; with several seeds ``mean ± std``; ``†`` where the paired bootstrap interval of the difference
  against the reference excludes 0.
- Table 1 Δ: the differences against the reference (percentage points).
- Table 2: every method against published rows, sorted by the first of them.
- Table 3: the fairness metrics (sorted bottom/top, percentile thresholds and means, worst, std,
  and the extras best, gap, CoV, Gini; CoV and Gini ×100 like every other column).

A :class:`Table` holds numbers plus marks and bold and renders itself as GitHub Markdown, LaTeX
(booktabs; every tabular scaled down to the line width when wider, so it needs ``graphicx``;
``table*`` for two-column papers), HTML and CSV. :func:`summary_json` and :func:`summary_csv` give
the numbers of a whole summary. Display names (``labels``) change the rows of Markdown, LaTeX and
HTML; CSV and JSON keep the method labels, so scripts see one name per method.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

from fairseg_bench.errors import UserError
from fairseg_bench.results import jsonable
from fairseg_bench.results.summary import (
    BOUNDARY_KEYS,
    FAIRNESS_COLUMNS,
    GROUP_KEYS,
    IMAGE_KEYS,
    MIOU,
    GroupSummary,
    Summary,
    group_column,
)

DAGGER = "†"
DASH = "–"
CLASS_ORDERS = ("reference", "dataset")
LATEX_ENVIRONMENTS = ("table", "table*")

__all__ = ["Part", "Table", "table1", "table1_delta", "table2", "table3", "table_image", "table_boundary",
           "group_tables", "summary_json", "summary_csv", "format_number", "latex_text", "markdown_table",
           "CLASS_ORDERS", "LATEX_ENVIRONMENTS"]


# --------------------------------------------------------------------------------- text
def format_number(value, digits: int = 2, na_rep: str = "") -> str:
    """A number with ``digits`` decimals, rounding half away from zero on its decimal form.

    64.595 gives 64.60, as a reader rounds (``f"{64.595:.2f}"`` gives 64.59); the value is first
    rounded to 9 decimals so float noise does not decide.

    Example:
        >>> format_number(64.595), format_number(float("nan"), na_rep="-")
        ('64.60', '-')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return na_rep
    value = float(value)
    if math.isnan(value):
        return na_rep
    if math.isinf(value):
        return str(value)
    quantum = Decimal(1).scaleb(-digits)
    return str(Decimal(repr(round(value, 9))).quantize(quantum, rounding=ROUND_HALF_UP))


_LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                   "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}
_LATEX_SYMBOLS = {DAGGER: r"$^{\dagger}$", "±": r"$\pm$", "Δ": r"$\Delta$", DASH: "--", "−": "$-$",
                  "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$"}


def latex_text(text) -> str:
    """Plain text for LaTeX: special characters escaped, ``$…$`` math kept as written.

    Example:
        >>> latex_text("TCE $t=1$ 25% a_b")
        'TCE $t=1$ 25\\\\% a\\\\_b'
    """
    text = str(text)
    pieces = re.split(r"(\$[^$]+\$)", text) if text.count("$") % 2 == 0 else [text]
    out = []
    for piece in pieces:
        if len(piece) > 1 and piece.startswith("$") and piece.endswith("$"):
            out.append(piece)
        else:
            escaped = "".join(_LATEX_SPECIALS.get(ch, ch) for ch in piece)
            out.append("".join(_LATEX_SYMBOLS.get(ch, ch) for ch in escaped))
    return "".join(out)


def _html(text) -> str:
    import html

    return html.escape(str(text))


def markdown_table(cells: pd.DataFrame, index_header: str = "") -> str:
    """A GitHub pipe table of ready-made cell strings; multi-level headers joined by spaces."""
    headers = [index_header] + [" ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c)
                                for c in cells.columns]
    esc = lambda t: str(t).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |",
             "|:---|" + "|".join("---:" for _ in cells.columns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in [name, *row]) + " |"
              for name, row in zip(cells.index, cells.itertuples(index=False))]
    return "\n".join(lines)


# -------------------------------------------------------------------------------- tables
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
    continued_header: str = "continued"  # the row header of the second and later parts
    decimals: int = 2
    labels: dict[str, str] = field(default_factory=dict)  # display names of the methods

    def _cell_text(self, value, signed: bool) -> str:
        if value is None or not math.isfinite(value):
            return DASH
        text = format_number(value, self.decimals)
        text = text[1:] if text.startswith("-") and Decimal(text) == 0 else text  # no "-0.00"
        return ("+" + text) if signed and not text.startswith("-") and Decimal(text) != 0 else text

    def cells(self, part: Part, *, pm: str = " ± ") -> pd.DataFrame:
        """Cell strings of a part (without bold): ``mean ± std`` and marks; rows by display name."""
        out = pd.DataFrame("", index=part.mean.index, columns=part.mean.columns, dtype=object)
        for r in range(part.mean.shape[0]):
            for c in range(part.mean.shape[1]):
                text = self._cell_text(part.mean.iat[r, c], part.signed)
                std = None if part.std is None else part.std.iat[r, c]
                if text != DASH and std is not None and math.isfinite(std):
                    text += pm + self._cell_text(std, False)
                mark = "" if part.marks is None else part.marks.iat[r, c]
                out.iat[r, c] = text + (mark if text != DASH else "")
        out.index = [self.labels.get(m, m) for m in out.index]
        return out

    def _bold(self, part: Part) -> np.ndarray:
        return np.zeros(part.mean.shape, bool) if part.bold is None else part.bold.to_numpy(dtype=bool)

    def to_markdown(self) -> str:
        """A heading, one pipe table per part, the notes."""
        blocks = [f"### {self.title}"]
        for i, part in enumerate(self.parts):
            cells = self.cells(part)
            cells = cells.where(~self._bold(part), "**" + cells.astype(str) + "**")
            blocks.append(markdown_table(cells, self._header(i)))
        blocks += self.notes
        return "\n\n".join(blocks) + "\n"

    def to_latex(self, environment: str = "table", label: str | None = None) -> str:
        """A float with one booktabs tabular per part, each scaled down to the line width if wider.

        Needs ``\\usepackage{booktabs,graphicx}``; ``environment="table*"`` spans both columns.
        """
        if environment not in LATEX_ENVIRONMENTS:
            raise UserError(f"unknown LaTeX environment {environment!r}; choose from {', '.join(LATEX_ENVIRONMENTS)}")
        tabulars = [_fit(self._tabular(part, self._header(i))) for i, part in enumerate(self.parts)]
        caption = latex_text(" ".join([self.title, *self.notes]))
        return (f"\\begin{{{environment}}}[t]\n\\centering\n\\footnotesize\n\\setlength{{\\tabcolsep}}{{3pt}}\n"
                f"\\caption{{{caption}}}\n\\label{{{label or 'tab:' + self.name}}}\n"
                + "\n\\par\\medskip\n".join(tabulars) + f"\n\\end{{{environment}}}\n")

    def _header(self, i: int) -> str:
        return self.row_header if i == 0 else self.continued_header

    def _tabular(self, part: Part, header: str) -> str:
        cells = self.cells(part, pm=" ± ")
        bold = self._bold(part)
        columns = list(cells.columns)
        lines = [f"\\begin{{tabular}}{{l{'r' * len(columns)}}}", "\\toprule"]
        if columns and isinstance(columns[0], tuple):
            lines += _group_header(columns)
            columns = [c[-1] for c in columns]
        lines.append(" & ".join([latex_text(header), *map(latex_text, columns)]) + " \\\\")
        lines.append("\\midrule")
        for r, (name, row) in enumerate(zip(cells.index, cells.itertuples(index=False))):
            texts = [latex_text(v) for v in row]
            texts = [f"\\textbf{{{t}}}" if bold[r, c] else t for c, t in enumerate(texts)]
            lines.append(" & ".join([latex_text(name), *texts]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines)

    def to_html(self) -> str:
        """HTML tables with the best values in bold and the notes under them."""
        html = [f"<h3 id='{self.name}'>{_html(self.title)}</h3>"]
        for i, part in enumerate(self.parts):
            cells = self.cells(part)
            bold = self._bold(part)
            columns = [" ".join(str(p) for p in c if str(p)) if isinstance(c, tuple) else str(c) for c in cells.columns]
            head = "".join(f"<th>{_html(c)}</th>" for c in [self._header(i), *columns])
            rows = []
            for r, (name, row) in enumerate(zip(cells.index, cells.itertuples(index=False))):
                tds = "".join(f"<td style='font-weight: bold'>{_html(v)}</td>" if bold[r, c] else f"<td>{_html(v)}</td>"
                              for c, v in enumerate(row))
                rows.append(f"<tr><th>{_html(name)}</th>{tds}</tr>")
            html.append(f"<table class=\"report-table\"><thead><tr>{head}</tr></thead>"
                        f"<tbody>{''.join(rows)}</tbody></table>")
        html += [f"<p class='note'>{_html(n)}</p>" for n in self.notes]
        return "\n".join(html)

    def to_csv(self) -> str:
        """The numbers behind the table, unrounded, one row per method (or per method and class)."""
        return self.csv.to_csv(float_format="%.6g", lineterminator="\n")


def _fit(tabular: str) -> str:
    """Scale a tabular down to the line width when it is wider; never up (graphicx)."""
    return "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n" + tabular + "}"


def _group_header(columns: list[tuple]) -> list[str]:
    """The upper header row of grouped columns: ``\\multicolumn`` spans and their rules."""
    cells, rules, start = [""], [], 2
    groups = [(g, sum(1 for _ in run)) for g, run in _runs([c[0] for c in columns])]
    for group, width in groups:
        cells.append(f"\\multicolumn{{{width}}}{{c}}{{{latex_text(group)}}}" if width > 1 else latex_text(group))
        if group:
            rules.append(f"\\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    return [" & ".join(cells) + " \\\\", " ".join(rules)] if rules else [" & ".join(cells) + " \\\\"]


def _runs(values: list):
    from itertools import groupby

    return groupby(values)


# ---------------------------------------------------------------------------- builders
def split_columns(columns: list, parts: int = 2) -> list[list]:
    """Column names in ``parts`` consecutive runs (the paper's two rows: 19 classes + mIoU -> 10, 10)."""
    size = math.ceil(len(columns) / max(parts, 1))
    return [columns[i:i + size] for i in range(0, len(columns), size)]


def best_mask(values: pd.DataFrame, decimals: int, higher: bool = True) -> pd.DataFrame:
    """True at the best value of each column as printed (ties all win, unless the whole column ties)."""
    rounded = values.round(decimals)
    best = rounded.max() if higher else rounded.min()
    return rounded.eq(best, axis=1) & rounded.notna() & (rounded.nunique() > 1)


def _columns(summary: Summary, class_order: str) -> list[str]:
    if class_order not in CLASS_ORDERS:
        raise UserError(f"unknown class order {class_order!r}; choose from {', '.join(CLASS_ORDERS)}")
    return (summary.order if class_order == "reference" else summary.classes) + [MIOU]


def _seed_note(summary: Summary) -> list[str]:
    if summary.n_seeds.max() <= 1:
        return []
    counts = ", ".join(f"{m}: {n}" for m, n in summary.n_seeds.items())
    return [f"Values are mean ± sample std over seeds ({counts})."]


def _dagger_note(summary: Summary) -> str:
    seeds = " and seeds" if (summary.n_seeds > 1).any() else ""
    return (f"{DAGGER}: the paired bootstrap {round(summary.confidence * 100)}% interval (over the evaluated "
            f"images{seeds}) of the difference against {summary.reference} excludes zero.")


def _marks(significant: pd.DataFrame) -> pd.DataFrame:
    return significant.replace({True: DAGGER, False: ""}).astype(object)


def table1(summary: Summary, *, decimals: int = 2, two_rows: bool = True, class_order: str = "reference",
           labels: dict | None = None) -> Table:
    """Per-class IoU (%) and mIoU, best value per column in bold."""
    columns = _columns(summary, class_order)
    marks = _marks(summary.significant[columns])
    parts = [Part(summary.iou[c], summary.iou_std[c], marks[c], best_mask(summary.iou[c], decimals))
             for c in split_columns(columns, 2 if two_rows else 1)]
    notes = _seed_note(summary) + ([_dagger_note(summary)] if marks.eq(DAGGER).any().any() else []) + summary.notes
    order = f"sorted by {summary.reference}" if class_order == "reference" else "in the dataset's order"
    return Table("table1", f"Table 1: per-class IoU (%), classes {order}.", parts, summary.iou[columns],
                 notes, decimals=decimals, labels=labels or {})


def table1_delta(summary: Summary, *, decimals: int = 2, two_rows: bool = True, class_order: str = "reference",
                 labels: dict | None = None) -> Table:
    """Differences (percentage points) against the reference, per class, with the † mark."""
    columns = _columns(summary, class_order)
    others = [m for m in summary.methods if m != summary.reference]
    delta = summary.delta.loc[others, columns]
    marks = _marks(summary.significant.loc[others, columns])
    parts = [Part(delta[c], marks=marks[c], signed=True) for c in split_columns(columns, 2 if two_rows else 1)]
    if summary.delta_low.loc[others].notna().any().any():
        notes = [_dagger_note(summary), "Differences of the seed means; their intervals are in the CSV."]
    else:
        notes = ["No intervals: the inputs carry no per-image statistics."]
    title = f"Table 1 Δ: IoU difference (percentage points) against {summary.reference}."
    return Table("table1_delta", title, parts, _long_frame(summary, columns), notes + summary.notes,
                 decimals=decimals, labels=labels or {})


def _long_frame(summary: Summary, columns: list[str]) -> pd.DataFrame:
    """One row per (method, class): mean, std, seeds, interval, difference and its interval."""
    b = summary.blocks["iou"]
    pieces = {"iou": b.mean, "iou_std": b.std, "iou_low": b.low, "iou_high": b.high, "delta": b.delta,
              "delta_low": b.delta_low, "delta_high": b.delta_high, "significant": b.significant}
    long = pd.concat({k: v[columns].stack(future_stack=True) for k, v in pieces.items()}, axis=1)
    long.index.names = ["method", "class"]
    long.insert(2, "seeds", long.index.get_level_values("method").map(summary.n_seeds))
    return long


def table2(summary: Summary, against: pd.DataFrame, *, decimals: int = 2, two_rows: bool = True,
           labels: dict | None = None) -> Table:
    """Every method against the rows of ``against`` (IoU % per class), sorted by its first row."""
    against = against[summary.classes].astype(float)
    first = against.iloc[0].to_numpy()
    order = [summary.classes[i] for i in np.argsort(np.where(np.isnan(first), np.inf, first), kind="stable")]
    columns = order + [MIOU]
    rows = against.assign(**{MIOU: against.mean(axis=1, skipna=True)})
    mean = pd.concat([rows[columns], summary.iou[columns]])
    std = pd.concat([pd.DataFrame(np.nan, index=rows.index, columns=columns), summary.iou_std[columns]])
    mean.index.name = std.index.name = "method"
    parts = [Part(mean[c], std[c], bold=best_mask(mean[c], decimals))
             for c in split_columns(columns, 2 if two_rows else 1)]
    return Table("table2", f"Table 2: per-class IoU (%), sorted by {against.index[0]}.", parts, mean,
                 _seed_note(summary), decimals=decimals, labels=labels or {})


def fairness_columns(fraction: float) -> list[tuple[tuple[str, str], str, bool | None]]:
    """Table 3's columns: ((group, name), key, higher is fairer or None when not bolded)."""
    pct, nth, top = f"{100 * fraction:g}%", f"{100 * fraction:g}th perc.", f"{100 * (1 - fraction):g}th perc."
    return [
        ((f"sorted {pct}", "bottom"), "sorted_bottom", True), ((f"sorted {pct}", "top"), "sorted_top", None),
        ((f"{nth} bottom", "threshold"), "pct_bottom_threshold", True),
        ((f"{nth} bottom", "mIoU"), "pct_bottom_mean", True),
        ((f"{top} top", "threshold"), "pct_top_threshold", None), ((f"{top} top", "mIoU"), "pct_top_mean", None),
        (("overall", "worst"), "worst", True), (("overall", "std."), "std", False), (("overall", "mIoU"), "miou", True),
        (("extra", "best"), "best", None), (("extra", "gap"), "gap", False), (("extra", "CoV"), "cov", False),
        (("extra", "Gini"), "gini", False),
    ]


def table3(summary: Summary, *, decimals: int = 2, labels: dict | None = None) -> Table:
    """Fairness metrics (%; CoV and Gini ×100), the fairest value per column in bold."""
    spec = fairness_columns(summary.fraction)
    keys = [key for _, key, _ in spec]
    header = pd.MultiIndex.from_tuples([col for col, _, _ in spec])
    rename = lambda f: f[keys].set_axis(header, axis=1)  # noqa: E731
    mean, std = rename(summary.fairness), rename(summary.fairness_std)
    bold = pd.DataFrame(False, index=mean.index, columns=header)
    for col, _, higher in spec:
        if higher is not None:
            bold[col] = best_mask(mean[[col]], decimals, higher)[col]
    sig = _marks(rename(summary.fairness_significant))
    sig.loc[summary.reference] = ""
    seed_mean = " (seed mean)" if summary.n_seeds.max() > 1 else ""
    notes = [f"Sorted bottom/top: the mean IoU over the {summary.k} of {len(summary.classes)} classes that "
             f"{summary.reference}{seed_mean} does worst/best on. Percentile: the model's own "
             f"{100 * summary.fraction:g}th/{100 * (1 - summary.fraction):g}th percentile IoU and the mean of the IoUs "
             "at or beyond it. CoV and Gini ×100. Bold: the fairest value per column."]
    notes += ([_dagger_note(summary)] if sig.eq(DAGGER).any().any() else []) + _seed_note(summary) + summary.notes
    csv = summary.fairness.copy()
    for name in ("std", "low", "high"):
        csv = csv.join(getattr(summary, f"fairness_{name}").add_suffix(f"_{name}"))
    blocks = [[c for c in header if c[0] != "extra"], [c for c in header if c[0] == "extra"]]
    parts = [Part(mean[c], std[c], sig[c], bold[c]) for c in blocks]
    return Table("table3", "Table 3: fairness across classes (%).", parts, csv, notes, decimals=decimals,
                 labels=labels or {})


IMAGE_COLUMNS = [("mIoU^I", "miou_image"), ("worst 5%", "miou_image_worst_5"), ("worst 10%", "miou_image_worst_10"),
                 ("mIoU^C", "miou_class")]


def table_image(summary: Summary, *, decimals: int = 2, labels: dict | None = None) -> Table:
    """Fairness across images (%): mIoU^I, the mean of its worst 5/10 % of images, mIoU^C; best in bold."""
    block = summary.blocks["image"]
    keys, names = [k for _, k in IMAGE_COLUMNS], [n for n, _ in IMAGE_COLUMNS]
    rename = lambda f: f[keys].set_axis(names, axis=1)  # noqa: E731
    mean = rename(block.mean)
    bold = best_mask(mean, decimals, True)
    sig = _marks(rename(block.significant))
    sig.loc[summary.reference] = ""
    notes = ["Per image, the mean IoU over the classes in its ground truth (mIoU_i); mIoU^I: their mean over "
             "the images; worst q%: the mean over the q% of images with the lowest mIoU_i; mIoU^C: per class "
             "the mean IoU over the images containing it, averaged over the classes (Wang et al., NeurIPS 2023; "
             "docs/definitions.md). A dash: no per-image statistics. Bold: the best value per column."]
    notes += ([_dagger_note(summary)] if sig.eq(DAGGER).any().any() else []) + _seed_note(summary)
    csv = block.mean[keys].copy()
    for name in ("std", "low", "high"):
        csv = csv.join(getattr(block, name)[keys].add_suffix(f"_{name}"))
    return Table("table_image", "Fairness across images (%).", [Part(mean, rename(block.std), sig, bold)], csv, notes,
                 decimals=decimals, labels=labels or {})


def _block_csv(block, keys: list[str]) -> pd.DataFrame:
    """The block's means of ``keys`` with their std and interval columns."""
    csv = block.mean[keys].copy()
    for name in ("std", "low", "high"):
        csv = csv.join(getattr(block, name)[keys].add_suffix(f"_{name}"))
    return csv


def table_boundary(summary: Summary, *, decimals: int = 2, class_order: str = "reference",
                   labels: dict | None = None) -> Table:
    """Boundary IoU (%) per class, its mean, and min(IoU, Boundary IoU) averaged over classes; best in bold."""
    block = summary.blocks["boundary"]
    classes = _columns(summary, class_order)[:-1]
    names = {"biou": "mBIoU", "min_iou_biou": "min(IoU, BIoU)"}
    keys = classes + list(BOUNDARY_KEYS)
    rename = lambda f: f[keys].rename(columns=names)  # noqa: E731
    mean = rename(block.mean)
    sig = _marks(rename(block.significant))
    sig.loc[summary.reference] = ""
    parts = [Part(mean[c], rename(block.std)[c], sig[c], best_mask(mean[c], decimals))
             for c in split_columns(list(mean.columns), 2)]
    notes = ["Boundary IoU (Cheng et al., CVPR 2021): per class, the IoU of the ground-truth and predicted pixels "
             "within 2 % of the image diagonal of the class's contour, counts summed over the images; mBIoU: its "
             "mean over classes; min(IoU, BIoU): per class the lower of the two, averaged over classes "
             "(docs/definitions.md). Bold: the best value per column."]
    lacking = summary.lacking_boundary()
    if lacking:
        notes.append(f"A dash: no Boundary IoU counts in the records of {', '.join(lacking)} (written before "
                     "they were counted, or IoU tables); evaluate them again to fill it.")
    notes += ([_dagger_note(summary)] if sig.eq(DAGGER).any().any() else []) + _seed_note(summary)
    return Table("table_boundary", "Boundary IoU (%).", parts, _block_csv(block, keys), notes, decimals=decimals,
                 labels=labels or {})


GROUP_COLUMNS = [("worst group", "worst_group", True), ("gap", "group_gap", False),
                 ("worst cell", "worst_cell", True), ("ES (Harvard-FairSeg)", "es_harvard", True),
                 ("ES (FairMedFM)", "es_fairmedfm", True), ("(1−min)/(1−max)", "ratio_fairmedfm", False)]
GROUP_FAIRNESS = [("sorted bottom", "sorted_bottom", True), ("worst", "worst", True), ("std.", "std", False),
                  ("gap", "gap", False)]


def _bolded(mean: pd.DataFrame, spec, decimals: int) -> pd.DataFrame:
    bold = pd.DataFrame(False, index=mean.index, columns=mean.columns)
    for col, higher in spec:
        bold[col] = best_mask(mean[[col]], decimals, higher)[col]
    return bold


def _group_part(group: GroupSummary, columns: list[tuple], keys: list[str], higher: list[bool], decimals: int,
                reference: str) -> Part:
    block = group.block
    header = pd.MultiIndex.from_tuples(columns)
    rename = lambda f: f[keys].set_axis(header, axis=1)  # noqa: E731
    mean = rename(block.mean)
    sig = _marks(rename(block.significant))
    sig.loc[reference] = ""
    return Part(mean, rename(block.std), sig, _bolded(mean, list(zip(header, higher)), decimals))


def _group_notes(summary: Summary, group: GroupSummary) -> list[str]:
    sizes = ", ".join(f"{g} {n}" for g, n in zip(group.groups, group.sizes))
    cells = "; ".join(f"{m}: {c[1]} in {c[0]}" for m in summary.methods if (c := group.cell(m)) is not None)
    return [f"Groups by {group.attribute} from {group.source} (images: {sizes}). Per group: mIoU from the counts "
            "summed over its images; mIoU^I the mean of the per-image mIoU_i. Worst group and gap: of the groups' "
            "mIoU; worst cell: the lowest IoU of a (group, class)" + (f" ({cells})" if cells else "") + ". "
            "ES (Harvard-FairSeg, Tian et al. 2024) = P_all / (1 + Σ_g |P̄_g − P_all|); ES (FairMedFM) = "
            "P_all / (1 + std_g P̄_g); (1−min)/(1−max) (FairMedFM) of the P̄_g, 1 when the groups score alike; "
            "P̄_g, P_all: mean mIoU_i over a group's images and over all (docs/definitions.md). The ratio is "
            "unitless, the rest in %. Intervals: bootstrap over images drawn within each group"
            + (" and over seeds" if (summary.n_seeds > 1).any() else "") + "."]


def group_tables(summary: Summary, *, decimals: int = 2, labels: dict | None = None) -> list[Table]:
    """Per grouping attribute: the groups' mIoU and the across-group numbers; class fairness within each
    group; the per-class ES."""
    tables = []
    for attribute, group in summary.groups.items():
        block, safe = group.block, "".join(c if c.isalnum() else "_" for c in attribute)
        per_group = [((f"{g} (n={n})", name), group_column(k, g)) for g, n in zip(group.groups, group.sizes)
                     for name, k in (("mIoU", "miou"), ("mIoU^I", "miou_image"))]
        first = _group_part(group, [c for c, _ in per_group], [k for _, k in per_group], [True] * len(per_group),
                            decimals, summary.reference)
        across = _group_part(group, [("across groups", n) for n, _, _ in GROUP_COLUMNS],
                             [k for _, k, _ in GROUP_COLUMNS], [h for _, _, h in GROUP_COLUMNS], decimals,
                             summary.reference)
        keys = [k for _, k in per_group] + list(GROUP_KEYS)
        notes = _group_notes(summary, group) + _seed_note(summary)
        tables.append(Table(f"table_groups_{safe}", f"Fairness across groups of images: {attribute} (%).",
                            [first, across], _block_csv(block, keys), notes, decimals=decimals, labels=labels or {}))
        fair = [((g, name), group_column(k, g), h) for g in group.groups for name, k, h in GROUP_FAIRNESS]
        part = _group_part(group, [c for c, _, _ in fair], [k for _, k, _ in fair], [h for _, _, h in fair], decimals,
                           summary.reference)
        fair_keys = [group_column(k, g) for g in group.groups for k in FAIRNESS_COLUMNS[1:]]
        tables.append(Table(f"table_groups_{safe}_fairness", f"Fairness across classes within each {attribute} (%).",
                            [part], _block_csv(block, fair_keys),
                            [f"Table 3's metrics computed within each group, the classes ranked by "
                             f"{summary.reference}'s IoU in that group; all of them are in the CSV."],
                            decimals=decimals, labels=labels or {}))
        es = [group_column("es", None, c) for c in summary.classes]
        part = _group_part(group, [("", c) for c in summary.classes], es, [True] * len(es), decimals, summary.reference)
        tables.append(Table(f"table_groups_{safe}_es_class",
                            f"ES (Harvard-FairSeg) per class across {attribute} (%).",
                            [part], _block_csv(block, es),
                            ["Per class c: P_all / (1 + Σ_g |P̄_g − P_all|) with the per-image IoU of c as the score, "
                             "over the images whose ground truth holds c (groups without one left out)."],
                            decimals=decimals, labels=labels or {}))
    return tables


# --------------------------------------------------------------------------- numbers out
def summary_json(summary: Summary, which: str = "both") -> str:
    """Every number of the summary as JSON (NaN as null): per-class IoU and fairness (percent) per method."""
    methods = {}
    for m in summary.methods:
        entry: dict = {"seeds": int(summary.n_seeds[m])}
        if which in ("both", "per-class"):
            entry["iou"] = {c: summary.iou.loc[m, c] for c in summary.classes}
            entry["iou_std"] = {c: summary.iou_std.loc[m, c] for c in summary.classes}
            entry["miou"] = summary.iou.loc[m, MIOU]
        if which in ("both", "fairness"):
            entry["fairness"] = {k: summary.fairness.loc[m, k] for k in FAIRNESS_COLUMNS}
            entry["fairness_std"] = {k: summary.fairness_std.loc[m, k] for k in FAIRNESS_COLUMNS}
            if summary.has_image_level:
                image = summary.blocks["image"]
                entry["image_level"] = {k: image.mean.loc[m, k] for k in IMAGE_KEYS}
                entry["image_level_std"] = {k: image.std.loc[m, k] for k in IMAGE_KEYS}
            if summary.has_boundary:
                edge = summary.blocks["boundary"]
                entry["boundary_iou"] = {c: edge.mean.loc[m, c] for c in summary.classes}
                entry["boundary"] = {k: edge.mean.loc[m, k] for k in BOUNDARY_KEYS}
            if summary.groups:
                entry["groups"] = {a: {c: g.block.mean.loc[m, c] for c in g.block.mean.columns}
                                   for a, g in summary.groups.items()}
        methods[m] = entry
    out = {"unit": "percent (cov and gini x100)", "reference": summary.reference, "fraction": summary.fraction,
           "k": summary.k, "classes": summary.classes, "dropped_classes": summary.dropped, "notes": summary.notes,
           "methods": methods}
    return json.dumps(jsonable(out), indent=1) + "\n"


def summary_csv(summary: Summary, which: str = "both", class_order: str = "reference") -> str:
    """One row per method: per-class IoU (and mIoU), the fairness metrics (percent), the number of seeds."""
    parts = []
    if which in ("both", "per-class"):
        columns = _columns(summary, class_order)
        parts.append(summary.iou[columns if which == "per-class" else columns[:-1]])
    if which in ("both", "fairness"):
        parts.append(summary.fairness[list(FAIRNESS_COLUMNS)])
        if summary.has_image_level:
            parts.append(summary.blocks["image"].mean[list(IMAGE_KEYS)])
        if summary.has_boundary:
            parts.append(summary.blocks["boundary"].mean[list(BOUNDARY_KEYS)])
        for attribute, group in summary.groups.items():
            parts.append(group.block.mean[list(GROUP_KEYS)].add_prefix(f"{attribute}:"))
    parts.append(summary.n_seeds.rename("seeds").to_frame())
    frame = pd.concat(parts, axis=1)
    frame.index.name = "method"
    return frame.to_csv(float_format="%.6g", lineterminator="\n")


OUTPUT_FORMATS = ("md", "latex", "csv", "json")
TABLES = ("both", "per-class", "fairness")


def render_summary(summary: Summary, fmt: str = "md", *, which: str = "both", two_rows: bool = False, digits: int = 2,
                   labels: dict | None = None, class_order: str = "reference",
                   latex_environment: str = "table") -> str:
    """Table 1 and/or Table 3 of a summary in one format: what ``metrics``, ``run`` and ``evaluate`` print."""
    if fmt not in OUTPUT_FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    if which not in TABLES:
        raise UserError(f"unknown table {which!r}; choose from {', '.join(TABLES)}")
    if fmt == "json":
        return summary_json(summary, which)
    if fmt == "csv":
        return summary_csv(summary, which, class_order)
    tables = []
    if which in ("both", "per-class"):
        tables.append(table1(summary, decimals=digits, two_rows=two_rows, class_order=class_order, labels=labels))
    if which in ("both", "fairness"):
        tables.append(table3(summary, decimals=digits, labels=labels))
        if summary.has_image_level:
            tables.append(table_image(summary, decimals=digits, labels=labels))
        if summary.has_boundary:
            tables.append(table_boundary(summary, decimals=digits, class_order=class_order, labels=labels))
        tables += group_tables(summary, decimals=digits, labels=labels)
    if fmt == "md":
        return "\n".join(t.to_markdown() for t in tables)
    return "\n".join(t.to_latex(latex_environment) for t in tables)
