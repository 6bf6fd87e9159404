"""``run --launcher slurm|local``: the sweep as submitit jobs.

``slurm``: one job array per sweep (``executor.map_array``), one task per (loss, seed), with
the array's parallelism set by ``--jobs``. A run with several GPUs (``--gpus-per-run``) or
nodes gets one Slurm task per GPU, and each task joins torch.distributed through submitit's
``TorchDistributedEnvironment`` (the variables ``torchrun`` sets). A task that is preempted or
reaches its time limit is requeued by submitit (:class:`RunTask` is ``Checkpointable``) and
resumes from the run's ``last.pt``: the checkpoint on disk is the only state it needs.

``local``: the same tasks through submitit's ``LocalExecutor`` (at most ``--jobs`` at once),
which also requeues a task that receives the preemption signal: the tests run this path.

submitit is an optional dependency (``pip install fairseg-bench[slurm]``).
"""
from __future__ import annotations

import os
from pathlib import Path

from fairseg_bench.errors import UserError
from fairseg_bench.launch.monitor import Failure, Progress, RunSpec, log, sleep
from fairseg_bench.launch.resources import default_jobs, local_slots
from fairseg_bench.run_status import SWEEP_DIR, mark_queued, read_status, write_status

try:
    import submitit
    from submitit.helpers import Checkpointable
except ImportError:  # the launcher is an optional extra; RunTask stays importable for the tests
    submitit = None
    Checkpointable = object


def require_submitit():
    """submitit, or a one-line error saying how to install it."""
    if submitit is None:
        raise UserError("--launcher local|slurm needs submitit: pip install 'fairseg-bench[slurm]'")
    return submitit


class RunTask(Checkpointable):
    """One array task: train one (loss, seed) of the sweep in ``config_file``, from ``cwd``.

    Requeued as it is (``Checkpointable.checkpoint`` resubmits the same call): the run resumes
    from its own ``last.pt``, so nothing else needs saving when the signal comes.
    """

    def __init__(self, config_file: str, cwd: str, threads: int | None = None):
        self.config_file, self.cwd, self.threads = str(config_file), str(cwd), threads

    def __call__(self, loss: str, seed: int) -> str:
        from fairseg_bench.config import load_config
        from fairseg_bench.runner import run_task

        os.chdir(self.cwd)
        self._set_threads()
        self._export_distributed()
        return str(run_task(load_config(self.config_file), loss, seed))

    def _set_threads(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)

    @staticmethod
    def _export_distributed() -> None:
        """Several tasks per run: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT as torchrun sets them.

        Every task keeps sight of all the node's GPUs and uses ``cuda:LOCAL_RANK``.
        """
        try:
            env = submitit.JobEnvironment()
        except (AttributeError, RuntimeError):  # (called outside a submitit job)
            return
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def executor_parameters(launcher, name: str, jobs: int | None) -> dict:
    """submitit's (AutoExecutor) parameters for one run per array task."""
    gpus = launcher.gpus_per_run
    per_node = max(gpus // launcher.nodes, 1) if gpus else 0
    params = {
        "name": name, "timeout_min": int(round(launcher.time)), "nodes": launcher.nodes,
        "tasks_per_node": max(per_node, 1), "gpus_per_node": per_node,
        "cpus_per_task": launcher.cpus_per_run or (8 if per_node else 4),
        "slurm_signal_delay_s": 120,  # time to leave for the requeue before the limit
    }
    if launcher.mem:
        params["mem_gb"] = launcher.mem
    if launcher.partition:
        params["slurm_partition"] = launcher.partition
    if launcher.account:
        params["slurm_account"] = launcher.account
    if jobs:
        params["slurm_array_parallelism"] = jobs
    return params


def make_executor(launcher, folder: Path, name: str, jobs: int | None):
    """The submitit executor: Slurm through AutoExecutor, or the LocalExecutor."""
    sub = require_submitit()
    if launcher.name == "slurm":
        executor = sub.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(**executor_parameters(launcher, name, jobs))
    else:
        executor = sub.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=int(round(launcher.time)), tasks_per_node=1,
                                   gpus_per_node=0, signal_delay_s=10)
    return executor


def run_submitit(exp, specs: list[RunSpec], launcher, *, wait: bool = True) -> list[Failure] | None:
    """Submit the sweep; with ``wait`` (always for ``local``), follow it to the end."""
    from fairseg_bench.launch.pool import sweep_config_file

    folder = exp.folder / SWEEP_DIR / "submitit"
    config_file = sweep_config_file(exp)
    if launcher.name == "local":
        jobs = min(launcher.jobs or default_jobs(exp.cfg.device), len(specs))
        threads = int(local_slots(jobs, exp.device.type)[0]["OMP_NUM_THREADS"])
    else:
        jobs, threads = launcher.jobs, launcher.cpus_per_run
    task = RunTask(config_file.resolve(), Path.cwd(), threads)
    executor = make_executor(launcher, folder, exp.cfg.name, jobs)
    mark_queued(s.run_dir for s in specs)
    if launcher.name == "slurm":
        submitted = executor.map_array(task, [s.loss for s in specs], [s.seed for s in specs])
        for spec, job in zip(specs, submitted):
            write_status(spec.run_dir, "queued", job_id=str(job.job_id), log=str(job.paths.stderr))
        log(f"submitted {len(specs)} run(s) as Slurm job array {submitted[0].job_id.split('_')[0]}; "
            f"follow with: fairseg-bench status {exp.folder}")
        if not wait:
            return None
        return _follow(specs, dict(zip((s.name for s in specs), submitted)), Progress(specs))
    return _run_local(executor, task, specs, jobs)


def _run_local(executor, task, specs: list[RunSpec], jobs: int) -> list[Failure]:
    """At most ``jobs`` local tasks at once, each a map_array of the free slots' runs."""
    queue, running, failures = list(specs), {}, []
    progress = Progress(specs)
    while queue or running:
        free = jobs - len(running)
        if free and queue:
            batch, queue = queue[:free], queue[free:]
            for spec, job in zip(batch, executor.map_array(task, [s.loss for s in batch], [s.seed for s in batch])):
                running[spec] = job
                progress.started(spec, f"local job {job.job_id}")
        for spec, job in list(running.items()):
            progress.poll(spec)
            if job.done():
                del running[spec]
                failure = _job_failure(spec, job)
                failures += [failure] if failure else []
                progress.ended(spec, failure)
        if running:
            sleep()
    return failures


def _follow(specs: list[RunSpec], jobs: dict, progress: Progress) -> list[Failure]:
    failures, pending = [], {s.name: s for s in specs}
    while pending:
        for name, spec in list(pending.items()):
            progress.poll(spec)
            if jobs[name].done():
                del pending[name]
                failure = _job_failure(spec, jobs[name])
                failures += [failure] if failure else []
                progress.ended(spec, failure)
        if pending:
            sleep(5)
    return failures


def _job_failure(spec: RunSpec, job) -> Failure | None:
    """None if the job returned; else its exception's last line and its stderr file."""
    exc = job.exception()
    if exc is None:
        return None
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    reason = read_status(spec.run_dir).get("error") or (lines[-1] if lines else type(exc).__name__)
    log_path = Path(job.paths.stderr)
    write_status(spec.run_dir, "failed", error=reason, log=str(log_path))
    return Failure(spec.name, reason, log_path)
