"""Launchers: the runs of a sweep as separate processes, on this machine or on a Slurm cluster.

Every launcher runs the same thing for one (loss, seed): :func:`fairseg_bench.runner.run_task`,
which trains in the run's folder, resumes from ``last.pt`` and takes the run's lock, exactly as
``fairseg-bench train`` does. What differs is who starts it:

- ``process`` (``run --jobs N``): up to N child processes ``fairseg-bench train`` on this
  machine (:mod:`.pool`); each sees one GPU (``CUDA_VISIBLE_DEVICES``) or an equal share of the
  CPU cores (``OMP_NUM_THREADS``), and writes its output to ``<experiment>/.sweep/<run>.log``;
- ``local`` and ``slurm``: submitit's ``LocalExecutor`` or one Slurm job array per sweep
  (:mod:`.submit`); each task is a :class:`~fairseg_bench.launch.submit.RunTask`, requeued from
  its ``last.pt`` when preempted or out of time, started with torch.distributed when a run has
  several GPUs or nodes.

Progress comes from the runs' status records (:mod:`fairseg_bench.run_status`): one line per
run when it starts, at each checkpoint, and when it finishes or fails (:mod:`.monitor`).
"""
from __future__ import annotations

from fairseg_bench.launch.monitor import Failure, RunSpec
from fairseg_bench.launch.resources import local_slots

__all__ = ["Failure", "RunSpec", "launch_runs", "local_slots"]


def launch_runs(exp, specs: list[RunSpec], launcher, *, wait: bool = True) -> list[Failure] | None:
    """Run ``specs`` with the ``launcher`` config; the failed runs, or None if only submitted."""
    if launcher.name == "process":
        from fairseg_bench.launch.pool import run_pool

        return run_pool(exp, specs, launcher)
    from fairseg_bench.launch.submit import run_submitit

    return run_submitit(exp, specs, launcher, wait=wait)
