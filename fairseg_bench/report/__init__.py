"""Reports: the paper's tables and figures from results only (no torch, no recomputation elsewhere).

``build_report(paths, reference=..., out=...)`` reads run folders and per-class IoU tables through
the one reader, computes the one summary, and writes with the one renderer:

- ``table1``, ``table1_delta``, ``table2`` (with ``sota_csv``) and ``table3`` as ``.tex`` and
  ``.csv``; all tables and the figures in one GitHub Markdown file ``report.md``;
- ``figures/<name>.png`` and ``.pdf``;
- ``index.html``, one self-contained page (figures embedded, run configs).

The report is built in a temporary folder beside ``out`` and swapped in at the end: an
interrupted build leaves the previous report whole, and files of an earlier report never linger.
Files in ``out`` that a report does not write (a ``make.py``, input CSVs) are carried over.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from fnmatch import fnmatch
from pathlib import Path

from fairseg_bench.errors import UserError

FORMATS = ("md", "latex", "csv", "html")
#: what a report writes at the top of its folder; everything else there is kept
REPORT_PATTERNS = ("report.md", "index.html", "table*.tex", "table*.csv", "figures")

__all__ = ["FORMATS", "build_report", "parse_formats", "parse_labels"]


def parse_formats(formats) -> tuple[str, ...]:
    """A comma-separated string or a sequence of format names, checked against :data:`FORMATS`."""
    if isinstance(formats, str):
        formats = [f.strip() for f in formats.split(",") if f.strip()]
    formats = tuple(dict.fromkeys(f.lower() for f in formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(f"unknown report format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    return formats


def parse_labels(values) -> dict[str, str]:
    """Display names from ``mcce=MCCE,tce-t1=TCE $t=1$`` items or YAML files mapping label -> name."""
    labels: dict[str, str] = {}
    for value in values or ():
        if value.endswith((".yaml", ".yml")) or Path(value).is_file():
            import yaml

            try:
                mapping = yaml.safe_load(Path(value).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise UserError(f"{value}: not a readable YAML map of display names ({exc})") from None
            if not isinstance(mapping, dict):
                raise UserError(f"{value}: expected a YAML map 'method: display name'")
            labels.update({str(k): str(v) for k, v in mapping.items()})
            continue
        for item in filter(None, (p.strip() for p in value.split(","))):
            key, sep, name = item.partition("=")
            if not sep or not key.strip() or not name.strip():
                raise UserError(f"bad --label {item!r}: expected METHOD=NAME, e.g. mcce=MCCE")
            labels[key.strip()] = name.strip().strip('"')
    return labels


def _sota_rows(path, classes: list[str]):
    """The rows of a published per-class IoU table, percent, as a frame indexed by method."""
    import pandas as pd

    from fairseg_bench.results.read import read_results

    published = read_results([path], scale="percent")
    if sorted(published.classes) != sorted(classes):
        raise UserError(f"{path} has a different class set from the runs; compare results of one dataset")
    return pd.DataFrame([r.iou * 100.0 for r in published.runs], index=[r.method for r in published.runs],
                        columns=published.classes)[classes]


def _figures(results, summary, confusion_method: str | None, labels: dict) -> list[tuple[str, str, bytes, bytes]]:
    """(name, caption, PNG, PDF) of every figure the inputs allow, drawn two or more at a time."""
    from functools import partial

    from fairseg_bench.report import figures as fg

    reference = summary.reference
    confusion_method = results.resolve(confusion_method or reference, what="confusion-matrix method")
    candidates = [
        ("tradeoff", "mIoU against worst-class IoU and against the sorted bottom group, with intervals; "
         "the line joins the methods no other method beats on both.", partial(fg.plot_tradeoff, summary, labels)),
        ("per_class_iou", f"Per-class IoU of every method, classes in the order of {reference}.",
         partial(fg.plot_per_class_iou, summary, labels)),
        ("delta_iou", f"IoU difference per class against {reference}.", partial(fg.plot_delta_iou, summary, labels)),
        ("fairness", f"Fairness metrics against {reference}: differences in percentage points, seeds as dots.",
         partial(fg.plot_fairness, summary, labels)),
        ("sampler_weights", "Stochastic TCE: class-draw weights during training (smoothed) and the classes drawn.",
         partial(fg.plot_sampler_weights, results, summary.methods, labels)),
        ("training_curves", "Training loss and learning rate.",
         partial(fg.plot_training_curves, results, summary, labels)),
        ("qualitative", "Validation samples where the methods differ most: image, ground truth, each method.",
         partial(fg.plot_qualitative, results, summary, labels)),
        (f"confusion_{_safe(confusion_method)}", f"Row-normalised confusion matrix of {confusion_method}.",
         partial(fg.plot_confusion, results, confusion_method)),
        ("image_miou", "Fairness across images: distribution of the per-image mIoU of every method (seeds "
         "pooled); the shaded bands are the worst 5 % and 10 % of images.",
         partial(_image_figure, results, summary, labels)),
    ]
    for attribute in summary.groups:
        safe = _safe(attribute)
        candidates += [
            (f"groups_{safe}_heatmap", f"IoU difference to {reference} per class and {attribute} (pp).",
             partial(fg.plot_group_heatmap, summary, attribute, labels)),
            (f"groups_{safe}_gap", f"Gap between the best and worst {attribute} (mIoU) and the worst {attribute}'s "
             "mIoU per method, with intervals.", partial(fg.plot_group_gap, summary, attribute, labels)),
        ]
    drawn = fg.draw_figures([builder for _, _, builder in candidates])
    return [(name, caption, *files) for (name, caption, _), files in zip(candidates, drawn) if files is not None]


def _image_figure(results, summary, labels: dict):
    """The per-image mIoU distribution, or None when no method has per-image statistics."""
    from fairseg_bench.report.figures import method_colours
    from fairseg_bench.report.image_figures import per_image_miou_percent, plot_image_miou

    per_method = {}
    for m in summary.methods:
        runs = [r.per_image for r in results.runs_of(m)]
        if runs and all(s is not None for s in runs):
            per_method[m] = per_image_miou_percent(runs)
    if not per_method:
        return None
    return plot_image_miou(per_method, summary.reference, method_colours(summary.methods, summary.reference), labels)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "_" for ch in name)


def _markdown(tables, figures, figure_dir: str) -> str:
    blocks = ["# fairseg-bench report", *[t.to_markdown() for t in tables]]
    if figures:
        blocks.append("## Figures")
        blocks += [f"![{caption}]({figure_dir}/{name}.png)\n\n{caption}" for name, caption, _ in figures]
    return "\n\n".join(blocks) + "\n"


def build_report(runs_paths, *, reference: str | None = None, out, formats=FORMATS, sota_csv=None,
                 baseline=None, confusion_method: str | None = None, n_boot: int = 1000, seed: int = 0,
                 decimals: int = 2, figures: bool = True, fraction: float = 0.25, strict: bool = False,
                 mixed_configs: bool = False, labels: dict | None = None, class_order: str = "reference",
                 latex_environment: str = "table", warn=None, classes=None, groups=None) -> list[Path]:
    """Write the report of the runs/tables at ``runs_paths`` under ``out``; returns the written paths.

    Args:
        runs_paths: run folders, experiment folders, ``metrics.json`` files or per-class IoU tables.
        reference: the method ranking the classes and compared against (default: the first MCCE).
        out: output folder (replaced as a whole when the report is complete).
        formats: any of ``md``, ``latex``, ``csv``, ``html`` (a list or a comma-separated string).
        sota_csv: a wide CSV of published per-class IoUs (percent); its first row heads Table 2.
        baseline: if given, also write the CI gate's baseline file there.
        confusion_method: the method whose confusion matrix is drawn (default: the reference).
        n_boot: bootstrap replicates over validation images.
        seed: seed of the bootstrap draws (reports are reproducible).
        decimals: digits after the point in the tables.
        figures: draw the figures (PNG, PDF, and on the page); False for tables only.
        fraction: f of the fairness metrics, in (0, 0.5].
        strict: refuse results that lack a class others have (default: compare the common classes).
        mixed_configs: allow runs of different configs (a note says so).
        labels: display names of the methods in tables and figures.
        class_order: ``reference`` (sorted by the reference's IoU) or ``dataset``.
        latex_environment: ``table`` or ``table*`` (two-column papers).
        warn: called with each warning line (missing classes, ties); they are notes in the tables too.
        classes: class names or a dataset name for other tools' result files (see ``read_results``).
        groups: a :class:`~fairseg_bench.results.groups.Grouping` (``--groups``); None: the records' own
            ``image_attributes`` (CamVid's sequence, Cityscapes' city), if any.
    """
    from fairseg_bench.report import tables as tb
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    formats = parse_formats(formats)
    out = Path(out)
    _refuse_results_folder(out)
    results = read_results(runs_paths, mixed_configs=mixed_configs, classes=classes)
    summary = summarize(results, reference, fraction=fraction, n_boot=n_boot, seed=seed, strict=strict, groups=groups)
    for line in summary.warnings if warn else ():
        warn(line)
    labels = labels or {}
    options = {"decimals": decimals, "labels": labels}
    tables = [tb.table1(summary, class_order=class_order, **options)]
    if len(summary.methods) > 1:
        tables.append(tb.table1_delta(summary, class_order=class_order, **options))
    if sota_csv is not None:
        tables.append(tb.table2(summary, _sota_rows(sota_csv, summary.classes), **options))
    tables.append(tb.table3(summary, **options))
    if summary.has_image_level:
        tables.append(tb.table_image(summary, **options))
    if summary.has_boundary:
        tables.append(tb.table_boundary(summary, class_order=class_order, **options))
    tables += tb.group_tables(summary, **options)
    drawn = _figures(results, summary, confusion_method, labels) if figures else []
    written = _write_atomically(out, lambda folder: _write_files(folder, formats, tables, drawn, results, summary,
                                                                 latex_environment))
    if baseline is not None:
        from fairseg_bench.check.baseline import write_baseline

        write_baseline(baseline, results, summary)
        written.append(Path(baseline))
    return written


def _write_files(folder: Path, formats, tables, drawn, results, summary, latex_environment) -> list[str]:
    """Every file of the report under ``folder``; returns their paths relative to it."""
    from fairseg_bench.report.html import write_html
    from fairseg_bench.results import write_atomic

    written: list[Path] = []
    rendered = []  # (name, caption, PNG bytes): each figure is drawn once for the files and the page
    for name, caption, png, pdf in drawn:
        for path, data in ((folder / "figures" / f"{name}.png", png), (folder / "figures" / f"{name}.pdf", pdf)):
            write_atomic(path, data)
            written.append(path)
        rendered.append((name, caption, png))
    for table in tables:
        if "latex" in formats:
            write_atomic(folder / f"{table.name}.tex", table.to_latex(latex_environment))
            written.append(folder / f"{table.name}.tex")
        if "csv" in formats:
            write_atomic(folder / f"{table.name}.csv", table.to_csv())
            written.append(folder / f"{table.name}.csv")
    if "md" in formats:
        write_atomic(folder / "report.md", _markdown(tables, rendered, "figures"))
        written.append(folder / "report.md")
    if "html" in formats:
        written.append(write_html(folder / "index.html", results, summary, tables, rendered))
    return [str(p.relative_to(folder)) for p in written]


def _refuse_results_folder(out: Path) -> None:
    """A report replaces its folder: never one that holds results."""
    if out.is_dir() and any(True for _ in out.rglob("metrics.json")):
        raise UserError(f"{out} holds run results (metrics.json); a report replaces its folder: choose another --out")


def _is_report_file(name: str) -> bool:
    return any(fnmatch(name, pattern) for pattern in REPORT_PATTERNS)


def _write_atomically(out: Path, write) -> list[Path]:
    """Run ``write(folder)`` in a temporary folder beside ``out`` and swap it in as ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        relative = write(staging)
        if out.exists():
            for item in out.iterdir():  # files the report does not own stay
                if not _is_report_file(item.name):
                    copy = shutil.copytree if item.is_dir() else shutil.copy2
                    copy(item, staging / item.name)
            os.replace(out, old)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return [out / r for r in relative]


def console_tables(paths, reference: str | None = None, groups=None) -> tuple[str, list[str]]:
    """What ``run`` and ``evaluate`` print: Table 1 and Table 3 in Markdown (and the group tables), and the warnings."""
    from fairseg_bench.report.tables import render_summary
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    summary = summarize(read_results(paths), reference, n_boot=0, groups=groups)
    return render_summary(summary, "md", two_rows=True), list(summary.warnings)


def print_tables(paths, reference: str | None = None, groups=None) -> None:
    """Print :func:`console_tables` on stdout and its warnings on stderr; a UserError only warns.

    The results are on disk when this runs, so a reason for missing tables is a warning, not a failure.
    """
    try:
        text, warnings = console_tables(paths, reference, groups)
    except UserError as exc:
        print(f"warning: no tables: {exc}", file=sys.stderr, flush=True)
        return
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    print("\n" + text, flush=True)


def print_group_tables(paths, groups) -> None:
    """Print only the group tables of ``paths`` with the given groups (``evaluate --checkpoint --groups``)."""
    from fairseg_bench.report.tables import group_tables
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    summary = summarize(read_results(paths), n_boot=0, groups=groups)
    for line in summary.warnings:
        print(f"warning: {line}", file=sys.stderr, flush=True)
    print("\n" + "\n".join(t.to_markdown() for t in group_tables(summary)), flush=True)
