"""``fairseg-bench run / train``: parse options, build the config, call the runner."""
from __future__ import annotations

import click

from fairseg_bench.errors import UserError
from fairseg_bench.losses import describe_losses


def _seeds(ctx, param, value):
    """``0,1,2`` -> (0, 1, 2)."""
    if value is None:
        return None
    try:
        seeds = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {value}: expected distinct non-negative integers like 0,1,2")
    return seeds


def _losses(ctx, param, value):
    """``mcce,focal,tce:t=0.1`` -> specs; commas inside a spec's parameters stay with it."""
    if value is None:
        return None
    specs: list[str] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if "=" in part and ":" not in part and specs:  # a further key=value of the previous spec
            specs[-1] += "," + part
        else:
            specs.append(part)
    if not specs:
        raise UserError(f"--losses {value!r}: expected loss specs like mcce,focal,tce:t=1")
    return tuple(specs)


def _common(func):
    """Options shared by ``run`` and ``train``."""
    for option in reversed([
        click.option("-c", "--config", default="quick", show_default=True,
                     help="Experiment YAML file, or the name of a preset in experiments/."),
        click.option("--data-root", type=click.Path(file_okay=False), help="Dataset folder."),
        click.option("--out", help="Output folder (default: the config's, 'runs')."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default: the config's (auto)."),
        click.option("--iters", type=int, help="Training steps per run."),
        click.option("--batch-size", type=int, help="Total training batch size."),
        click.option("--quiet", is_flag=True, default=None, help="No progress bars."),
    ]):
        func = option(func)
    return func


def _config(config, **overrides):
    from fairseg_bench.config import load_config

    return load_config(config).override(**overrides)


def _loss_list() -> str:
    """The registered loss specs with their one-line summaries, for ``run --help``."""
    return "\b\nLoss specs:\n" + "\n".join(f"  {usage}  {summary}" for usage, summary in describe_losses().items())


@click.command(epilog=_loss_list())
@_common
@click.option("--losses", callback=_losses, help="Comma-separated loss specs, e.g. mcce,focal,tce:t=1.")
@click.option("--seeds", callback=_seeds, help="Comma-separated seeds, e.g. 0,1,2.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write <out>/<experiment>/report at the end.")
def run(config, losses, seeds, data_root, out, device, iters, batch_size, quiet, report):
    """Train and evaluate every loss × seed of an experiment; print the tables."""
    from fairseg_bench.runner import run_experiment

    cfg = _config(config, losses=losses, seeds=seeds, data_root=data_root, out=out, device=device,
                  iters=iters, batch_size=batch_size, quiet=quiet)
    run_experiment(cfg, report=report)


@click.command()
@_common
@click.option("--loss", "loss", default="mcce", show_default=True, help="One loss spec, e.g. tce:t=1.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def train(config, loss, seed, data_root, out, device, iters, batch_size, quiet):
    """Train and evaluate one loss and seed (what torchrun launches for multi-GPU)."""
    from fairseg_bench.runner import train_single

    cfg = _config(config, data_root=data_root, out=out, device=device, iters=iters,
                  batch_size=batch_size, quiet=quiet)
    train_single(cfg, loss, seed)

