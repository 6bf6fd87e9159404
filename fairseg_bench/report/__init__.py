"""Reports: the paper's tables and figures from results only (no torch, no recomputation of IoU).

``build_report(paths, reference=..., out=...)`` reads run folders (``metrics.json``,
``history.csv``, ``samples.npz``) and/or wide per-class IoU CSVs (IoU in percent) and writes:

- ``table1``, ``table1_delta``, ``table2`` (with ``sota_csv``) and ``table3`` as ``.tex`` (booktabs)
  and ``.csv``; all tables and the figures in one GitHub Markdown file ``report.md``;
- ``figures/<name>.png`` and ``.pdf``;
- ``index.html``, one self-contained page (figures embedded, run configs).
"""
from __future__ import annotations

from pathlib import Path

from fairseg_bench.errors import UserError

FORMATS = ("md", "latex", "csv", "html")

__all__ = ["FORMATS", "build_report", "parse_formats"]


def parse_formats(formats) -> tuple[str, ...]:
    """A comma-separated string or a sequence of format names, checked against :data:`FORMATS`."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = tuple(dict.fromkeys(f.lower() for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown report format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return formats


def _sota_rows(path, classes: list[str]):
    """The rows of a published per-class IoU CSV (percent), as a frame indexed by label."""
    import pandas as pd

    from fairseg_bench.report.inputs import read_iou_csv

    names, rows = read_iou_csv(path)
    if sorted(names) != sorted(classes):
        raise UserError(f"{path} has a different class set from the runs; compare results of one dataset")
    frame = pd.DataFrame([r.iou * 100.0 for r in rows], index=[r.method for r in rows], columns=names)
    return frame[classes]


def _figures(data, summary, confusion_method: str | None) -> list[tuple[str, str, object]]:
    """(name, caption, Figure) of every figure the inputs allow."""
    from fairseg_bench.report import figures as fg

    reference = summary.reference
    confusion_method = data.resolve(confusion_method or reference, what="confusion-matrix method")
    candidates = [
        ("per_class_iou", f"Per-class IoU of every method, classes in the order of {reference}.", fg.per_class_iou(summary)),
        ("delta_iou", f"IoU difference per class against {reference}.", fg.delta_iou(summary)),
        ("fairness", "Fairness metrics with their intervals.", fg.fairness(summary)),
        ("sampler_weights", "Stochastic TCE: class-draw weights during training and the classes drawn.",
         fg.sampler_weights(data, summary.methods)),
        ("training_curves", "Training loss and learning rate.", fg.training_curves(data, summary)),
        ("qualitative", "Validation samples where the methods differ most: image, ground truth, each method.",
         fg.qualitative(data, summary)),
        (f"confusion_{_safe(confusion_method)}", f"Row-normalised confusion matrix of {confusion_method}.",
         fg.confusion(data, confusion_method)),
    ]
    return [c for c in candidates if c[2] is not None]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in name)


def _markdown(tables, figures, figure_dir: str) -> str:
    blocks = ["# fairseg-bench report", *[t.to_markdown() for t in tables]]
    if figures:
        blocks.append("## Figures")
        blocks += [f"![{caption}]({figure_dir}/{name}.png)\n\n{caption}" for name, caption, _ in figures]
    return "\n\n".join(blocks) + "\n"


def build_report(runs_paths, *, reference: str | None = None, out, formats=FORMATS, sota_csv=None,
                 baseline=None, confusion_method: str | None = None, n_boot: int = 1000,
                 seed: int = 0, decimals: int = 2, figures: bool = True) -> list[Path]:
    """Write the report of the runs/CSVs at ``runs_paths`` under ``out``; returns the written paths.

    Args:
        runs_paths: run folders, experiment folders, ``metrics.json`` files or wide IoU CSVs.
        reference: the method label to sort classes by and compare against (default ``mcce``
            if present, else the first method).
        out: output folder.
        formats: any of ``md``, ``latex``, ``csv``, ``html`` (a list or a comma-separated string).
        sota_csv: a wide CSV of published per-class IoUs (percent); its first row is Table 2's
            reference row.
        baseline: if given, also write the CI gate's baseline file there (``check.write_baseline``).
        confusion_method: the method whose confusion matrix is drawn (default: the reference).
        n_boot: bootstrap replicates over validation images.
        seed: seed of the bootstrap draws (reports are reproducible).
        decimals: digits after the point in the tables.
        figures: draw the figures (PNG, PDF, and on the page); False for tables only.
    """
    from fairseg_bench.report import tables as tb
    from fairseg_bench.report.figures import png_bytes, save_figure
    from fairseg_bench.report.html import write_html
    from fairseg_bench.report.inputs import load_inputs
    from fairseg_bench.report.summary import summarize
    from fairseg_bench.results import write_atomic

    formats = parse_formats(formats)
    if isinstance(runs_paths, (str, Path)):
        runs_paths = [runs_paths]
    data = load_inputs(runs_paths)
    summary = summarize(data, reference, n_boot=n_boot, seed=seed)
    tables = [tb.table1(summary, decimals=decimals)]
    if len(summary.methods) > 1:
        tables.append(tb.table1_delta(summary, decimals=decimals))
    if sota_csv is not None:
        tables.append(tb.table2(summary, _sota_rows(sota_csv, summary.classes), decimals=decimals))
    tables.append(tb.table3(summary, decimals=decimals))

    out = Path(out)
    written: list[Path] = []
    rendered = []  # (name, caption, PNG bytes): each figure is drawn once for the files and the page
    for name, caption, fig in _figures(data, summary, confusion_method) if figures else []:
        png = png_bytes(fig)
        written += save_figure(fig, out / "figures", name, png)
        rendered.append((name, caption, png))
    for table in tables:
        if "latex" in formats:
            write_atomic(out / f"{table.name}.tex", table.to_latex())
            written.append(out / f"{table.name}.tex")
        if "csv" in formats:
            write_atomic(out / f"{table.name}.csv", table.to_csv())
            written.append(out / f"{table.name}.csv")
    if "md" in formats:
        write_atomic(out / "report.md", _markdown(tables, rendered, "figures"))
        written.append(out / "report.md")
    if "html" in formats:
        written.append(write_html(out / "index.html", data, summary, tables, rendered))
    if baseline is not None:
        written.append(_write_baseline(baseline, data))
    return written


def _write_baseline(path, data) -> Path:
    """The CI gate's baseline of the runs read from folders."""
    from fairseg_bench.check import write_baseline

    runs = data.metrics_runs
    if not runs:
        raise UserError("--baseline needs run folders (metrics.json), not per-class IoU CSVs")
    write_baseline(path, runs)
    return Path(path)
