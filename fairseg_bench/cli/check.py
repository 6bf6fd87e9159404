"""``fairseg-bench check``: the fairness regression gate (exit 0 pass, 1 regression, 2 bad input)."""
from __future__ import annotations

import click


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--baseline", "baseline_path", required=True, type=click.Path(dir_okay=False),
              help="Baseline JSON to compare with (written by --update or `report --baseline`).")
@click.option("--tolerance", "tolerance", multiple=True, metavar="KEY=VALUE,...",
              help="Per-metric allowed worsening, a fraction (0.01) or points (1pp); e.g. worst=2pp,std=0.01.")
@click.option("--per-class-tolerance", default=None, metavar="X",
              help="Allowed per-class IoU drop, fraction or pp (default 0.02 = 2 pp).")
@click.option("--rule", type=click.Choice(["fixed", "spread", "ci"]), default="fixed", show_default=True,
              help="fixed tolerance; or also require the drop to exceed the seeds' spread / the bootstrap CI.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False), default=None,
              help="Append a Markdown summary here (e.g. \"$GITHUB_STEP_SUMMARY\").")
@click.option("--update", is_flag=True, help="Write (overwrite) the baseline from RUNS and exit 0.")
@click.pass_context
def check(ctx, runs, baseline_path, tolerance, per_class_tolerance, rule, summary_path, update):
    """Compare RUNS' fairness metrics and per-class IoU with a baseline."""
    from fairseg_bench import check as gate

    if update:
        baseline = gate.write_baseline(baseline_path, list(runs))
        click.echo(f"wrote baseline {baseline_path}: {', '.join(baseline['methods'])} (config {gate.short_hash(baseline['config_hash'])})")
        return
    tolerances = gate.parse_tolerances(",".join(tolerance))
    class_tol = None if per_class_tolerance is None else gate.parse_tolerance_value(per_class_tolerance, name="--per-class-tolerance")
    result = gate.compare(list(runs), gate.read_baseline(baseline_path), tolerances, class_tol, rule=rule)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for line in result.failure_lines():
        click.echo(line)
    click.echo(result.status_line())
    if summary_path:
        gate.append_summary(summary_path, result.to_markdown(runs_label=" ".join(runs), baseline_label=baseline_path))
    if not result.passed:
        ctx.exit(1)
