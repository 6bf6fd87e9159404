"""``fairseg-bench metrics``: per-class IoU and fairness tables from any result file."""
import click

from fairseg_bench.cli.options import (
    classes_option,
    comparison_options,
    display_options,
    echo_warnings,
    groups_option,
)
from fairseg_bench.report.tables import LATEX_ENVIRONMENTS, OUTPUT_FORMATS, TABLES, render_summary
from fairseg_bench.results.read import SCALES


@click.command("metrics")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@comparison_options
@display_options
@classes_option
@groups_option
@click.option("--format", "fmt", default="md", show_default=True, type=click.Choice(OUTPUT_FORMATS),
              help="Output format (json: per-class IoU and fairness per method, percent).")
@click.option("--scale", default="auto", show_default=True, type=click.Choice(SCALES),
              help="Unit of IoU numbers in tables (auto: fractions if none exceeds 1).")
@click.option("--table", "which", default="both", show_default=True, type=click.Choice(TABLES), help="Which table.")
@click.option("--two-rows", is_flag=True, help="Per-class table in two rows of classes, as the paper prints it.")
@click.option("--digits", default=2, show_default=True, type=click.IntRange(0, 10), help="Decimals in md/latex.")
@click.option("--latex-env", default="table", show_default=True, type=click.Choice(LATEX_ENVIRONMENTS),
              help="LaTeX float (table* spans both columns of a two-column paper).")
@click.option("--compare-tools", is_flag=True,
              help="Instead: the mIoU and per-class IoU that torchmetrics, mmsegmentation, Hugging Face, detectron2 "
                   "and cityscapesScripts would report from the same counts (needs confusion matrices; md or json).")
def metrics(files, reference, fraction, strict, mixed_configs, labels, class_order, classes, groups, fmt, scale,
            which, two_rows, digits, latex_env, compare_tools=False):
    """Per-class IoU (Table 1) and fairness metrics (Table 3) of the methods in FILES.

    FILES: run folders (every metrics.json below them), metrics.json files, wide CSVs (a 'method'
    column, optional 'seed', one column per class), long CSVs (method,class,iou), JSON files of
    confusion matrices or per-class IoUs, or other tools' result files (cityscapesScripts,
    mmsegmentation 0.x eval_*.json, detectron2 sem_seg, Hugging Face mean_iou with --classes).
    """
    from fairseg_bench.report import parse_labels
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    labels = parse_labels(labels)
    results = read_results(files, scale=scale, mixed_configs=mixed_configs, classes=classes)
    if compare_tools:
        from fairseg_bench.results.tool_rules import render_comparison

        return click.echo(render_comparison(results, digits=digits, fmt=fmt), nl=False)
    summary = summarize(results, reference, fraction=fraction, n_boot=0, strict=strict, groups=groups)
    echo_warnings(summary)
    click.echo(render_summary(summary, fmt, which=which, two_rows=two_rows, digits=digits, labels=labels,
                              class_order=class_order, latex_environment=latex_env), nl=False)
