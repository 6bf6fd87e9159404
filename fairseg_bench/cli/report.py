"""``fairseg-bench report``: the paper's tables and figures from run folders or per-class IoU tables."""
from __future__ import annotations

from pathlib import Path

import click

from fairseg_bench.cli.options import classes_option, comparison_options, display_options, groups_option
from fairseg_bench.report.tables import LATEX_ENVIRONMENTS


def _default_out(runs: tuple[str, ...]) -> Path:
    """``reports/<name of the first input>`` (an experiment folder's or a CSV's name)."""
    first = Path(runs[0]).resolve()
    name = first.stem if first.is_file() else first.name
    return Path("reports") / (name or "report")


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@comparison_options
@display_options
@classes_option
@groups_option
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Output folder, replaced as a whole (default: reports/<name of the first input>).")
@click.option("--format", "formats", default=",".join(("md", "latex", "csv", "html")), show_default=True,
              metavar="LIST", help="Comma-separated formats: md, latex, csv, html.")
@click.option("--latex-env", default="table", show_default=True, type=click.Choice(LATEX_ENVIRONMENTS),
              help="LaTeX float (table* spans both columns of a two-column paper).")
@click.option("--sota", "sota", type=click.Path(dir_okay=False), default=None,
              help="Wide CSV of published per-class IoU (%); its first row heads Table 2.")
@click.option("--baseline", "baseline", type=click.Path(dir_okay=False), default=None,
              help="Also write the CI gate's baseline JSON here.")
@click.option("--confusion", "confusion_method", default=None, metavar="LABEL",
              help="Method whose confusion matrix is drawn (default: the reference).")
@click.option("--bootstrap", "n_boot", type=click.IntRange(0), default=1000, show_default=True,
              help="Bootstrap replicates over validation images (0: no intervals).")
@click.option("--no-figures", is_flag=True, help="Tables only (no PNG/PDF figures).")
def report(runs, reference, fraction, strict, mixed_configs, labels, class_order, classes, groups, out, formats,
           latex_env, sota, baseline, confusion_method, n_boot, no_figures):
    """Tables (Markdown, LaTeX, CSV), figures and an HTML page for RUNS (folders, metrics.json or tables)."""
    from fairseg_bench.report import build_report, parse_formats, parse_labels
    from fairseg_bench.results.summary import check_fraction

    formats = parse_formats(formats)  # fail on a bad option before any work
    check_fraction(fraction)
    out = Path(out) if out else _default_out(runs)
    written = build_report(list(runs), reference=reference, out=out, formats=formats, sota_csv=sota,
                           baseline=baseline, confusion_method=confusion_method, n_boot=n_boot,
                           figures=not no_figures, fraction=fraction, strict=strict, mixed_configs=mixed_configs,
                           labels=parse_labels(labels), class_order=class_order, latex_environment=latex_env,
                           classes=classes, groups=groups,
                           warn=lambda line: click.echo(f"warning: {line}", err=True))
    click.echo(f"wrote {len(written)} files under {out}")
    index = out / "index.html"
    if index in written:
        click.echo(f"open {index}")
