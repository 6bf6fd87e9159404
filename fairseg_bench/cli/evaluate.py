"""``fairseg-bench evaluate``: a saved checkpoint, or a folder of any model's prediction PNGs."""
from __future__ import annotations

import click

from fairseg_bench.cli.options import groups_option
from fairseg_bench.errors import UserError

_PREDICTION_ONLY = ("dataset", "name", "workers", "ids", "reduce_zero_label", "labels", "classes", "ignore_index",
                    "boundary")


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="A run's last.pt (its config.yaml must sit beside it).")
@click.option("--predictions", type=click.Path(file_okay=False),
              help="A folder of prediction PNGs (class ids; palette or greyscale), one per ground-truth image.")
@click.option("--dataset", help="cityscapes, ade20k, voc or camvid (with --predictions).")
@click.option("--data-root", "--root", "data_root", type=click.Path(file_okay=False),
              help="Dataset folder (default for --checkpoint: the run's).")
@click.option("--split", default="val", show_default=True)
@click.option("--name", help="Method label of the predictions (default: the folder's name).")
@click.option("--out", help="--checkpoint: folder for metrics.json (default: metrics-<split>.json beside it); "
                            "--predictions: a .json file or a folder (default: runs/predictions-<dataset>/<name>/).")
@click.option("--workers", type=int, help="Worker processes for --predictions (default: all cores).")
@click.option("--ids", type=click.Choice(["label", "train"]), help="Cityscapes predictions hold labelIds "
              "(default, as cityscapesScripts expects) or trainIds.")
@click.option("--reduce-zero-label", is_flag=True, default=None,
              help="ADE20K predictions hold 0-149 (mmsegmentation's output) instead of 1-150.")
@click.option("--labels", type=click.Path(file_okay=False), help="Generic ground-truth folder (PNGs matched by stem).")
@click.option("--classes", type=click.Path(dir_okay=False), help="Generic class list, one name a line.")
@click.option("--ignore-index", type=int, help="Generic ignore value in the labels (default 255).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="For --checkpoint.")
@click.option("--save-predictions", type=click.Path(file_okay=False),
              help="--checkpoint: also write one prediction PNG per image (class ids, named by the image) to "
                   "this folder; `evaluate --predictions` reads it back to the same confusion matrix.")
@click.option("--boundary", is_flag=True, default=None,
              help="--predictions: also count Boundary IoU (a Cityscapes-size folder then takes ~4.7x as long; "
                   "see benchmarks/README.md). Runs and --checkpoint always count it.")
@groups_option
@click.option("--quiet", is_flag=True, default=None)
def evaluate(checkpoint, predictions, dataset, data_root, split, name, out, workers, ids, reduce_zero_label,
             labels, classes, ignore_index, device, save_predictions, boundary, groups, quiet):
    """Evaluate a saved model, or any model's prediction folder, and write its metrics.json."""
    given = {k: v for k, v in locals().items() if k in _PREDICTION_ONLY and v is not None}
    if (checkpoint is None) == (predictions is None):
        raise UserError("give exactly one of --checkpoint FILE or --predictions DIR")
    if checkpoint is not None:
        if given:
            raise UserError(f"--{next(iter(given)).replace('_', '-')} applies to --predictions only")
        from fairseg_bench.runner import evaluate_checkpoint

        target = evaluate_checkpoint(checkpoint, split=split, out=out, data_root=data_root, device=device,
                                     quiet=quiet, save_predictions=save_predictions)
        if groups is not None:  # the usual tables are printed; then those of the given groups
            from fairseg_bench.report import print_group_tables

            print_group_tables([target], groups)
        return
    if device is not None:
        raise UserError("--device applies to --checkpoint only (predictions are counted on the CPU)")
    if save_predictions is not None:
        raise UserError("--save-predictions applies to --checkpoint only")
    from fairseg_bench.predictions import evaluate_predictions

    evaluate_predictions(predictions, dataset=dataset, root=data_root, split=split, name=name, out=out,
                         workers=workers, ids=ids or "label", reduce_zero_label=bool(reduce_zero_label),
                         labels=labels, classes=classes, ignore_index=255 if ignore_index is None else ignore_index,
                         quiet=bool(quiet), boundary=bool(boundary), groups=groups)
