"""Options shared by several commands: one spelling, one parser, one meaning everywhere."""
from __future__ import annotations

from pathlib import Path

import click

from fairseg_bench.errors import UserError
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


def _class_names(value: str) -> list[str] | str:
    """``--classes FILE|DATASET``: a dataset name stays a name; a file becomes its class names (one a line)."""
    from fairseg_bench.data.label_sets import DATASET_CLASSES

    if value in DATASET_CLASSES:
        return value
    path = Path(value)
    if not path.is_file():
        raise UserError(f"--classes {value}: neither a class file (one name a line) nor a dataset name "
                        f"({', '.join(sorted(DATASET_CLASSES))})")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"--classes {value}: no class names in the file")
    return names


def _classes(ctx, param, value):
    return None if value is None else _class_names(value)


def classes_option(func):
    """``--classes FILE|DATASET`` for result files of other tools."""
    return click.option("--classes", "classes", default=None, metavar="FILE|DATASET", callback=_classes,
                        help="Class names (a file, one a line) or a dataset (cityscapes, ade20k, voc, camvid) for "
                             "other tools' result files: a Hugging Face mean_iou file names no classes; "
                             "mmsegmentation and detectron2 names must match them.")(func)


def _class_file(ctx, param, value):
    """``evaluate --classes FILE``: checked as every ``--classes`` is, kept as the file the evaluation reads."""
    if value is not None and isinstance(_class_names(value), str):
        raise UserError(f"--classes {value}: a dataset's labels are read with --dataset {value}; "
                        "--classes takes the class file of any other label folder")
    return value


def class_file_option(**attrs):
    """``--classes FILE``: the class names of a generic label folder (``evaluate --labels``)."""
    return click.option("--classes", "classes", default=None, metavar="FILE", callback=_class_file, **attrs)


def workers_option(default: int | None, default_text: str, **attrs):
    """``--workers N``: N worker processes share the work, 0 = all of it in this process."""
    return click.option("--workers", type=click.IntRange(min=0), default=default, metavar="N",
                        help=f"Worker processes; 0 = in this process [default: {default_text}].", **attrs)


def data_root_option(help_text: str):
    """``--data-root`` (``--root`` the same): a dataset's folder, one name in every command."""
    return click.option("--data-root", "--root", "data_root", type=click.Path(file_okay=False), default=None,
                        help=help_text)


def _groups(ctx, param, value):
    """``--groups FILE``: parsed at once, so a bad CSV fails before any work."""
    if value is None:
        return None
    from fairseg_bench.results.groups import read_groups

    return read_groups(value)


def groups_option(func):
    """``--groups FILE``: image groups for the group-fairness tables (default: the records' own attributes)."""
    return click.option("--groups", "groups", default=None, metavar="FILE.csv", callback=_groups,
                        help="CSV 'image,group' or 'image,attr1,attr2,...' (image: the file stem) grouping the "
                             "images [default: the records' image_attributes: CamVid's sequence, Cityscapes' "
                             "city].")(func)
