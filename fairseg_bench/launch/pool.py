"""``run --jobs N``: up to N runs at once on this machine, each a ``fairseg-bench train`` process.

A child process (not a forked worker) per run: it sets up CUDA and its thread pools from its own
environment (``CUDA_VISIBLE_DEVICES``, ``OMP_NUM_THREADS``), a crash or an out-of-memory kill
costs that run only, and its log is the exact command a user can rerun by hand. The children
read the sweep's resolved config from ``<experiment>/.sweep/sweep.yaml``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fairseg_bench.config import dump_config
from fairseg_bench.launch.monitor import Failure, Progress, RunSpec, sleep
from fairseg_bench.launch.resources import default_jobs, local_slots
from fairseg_bench.run_status import SWEEP_DIR, log_file, mark_queued, read_status, write_status


def sweep_config_file(exp) -> Path:
    """The sweep's resolved config, written once for the children to read."""
    from fairseg_bench.atomic import write_atomic

    path = exp.folder / SWEEP_DIR / "sweep.yaml"
    write_atomic(path, dump_config(exp.cfg))
    return path


def train_command(config_file: Path, spec: RunSpec) -> list[str]:
    """The command one run's process executes."""
    return [sys.executable, "-m", "fairseg_bench", "train", "-c", str(config_file), "--loss", spec.loss,
            "--seed", str(spec.seed), "--quiet"]


class Child:
    """One run's process in a slot."""

    def __init__(self, spec: RunSpec, slot: int, env: dict[str, str], config_file: Path):
        self.spec, self.slot, self.log = spec, slot, log_file(spec.run_dir)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"$ {' '.join(train_command(config_file, spec))}  # {env}\n".encode())
            out.flush()
            self.process = subprocess.Popen(train_command(config_file, spec), stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env={**os.environ, **env})
        self.start = time.monotonic()

    def failure(self) -> Failure | None:
        """None if the run ended well; else why (the last line of its log names the error)."""
        code = self.process.returncode
        if code == 0:
            return None
        reason = read_status(self.spec.run_dir).get("error") or _last_error_line(self.log)
        return Failure(self.spec.name, f"exit status {code}" + (f": {reason}" if reason else ""), self.log)


def _last_error_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if line.startswith("error:")), lines[-1] if lines else "")


def run_pool(exp, specs: list[RunSpec], launcher) -> list[Failure]:
    """Run every spec in up to ``launcher.jobs`` processes; returns the failures (the others go on)."""
    jobs = min(launcher.jobs or default_jobs(exp.cfg.device), len(specs)) or 1
    slots = local_slots(jobs, exp.device.type)
    config_file = sweep_config_file(exp)
    mark_queued(s.run_dir for s in specs)
    queue, running, failures = list(specs), {}, []
    progress = Progress(specs)
    try:
        while queue or running:
            for slot in [s for s in range(jobs) if s not in running]:
                if not queue:
                    break
                spec = queue.pop(0)
                running[slot] = Child(spec, slot, slots[slot], config_file)
                where = ", ".join(f"{k}={v}" for k, v in slots[slot].items() if k != "MKL_NUM_THREADS")
                progress.started(spec, f"pid {running[slot].process.pid}, {where}")
            for slot, child in list(running.items()):
                progress.poll(child.spec)
                if child.process.poll() is None:
                    continue
                del running[slot]
                failure = child.failure()
                if failure:
                    write_status(child.spec.run_dir, "failed", error=failure.reason, log=str(child.log))
                    failures.append(failure)
                progress.ended(child.spec, failure, time.monotonic() - child.start)
            if running:
                sleep()
    finally:
        for child in running.values():  # interrupted: stop the children (their runs resume later)
            child.process.send_signal(signal.SIGINT)
        for child in running.values():
            try:
                child.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.process.kill()
    return failures
