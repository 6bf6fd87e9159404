"""``fairseg-bench doctor``: what this machine will do with fairseg-bench (CPU, precision, devices, speed)."""
from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON (for scripts).")
@click.option("--no-bench", is_flag=True, help="Skip the few-second step benchmark.")
def doctor(as_json, no_bench):
    """CPU and ISA, native bfloat16, threads, torch builds, devices, each preset's precision here,
    and a few-second step benchmark with the `make run` wall time it predicts."""
    from fairseg_bench.doctor import diagnose, render

    info = diagnose(bench=not no_bench)
    click.echo(json.dumps(info, indent=2) if as_json else render(info))
