"""``fairseg-bench status OUT``: where every run of a sweep stands (done, running, failed, queued)."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False))
def status(out):
    """List every run under OUT (an output folder or one experiment's folder) with its state and step."""
    from fairseg_bench.run_status import sweep_rows

    rows = sweep_rows(Path(out))
    if not rows:
        click.echo(f"{out}: no runs found")
        return
    headers = ("run", "state", "step", "precision", "where", "log / error")
    keys = ("run", "state", "step", "precision", "where", "note")
    cells = [headers] + [tuple(str(row[k]) for k in keys) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers) - 1)]
    for line in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths)) + "  " + line[-1])
    counts = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
