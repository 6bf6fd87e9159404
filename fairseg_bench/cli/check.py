"""``fairseg-bench check``: the fairness regression gate (exit 0 pass, 1 regression, 2 bad input)."""
from __future__ import annotations

import click

from fairseg_bench.cli.options import classes_option, groups_option


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--baseline", "baseline_path", required=True, type=click.Path(dir_okay=False),
              help="Baseline JSON to compare with (written by --update or `report --baseline`).")
@click.option("--tolerance", "tolerance", multiple=True, metavar="KEY=VALUE,...",
              help="Per-metric allowed worsening with its unit: points (2pp) or relative (5%); e.g. all=1pp,worst=2pp.")
@click.option("--per-class-tolerance", default=None, metavar="X",
              help="Allowed per-class IoU drop, 2pp or 5% (default 2pp).")
@click.option("--rule", type=click.Choice(["fixed", "spread", "ci"]), default="fixed", show_default=True,
              help="fixed tolerance; or also require the drop to exceed the seeds' spread / the bootstrap CI.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False), default=None,
              help="Append a Markdown summary here (e.g. \"$GITHUB_STEP_SUMMARY\").")
@click.option("--update", is_flag=True, help="Write (overwrite) the baseline from RUNS and exit 0.")
@click.option("--reference", "-r", default=None, metavar="LABEL",
              help="With --update: the method ranking the classes [default: the first MCCE, else the first].")
@click.option("--fraction", "-f", default=0.25, show_default=True, type=float,
              help="With --update: share of classes in the sorted groups, in (0, 0.5].")
@click.option("--strict", is_flag=True, help="Refuse runs that lack a class others have.")
@classes_option
@groups_option
@click.pass_context
def check(ctx, runs, baseline_path, tolerance, per_class_tolerance, rule, summary_path, update, reference, fraction,
          strict, classes, groups):
    """Compare RUNS' fairness metrics and per-class IoU with a baseline."""
    from fairseg_bench import check as gate
    from fairseg_bench.cli.options import echo_warnings
    from fairseg_bench.results.read import read_results

    tolerances = gate.parse_tolerances(",".join(tolerance))  # bad options fail before any reading
    class_tol = None if per_class_tolerance is None else gate.parse_tolerance_value(
        per_class_tolerance, name="--per-class-tolerance")
    results = read_results(list(runs), classes=classes)
    if update:
        from fairseg_bench.results.summary import summarize

        summary = summarize(results, reference, fraction=fraction, n_boot=gate.baseline.BOOTSTRAP_RESAMPLES,
                            strict=strict, groups=groups)
        echo_warnings(summary)
        baseline = gate.write_baseline(baseline_path, results, summary)
        click.echo(f"wrote baseline {baseline_path}: {', '.join(baseline['methods'])} "
                   f"(reference {baseline['reference']}, config {gate.short_hash(baseline['config_hash'])})")
        return
    result = gate.compare(results, gate.read_baseline(baseline_path), tolerances, class_tol, rule=rule, strict=strict,
                          groups=groups)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for line in result.failure_lines():
        click.echo(line)
    click.echo(result.status_line())
    if summary_path:
        gate.append_summary(summary_path, gate.to_markdown(result, " ".join(runs), baseline_path))
    if not result.passed:
        ctx.exit(1)
