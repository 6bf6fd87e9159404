"""A sweep: every loss × seed of a config, trained here one after the other or started through the
configured launcher. Sits above the runner (which trains one run) and the launchers (which start
runs elsewhere); the caller prints the tables and writes the report of what it finished."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fairseg_bench import runner
from fairseg_bench.config import ExperimentConfig
from fairseg_bench.launch import RunSpec, launch_runs
from fairseg_bench.launch.resources import default_jobs
from fairseg_bench.run_status import is_finished


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep left: the experiment's folder, its finished run folders (none when the runs were
    only submitted) and, if some did not finish, why."""

    folder: Path
    finished: list[Path]
    error: str | None = None


def run_experiment(cfg: ExperimentConfig, *, wait: bool = True) -> SweepOutcome:
    """Every loss × seed of ``cfg``, here or through ``cfg.launcher``."""
    if cfg.launcher.name in ("local", "slurm"):
        from fairseg_bench.launch.submit import require_submitit

        require_submitit()  # before anything is built or written
    losses = runner.parse_losses(cfg)
    exp = runner.prepare(cfg)  # (the class index is cached before any launched run needs it)
    folders = [runner.run_folder(exp, loss, seed) for loss in losses for seed in cfg.seeds]
    launcher = cfg.launcher
    if launcher.name == "process" and (launcher.jobs or default_jobs(cfg.device)) == 1:
        stopped = runner.run_sequentially(exp, losses)
        error = f"{len(stopped)} run(s) stopped on a NaN/Inf loss: {', '.join(stopped)}" if stopped else None
    else:
        failures = _launch(exp, losses, wait=wait)
        if failures is None:  # submitted to Slurm, not followed
            return SweepOutcome(exp.folder, [])
        listed = "; ".join(f"{f.name} (log: {f.log})" for f in failures)
        error = f"{len(failures)} of {len(folders)} run(s) failed: {listed}" if failures else None
    return SweepOutcome(exp.folder, [f for f in folders if is_finished(f, exp.config_hash)], error)


def _launch(exp: runner.Experiment, losses, *, wait: bool):
    """The unfinished runs through the configured launcher (``fairseg_bench.launch``)."""
    specs = []
    for loss in losses:
        for seed in exp.cfg.seeds:
            run_dir = runner.run_folder(exp, loss, seed)
            if is_finished(run_dir, exp.config_hash):
                runner.log(f"{run_dir}: finished, skipped")
            else:
                specs.append(RunSpec(loss.text, loss.label, seed, run_dir))
    return launch_runs(exp, specs, exp.cfg.launcher, wait=wait) if specs else []
