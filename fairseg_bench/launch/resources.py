"""How this machine's devices are shared between ``jobs`` run processes."""
from __future__ import annotations

import os

from fairseg_bench.cpu_process import cpu_cores


def visible_gpus(device: str) -> list[str]:
    """The GPU ids runs may use: those in ``CUDA_VISIBLE_DEVICES``, else every one torch sees."""
    if device == "cpu":
        return []
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    return (listed or [str(i) for i in range(count)])[:count]


def default_jobs(device: str) -> int:
    """One run per GPU; one run at a time on CPU (it already uses every core)."""
    return max(1, len(visible_gpus(device)))


def threads_per_run(jobs: int, cores: int | None = None) -> int:
    """Threads for each of ``jobs`` concurrent runs so that jobs × threads ≤ cores (and never more
    than an ``OMP_NUM_THREADS`` the user set)."""
    threads = max(1, (cores or cpu_cores()) // jobs)
    user = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(user)) if user.isdigit() and int(user) > 0 else threads


def local_slots(jobs: int, device: str, cores: int | None = None) -> list[dict[str, str]]:
    """The environment of each of ``jobs`` process slots: one GPU each (round-robin when there are
    more slots than GPUs) and an equal share of the CPU threads."""
    gpus = visible_gpus(device)
    threads = str(threads_per_run(jobs, cores))
    slots = []
    for slot in range(jobs):
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
        slots.append(env)
    return slots
