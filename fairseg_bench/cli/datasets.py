"""``fairseg-bench datasets``: list the datasets, check a data root, build the class-index cache."""
from __future__ import annotations

import sys

import click

from fairseg_bench.cli.options import data_root_option, workers_option
from fairseg_bench.data import DATASETS, available_datasets, dataset_info


@click.group("datasets", invoke_without_command=True)
@data_root_option("Check whether this folder is a valid root for each dataset that needs one.")
@click.pass_context
def datasets(ctx, data_root):
    """List the datasets with their class counts and expected layouts."""
    if ctx.invoked_subcommand is not None:
        return
    for name in available_datasets():
        info = DATASETS[name]
        click.echo(f"{name:<11} {info.num_classes:>4} classes  {info.description}")
        click.echo(f"{'':<11} layout: {info.layout}")
        if data_root is not None and info.needs_root:
            problem = info.check_root(data_root)
            click.echo(f"{'':<11} --data-root {data_root}: {'valid' if problem is None else 'invalid: ' + problem}")


@datasets.command("index")
@click.option("--dataset", "name", required=True, type=click.Choice(available_datasets()), help="Dataset name.")
@data_root_option("Dataset folder (real datasets).")
@click.option("--split", default="train", show_default=True, help="Split to index.")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder [default: $FAIRSEG_BENCH_CACHE or .cache/fairseg-bench].")
@workers_option(0, "0")
@click.option("--num-images", type=click.IntRange(min=1), default=None, help="Synthetic only: number of images.")
@click.option("--seed", type=int, default=None, help="Synthetic only: generator seed.")
def index(name, data_root, split, cache_dir, workers, num_images, seed):
    """Build (or reuse) the class-index cache and print each class's pixel and image share."""
    from fairseg_bench.data import build_dataset
    from fairseg_bench.data.index import build_class_index, cache_path, default_cache_dir

    options = {}
    if num_images is not None or seed is not None:
        if dataset_info(name).needs_root:
            raise click.UsageError("--num-images and --seed apply to the synthetic dataset only")
        options = {k: v for k, v in {"num_images": num_images, "seed": seed}.items() if v is not None}
    dataset = build_dataset(name, root=data_root, split=split, **options)
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    class_index = build_class_index(dataset, cache_dir=cache_dir, workers=workers, progress=sys.stderr.isatty())
    click.echo(f"{dataset.name} {split}: {class_index.num_images} images, cache {cache_path(dataset, cache_dir)}")
    click.echo(format_class_table(dataset.classes, class_index))


def format_class_table(classes, class_index) -> str:
    """Per-class pixel share and image share, in percent, as an aligned text table."""
    pixel_share = class_index.class_frequencies() * 100
    image_share = class_index.image_share() * 100
    width = max(len("class"), *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  {'pixel %':>8}  {'image %':>8}"]
    lines += [f"{c:<{width}}  {p:>8.3f}  {i:>8.1f}" for c, p, i in zip(classes, pixel_share, image_share)]
    return "\n".join(lines)
