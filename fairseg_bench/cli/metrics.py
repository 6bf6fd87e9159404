"""``fairseg-bench metrics``: per-class IoU and fairness tables from IoU tables or confusion matrices."""
import click

from fairseg_bench.metrics_io import OUTPUT_FORMATS, SCALES, TABLES, metrics_report, read_iou_tables, resolve_reference


@click.command("metrics")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--reference", "-r", default=None, help="Method that ranks the classes [default: MCCE if present, else the first method].")
@click.option("--fraction", "-f", default=0.25, show_default=True, type=click.FloatRange(0, 1, min_open=True), help="Share of classes in the sorted bottom/top groups and the percentile.")
@click.option("--format", "fmt", default="md", show_default=True, type=click.Choice(OUTPUT_FORMATS), help="Output format (json: {method: {key: value}}, IoU in percent).")
@click.option("--scale", default="auto", show_default=True, type=click.Choice(SCALES), help="Unit of IoU numbers in the inputs (auto: fractions if none exceeds 1).")
@click.option("--table", "which", default="both", show_default=True, type=click.Choice(TABLES), help="Which table to print.")
@click.option("--split", is_flag=True, help="Print the per-class table in two halves, as the paper does.")
@click.option("--digits", default=2, show_default=True, type=click.IntRange(0, 10), help="Decimals shown in md/latex.")
def metrics(files, reference, fraction, fmt, scale, which, split, digits):
    """Per-class IoU (Table 1 layout) and fairness metrics (Table 3 layout) of the methods in FILES.

    FILES: wide CSVs (a 'method' column, one column per class), long CSVs (method,class,iou),
    JSON files (a run's metrics.json, confusion matrices, or per-class IoUs), or folders of runs
    (every metrics.json below them).
    """
    table = read_iou_tables(files, scale=scale)
    reference = resolve_reference(table, reference)
    click.echo(metrics_report(table, reference, fraction, fmt, which, split, digits), nl=False)
