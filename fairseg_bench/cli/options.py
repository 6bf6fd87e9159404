"""Options shared by ``metrics``, ``report`` and ``check``: one spelling, one meaning everywhere."""
from __future__ import annotations

import click

from fairseg_bench.report.tables import CLASS_ORDERS


def comparison_options(func):
    """``--reference``, ``--fraction``, ``--strict``, ``--mixed-configs``."""
    for option in reversed([
        click.option("--reference", "-r", default=None, metavar="LABEL",
                     help="Method that ranks the classes [default: the first MCCE, else the first method]."),
        click.option("--fraction", "-f", default=0.25, show_default=True, type=float,
                     help="Share of classes in the sorted bottom/top groups and the percentile, in (0, 0.5]."),
        click.option("--strict", is_flag=True,
                     help="Refuse results that lack a class others have [default: compare the common classes, "
                          "with a warning and a note]."),
        click.option("--mixed-configs", is_flag=True,
                     help="Compare runs of different configs (a note says so) [default: refuse]."),
    ]):
        func = option(func)
    return func


def display_options(func):
    """``--label`` and ``--class-order``."""
    for option in reversed([
        click.option("--label", "labels", multiple=True, metavar="M=NAME,...|FILE.yaml",
                     help='Display names in tables and figures, e.g. mcce=MCCE,tce-t1="TCE $t=1$", or a YAML map.'),
        click.option("--class-order", type=click.Choice(CLASS_ORDERS), default="reference", show_default=True,
                     help="Per-class columns sorted by the reference's IoU, or in the dataset's order."),
    ]):
        func = option(func)
    return func


def echo_warnings(summary) -> None:
    """Every warning of the summary on stderr, one line each."""
    for line in summary.warnings:
        click.echo(f"warning: {line}", err=True)
