"""``fairseg-bench run / train``: parse options, build the config, call the sweep or the runner; print the tables."""
from __future__ import annotations

import functools

import click

from fairseg_bench.cli.options import data_root_option
from fairseg_bench.errors import UserError
from fairseg_bench.loss_specs import describe_losses, split_loss_list


def _losses(ctx, param, value):
    """``mcce,focal,tce:t=0.1`` -> specs; commas inside a spec's parameters stay with it."""
    if value is None:
        return None
    specs = split_loss_list(value)
    if not specs:
        raise UserError(f"--losses {value!r}: expected loss specs like mcce,focal,tce:t=1")
    return tuple(specs)


def _grouped(group: str, options: dict):
    """Add ``options`` (``{key: a click option whose destination is key}``) to a command that receives
    their values as one mapping ``{key: value}``: its parameter ``group``."""

    def decorate(func):
        @functools.wraps(func)
        def command(**kwargs):
            values = {key: kwargs.pop(key) for key in options}
            return func(**kwargs, **{group: values})

        for option in reversed(list(options.values())):
            command = option(command)
        return command

    return decorate


def _common(func):
    """``-c`` and the config overrides shared by ``run`` and ``train`` (the mapping ``overrides``)."""
    func = _grouped("overrides", {
        "data_root": data_root_option("Dataset folder."),
        "out": click.option("--out", help="Output folder (default: the config's, 'runs')."),
        "device": click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                               help="Default: the config's (auto)."),
        "iters": click.option("--iters", type=int, help="Training steps per run."),
        "batch_size": click.option("--batch-size", type=int, help="Total training batch size."),
        "quiet": click.option("--quiet", is_flag=True, default=None, help="No progress bars."),
    })(func)
    return click.option("-c", "--config", default="quick", show_default=True,
                        help="Experiment YAML file, or a packaged preset's name (see 'fairseg-bench presets').")(func)


# Where the runs go: the fields of the YAML ``launcher:`` block (LauncherConfig, which checks them),
# overridden here; the command receives them as the mapping ``launcher``.
_launcher_options = _grouped("launcher", {
    "jobs": click.option("-j", "--jobs", type=int,
                         help="Runs at once, each its own process (default: one per GPU, else 1; "
                              "on Slurm: the array's parallelism)."),
    "name": click.option("--launcher", "name", metavar="[process|local|slurm]",
                         help="process: child processes here (default); local: submitit's local executor; "
                              "slurm: one submitit job array per sweep (needs fairseg-bench[slurm])."),
    "partition": click.option("--partition", help="Slurm partition."),
    "account": click.option("--account", help="Slurm account."),
    "gpus_per_run": click.option("--gpus-per-run", type=int, help="GPUs per run (Slurm; default 1)."),
    "nodes": click.option("--nodes", type=int, help="Nodes per run (Slurm; default 1)."),
    "cpus_per_run": click.option("--cpus-per-run", type=int, help="CPU cores per run (Slurm)."),
    "time": click.option("--time", type=float, help="Time limit per run in minutes (Slurm; the run is requeued "
                                                    "and resumes)."),
    "mem": click.option("--mem", type=float, help="Memory per run in GB (Slurm)."),
})


def _loss_list() -> str:
    """The registered loss specs with their one-line summaries, for ``run --help``."""
    return "\b\nLoss specs:\n" + "\n".join(f"  {usage}  {summary}" for usage, summary in describe_losses().items())


@click.command(epilog=_loss_list())
@_common
@click.option("--losses", callback=_losses, help="Comma-separated loss specs, e.g. mcce,focal,tce:t=1.")
@click.option("--seeds", help="Comma-separated seeds, e.g. 0,1,2 (checked with the config's seeds).")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write <out>/<experiment>/report at the end.")
@_launcher_options
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="slurm: follow the jobs to the end and print the tables (else: submit and return).")
def run(config, overrides, losses, seeds, report, launcher, wait):
    """Train and evaluate every loss × seed of an experiment; print the tables."""
    from fairseg_bench.config import load_config
    from fairseg_bench.launch.sweep import run_experiment

    cfg = load_config(config).override(losses=losses, seeds=seeds, launcher=launcher, **overrides)
    sweep = run_experiment(cfg, wait=wait)
    _print_tables_and_report(sweep, report)
    if sweep.error:
        raise UserError(sweep.error)


def _print_tables_and_report(sweep, report: bool) -> None:
    """Table 1 and Table 3 of the finished runs on stdout; with ``report``, ``<experiment>/report``
    (a failure there only warns: the results are on disk)."""
    if not sweep.finished:
        return
    from fairseg_bench.report import print_tables

    print_tables(sweep.finished)  # the default reference is the reader's rule (Results.resolve), as `report`'s
    if not report:
        return
    out = sweep.folder / "report"
    try:
        from fairseg_bench.report import build_report

        build_report([sweep.folder], out=out)
        click.echo(f"report: {out}", err=True)
    except Exception as exc:
        click.echo(f"warning: the report could not be written ({type(exc).__name__}: {exc})", err=True)


@click.command()
@_common
@click.option("--loss", "loss", default="mcce", show_default=True, help="One loss spec, e.g. tce:t=1.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
def train(config, overrides, loss, seed):
    """Train and evaluate one loss and seed (what torchrun launches for multi-GPU)."""
    from fairseg_bench.config import load_config
    from fairseg_bench.runner import run_task

    run_task(load_config(config).override(**overrides), loss, seed)
