"""Run every ``benchmarks/bench_*.py`` (or those named) and print one summary table.

Each benchmark runs as its own process with its default arguments; its own table is printed as
it comes, and the summary table lists every benchmark with its exit status and wall time. The exit
status is 1 if any benchmark failed.

    python benchmarks/run_all.py            # all of them (``make bench``)
    python benchmarks/run_all.py harness    # only bench_harness.py
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[Path]:
    """The benchmark scripts, all or the named ones (``harness`` or ``bench_harness.py``)."""
    scripts = sorted(HERE.glob("bench_*.py"))
    if not names:
        return scripts
    wanted = {n.removeprefix("bench_").removesuffix(".py") for n in names}
    chosen = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    missing = wanted - {s.stem.removeprefix("bench_") for s in chosen}
    if missing:
        sys.exit(f"error: no benchmark named {', '.join(sorted(missing))} (have: "
                 f"{', '.join(s.stem.removeprefix('bench_') for s in scripts)})")
    return chosen


def run(script: Path) -> tuple[int, float, list[str]]:
    """Run one benchmark, echoing its output; returns (exit status, seconds, its output lines)."""
    print(f"\n## {script.name}\n", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=HERE.parent)
    lines = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line.rstrip("\n"))
    return proc.wait(), time.perf_counter() - start, lines


def main(argv: list[str]) -> int:
    results = [(script, *run(script)) for script in discover(argv)]
    print("\n## Summary\n")
    print("| benchmark | status | seconds |")
    print("|---|---|---:|")
    for script, status, seconds, _ in results:
        print(f"| {script.stem} | {'ok' if status == 0 else f'failed ({status})'} | {seconds:.0f} |")
    return max((status != 0 for _, status, _, _ in results), default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
