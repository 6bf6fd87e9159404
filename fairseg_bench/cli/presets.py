"""``fairseg-bench presets``: list the packaged experiment presets, print one to copy and edit."""
from __future__ import annotations

import click

from fairseg_bench.config import list_presets, preset_text


@click.group("presets", invoke_without_command=True)
@click.pass_context
def presets(ctx):
    """List the packaged experiment presets with their descriptions (run one with 'run -c NAME')."""
    if ctx.invoked_subcommand is not None:
        return
    found = list_presets()
    width = max(map(len, found), default=0)
    for name, description in found.items():
        click.echo(f"{name:<{width}}  {description}".rstrip())


@presets.command("show")
@click.argument("name")
def show(name):
    """Print a preset's YAML (save it, edit it, run it with 'run -c FILE')."""
    click.echo(preset_text(name), nl=False)
