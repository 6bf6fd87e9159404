"""``fairseg-bench evaluate``: a saved checkpoint, or a folder of any model's prediction PNGs.

An option that serves one source only says so where it is declared (``_only``); giving it with the
other source is an error (``_source``).
"""
from __future__ import annotations

import click

from fairseg_bench.cli.options import class_file_option, data_root_option, groups_option, workers_option
from fairseg_bench.errors import UserError

SOURCES = ("checkpoint", "predictions")


class _SourceOption(click.Option):
    """An option of one source only (``--checkpoint`` or ``--predictions``); its help says which."""

    def __init__(self, *args, source: str, **attrs):
        attrs["help"] = f"{attrs.get('help', '')} [--{source} only]".strip()
        super().__init__(*args, **attrs)
        self.source = source


def _only(source: str) -> dict:
    """The attributes that make an option one source's."""
    return {"cls": _SourceOption, "source": source}


def _source(ctx: click.Context) -> str:
    """The source given (exactly one), after checking that no option of the other source is."""
    given = [source for source in SOURCES if ctx.params[source] is not None]
    if len(given) != 1:
        raise UserError("give exactly one of --checkpoint FILE or --predictions DIR")
    for param in ctx.command.params:
        if getattr(param, "source", given[0]) != given[0] and ctx.params[param.name] is not None:
            raise UserError(f"{param.opts[0]} applies to --{param.source} only")
    return given[0]


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="A run's last.pt (its config.yaml must sit beside it).")
@click.option("--predictions", type=click.Path(file_okay=False),
              help="A folder of prediction PNGs (class ids; palette or greyscale), one per ground-truth image.")
@click.option("--dataset", help="cityscapes, ade20k, voc or camvid.", **_only("predictions"))
@data_root_option("Dataset folder (default for --checkpoint: the run's).")
@click.option("--split", default="val", show_default=True, help="The dataset split evaluated.")
@click.option("--name", help="Method label of the predictions (default: the folder's name).", **_only("predictions"))
@click.option("--out", help="--checkpoint: folder for metrics.json (default: metrics-<split>.json beside it); "
                            "--predictions: a .json file or a folder (default: runs/predictions-<dataset>/<name>/).")
@workers_option(None, "all cores", **_only("predictions"))
@click.option("--ids", type=click.Choice(["label", "train"]), help="Cityscapes predictions hold labelIds "
              "(default, as cityscapesScripts expects) or trainIds.", **_only("predictions"))
@click.option("--reduce-zero-label", is_flag=True, default=None,
              help="ADE20K predictions hold 0-149 (mmsegmentation's output) instead of 1-150.", **_only("predictions"))
@click.option("--labels", type=click.Path(file_okay=False), help="Generic ground-truth folder (PNGs matched by stem).",
              **_only("predictions"))
@class_file_option(help="Generic class list, one name a line.", **_only("predictions"))
@click.option("--ignore-index", type=int, help="Generic ignore value in the labels (default 255).",
              **_only("predictions"))
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
              help="Where the model runs (predictions are counted on the CPU).", **_only("checkpoint"))
@click.option("--save-predictions", type=click.Path(file_okay=False),
              help="Also write one prediction PNG per image (class ids, named by the image) to this folder; "
                   "`evaluate --predictions` reads it back to the same confusion matrix.", **_only("checkpoint"))
@click.option("--boundary", is_flag=True, default=None,
              help="Also count Boundary IoU (a Cityscapes-size folder then takes ~1.3x as long; see "
                   "benchmarks/README.md). Runs and --checkpoint always count it.", **_only("predictions"))
@groups_option
@click.option("--quiet", is_flag=True, default=None)
def evaluate(checkpoint, predictions, dataset, data_root, split, name, out, workers, ids, reduce_zero_label,
             labels, classes, ignore_index, device, save_predictions, boundary, groups, quiet):
    """Evaluate a saved model, or any model's prediction folder, and write its metrics.json."""
    if _source(click.get_current_context()) == "checkpoint":
        from fairseg_bench.runner import evaluate_checkpoint

        target = evaluate_checkpoint(checkpoint, split=split, out=out, data_root=data_root, device=device,
                                     quiet=quiet, save_predictions=save_predictions)
        from fairseg_bench.report import print_tables

        print_tables([target])
        if groups is not None:  # the usual tables are printed; then those of the given groups
            from fairseg_bench.report import print_group_tables

            print_group_tables([target], groups)
        return
    from fairseg_bench.predictions import evaluate_predictions

    evaluate_predictions(predictions, dataset=dataset, root=data_root, split=split, name=name, out=out,
                         workers=workers, ids=ids or "label", reduce_zero_label=bool(reduce_zero_label), labels=labels,
                         classes=classes, ignore_index=255 if ignore_index is None else ignore_index,
                         quiet=bool(quiet), boundary=bool(boundary), groups=groups)
