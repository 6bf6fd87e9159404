"""A sweep: every loss × seed of a config, trained here one after the other or started through
the configured launcher, then the tables and the report. Sits above the runner (which trains one
run) and the launchers (which start runs elsewhere)."""
from __future__ import annotations

from pathlib import Path

from fairseg_bench import runner
from fairseg_bench.config import ExperimentConfig
from fairseg_bench.errors import UserError
from fairseg_bench.launch import RunSpec, launch_runs
from fairseg_bench.launch.resources import default_jobs


def run_experiment(cfg: ExperimentConfig, *, report: bool = True, wait: bool = True) -> list[Path]:
    """Every loss × seed of ``cfg``, here or through ``cfg.launcher``; prints the tables and writes
    the report. Returns the run folders."""
    losses = runner.parse_losses(cfg)
    exp = runner.prepare(cfg)  # (the class index is cached before any launched run needs it)
    folders = [runner.run_folder(exp, loss, seed) for loss in losses for seed in cfg.seeds]
    launcher = cfg.launcher
    if launcher.name == "process" and (launcher.jobs or default_jobs(cfg.device)) == 1:
        stopped = runner.train_here(exp, losses)
        error = f"{len(stopped)} run(s) stopped on a NaN/Inf loss: {', '.join(stopped)}" if stopped else None
    else:
        failures = _launch(exp, losses, wait=wait)
        if failures is None:  # submitted to Slurm, not followed
            return folders
        listed = "; ".join(f"{f.name} (log: {f.log})" for f in failures)
        error = f"{len(failures)} of {len(folders)} run(s) failed: {listed}" if failures else None
    runner.summarize_runs(exp, folders, report)
    if error:
        raise UserError(error)
    return folders


def _launch(exp: runner.Experiment, losses, *, wait: bool):
    """The unfinished runs through the configured launcher (``fairseg_bench.launch``)."""
    specs = []
    for loss in losses:
        for seed in exp.cfg.seeds:
            run_dir = runner.run_folder(exp, loss, seed)
            if runner.is_finished(run_dir, exp.config_hash):
                runner.log(f"{run_dir}: finished, skipped")
            else:
                specs.append(RunSpec(loss.text, loss.label, seed, run_dir))
    return launch_runs(exp, specs, exp.cfg.launcher, wait=wait) if specs else []
