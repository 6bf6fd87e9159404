"""``fairseg-bench run / train``: parse options, build the config, call the runner."""
from __future__ import annotations

import click

from fairseg_bench.errors import UserError
from fairseg_bench.loss_specs import describe_losses, split_loss_list


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
    specs = split_loss_list(value)
    if not specs:
        raise UserError(f"--losses {value!r}: expected loss specs like mcce,focal,tce:t=1")
    return tuple(specs)


def _common(func):
    """Options shared by ``run`` and ``train``."""
    for option in reversed([
        click.option("-c", "--config", default="quick", show_default=True,
                     help="Experiment YAML file, or a packaged preset's name (see 'fairseg-bench presets')."),
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


def _launcher_options(func):
    """Where the runs go (the YAML ``launcher:`` block, overridden here)."""
    for option in reversed([
        click.option("-j", "--jobs", type=click.IntRange(min=1),
                     help="Runs at once, each its own process (default: one per GPU, else 1; "
                          "on Slurm: the array's parallelism)."),
        click.option("--launcher", "launcher_name", type=click.Choice(["process", "local", "slurm"]),
                     help="process: child processes here (default); local: submitit's local executor; "
                          "slurm: one submitit job array per sweep (needs fairseg-bench[slurm])."),
        click.option("--partition", help="Slurm partition."),
        click.option("--account", help="Slurm account."),
        click.option("--gpus-per-run", type=click.IntRange(min=0), help="GPUs per run (Slurm; default 1)."),
        click.option("--nodes", type=click.IntRange(min=1), help="Nodes per run (Slurm; default 1)."),
        click.option("--cpus-per-run", type=click.IntRange(min=1), help="CPU cores per run (Slurm)."),
        click.option("--time", "time_min", type=click.FloatRange(min=0, min_open=True),
                     help="Time limit per run in minutes (Slurm; the run is requeued and resumes)."),
        click.option("--mem", type=click.FloatRange(min=0, min_open=True), help="Memory per run in GB (Slurm)."),
        click.option("--wait/--no-wait", default=False, show_default=True,
                     help="slurm: follow the jobs to the end and print the tables (else: submit and return)."),
    ]):
        func = option(func)
    return func


@click.command(epilog=_loss_list())
@_common
@click.option("--losses", callback=_losses, help="Comma-separated loss specs, e.g. mcce,focal,tce:t=1.")
@click.option("--seeds", callback=_seeds, help="Comma-separated seeds, e.g. 0,1,2.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write <out>/<experiment>/report at the end.")
@_launcher_options
def run(config, losses, seeds, data_root, out, device, iters, batch_size, quiet, report, jobs, launcher_name,
        partition, account, gpus_per_run, nodes, cpus_per_run, time_min, mem, wait):
    """Train and evaluate every loss × seed of an experiment; print the tables."""
    from fairseg_bench.launch.sweep import run_experiment

    launcher = {"name": launcher_name, "jobs": jobs, "partition": partition, "account": account,
                "gpus_per_run": gpus_per_run, "nodes": nodes, "cpus_per_run": cpus_per_run, "time": time_min,
                "mem": mem}
    cfg = _config(config, losses=losses, seeds=seeds, data_root=data_root, out=out, device=device,
                  iters=iters, batch_size=batch_size, quiet=quiet, launcher=launcher)
    if cfg.launcher.name in ("local", "slurm"):
        from fairseg_bench.launch.submit import require_submitit

        require_submitit()  # before anything is built or written
    run_experiment(cfg, report=report, wait=wait)


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

