"""Single-thread training processes sharing the cores, as ``make run`` runs them: plain, and tuned as
run processes are (``fairseg_bench.cpu_process``: SCHED_BATCH and glibc's kept heap).

Each round starts ``--procs`` processes at once (default: the cores + 1, ``make run``'s three on two
cores), each training the default model (``unet_add``, batch 4 of 64×128, the library's MCCE, Adam,
channels_last, ``train.amp: auto``'s precision) for ``--steps`` steps after two warm-up steps;
the plain and tuned rounds alternate. The table gives, per variant, the median over the processes
of the seconds per step (wall clock, and the process's user and system CPU time) and the minor
page faults per step; the last line the ratio plain / tuned.

    python benchmarks/bench_process.py [--procs 3] [--steps 150] [--rounds 4]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_process.py   # an AVX2 CPU
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def child(steps: int, tune: bool) -> None:
    """One process's loop; prints its per-step figures as JSON."""
    import torch

    from fairseg_bench.cpu_process import tune_training_process
    from fairseg_bench.doctor import training_step
    from fairseg_bench.precision import resolve_precision

    applied = tune_training_process() if tune else []
    torch.set_num_threads(1)
    step = training_step(resolve_precision("auto", torch.device("cpu")).dtype, model_name="unet_add", batch=4,
                         size=(64, 128))
    for _ in range(2):
        step()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall / steps, "user": (after.ru_utime - before.ru_utime) / steps,
                      "sys": (after.ru_stime - before.ru_stime) / steps,
                      "faults": (after.ru_minflt - before.ru_minflt) / steps, "applied": applied}))


def round_of(procs: int, steps: int, tune: bool) -> list[dict]:
    """``procs`` children at once; their JSON lines."""
    command = [sys.executable, __file__, "--child", "--steps", str(steps)] + (["--tune"] if tune else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    children = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(procs)]
    return [json.loads(c.communicate()[0].strip().splitlines()[-1]) for c in children]


def main(argv=None) -> None:
    from fairseg_bench.cpu_process import cpu_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=cpu_cores() + 1)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per variant, alternating")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tune", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.steps, args.tune)
    rows: dict[str, list[dict]] = {"plain": [], "tuned": []}
    for r in range(args.rounds):
        for name in (("plain", "tuned") if r % 2 == 0 else ("tuned", "plain")):
            rows[name] += round_of(args.procs, args.steps, name == "tuned")
    applied = ", ".join(rows["tuned"][0]["applied"]) or "nothing (not Linux/glibc)"
    print(f"\n{args.procs} single-thread processes on {cpu_cores()} cores, {args.steps} steps each, "
          f"{args.rounds} alternating rounds per variant; tuned: {applied}\n")
    print("| variant | wall s/step | user s/step | sys s/step | page faults/step |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for name, results in rows.items():
        medians[name] = {k: statistics.median(r[k] for r in results) for k in ("wall", "user", "sys", "faults")}
        m = medians[name]
        print(f"| {name} | {m['wall']:.4f} | {m['user']:.4f} | {m['sys']:.4f} | {m['faults']:.0f} |")
    print(f"\nplain / tuned, wall per step: {medians['plain']['wall'] / medians['tuned']['wall']:.3f}×")


if __name__ == "__main__":
    main()
