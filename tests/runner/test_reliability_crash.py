"""Crash safety and concurrency of ``fairseg-bench run`` (real subprocesses, SIGKILL, two writers).

``FAIRSEG_BENCH_TEST_WRITE_DELAY`` (read in ``atomic.write_atomic``) holds every atomic write
between its complete temporary file and the rename, so a kill can land inside a write.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from support.configs import TINY

from fairseg_bench.results import read_record

ITERS = 12
CONFIG = (TINY.replace("[mcce, tce]", "[tce]").replace("iters: 6", f"iters: {ITERS}")
          .replace("checkpoint_every: 2", "checkpoint_every: 3"))
LABEL = "tce-t1-s0"
# what must not depend on an interruption (timing and environment may)
COMPARED = ("confusion_matrix", "per_image", "iou", "miou", "fairness", "sampler", "steps", "config_hash")


def command(config: Path, out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "fairseg_bench", "run", "-c", str(config), "--out", str(out), "--quiet",
            "--no-report", *map(str, extra)]


def environment(write_delay: float | None = None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FAIRSEG_BENCH_TEST_WRITE_DELAY", None)
    if write_delay:
        env["FAIRSEG_BENCH_TEST_WRITE_DELAY"] = str(write_delay)
    return env


def run(cmd, write_delay=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=environment(write_delay), timeout=timeout)


def kill_when(cmd, condition, write_delay=None, timeout=120) -> bool:
    """Start ``cmd``; SIGKILL it once ``condition()`` holds. Returns whether it was still running."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(write_delay))
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not condition() and time.monotonic() < deadline:
        time.sleep(0.002)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return alive


def assert_trusted_files_valid(run_dir: Path) -> None:
    """Every file a later run reads is complete: the checkpoint loads, metrics and history parse."""
    if (run_dir / "last.pt").exists():
        state = torch.load(run_dir / "last.pt", weights_only=True)
        assert 0 < state["step"] <= ITERS and state["step"] % 3 == 0
    if (run_dir / "metrics.json").exists():
        read_record(run_dir)
    if (run_dir / "history.csv").exists():
        assert len(pd.read_csv(run_dir / "history.csv")) == ITERS
    if (run_dir / "config.yaml").exists():
        assert "tce" in (run_dir / "config.yaml").read_text()


def same_results(a: Path, b: Path) -> None:
    ma, mb = read_record(a), read_record(b)
    for key in COMPARED:
        assert ma[key] == mb[key], key
    ha, hb = pd.read_csv(a / "history.csv"), pd.read_csv(b / "history.csv")
    assert ha.drop(columns="images_per_s").equals(hb.drop(columns="images_per_s"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the config."""
    root = tmp_path_factory.mktemp("reference")
    config = root / "crash.yaml"
    config.write_text(CONFIG)
    out = run(command(config, root / "runs"))
    assert out.returncode == 0, out.stderr
    return config, root / "runs" / "crash" / LABEL


def tmp_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(".*.tmp"))


@pytest.mark.parametrize("target", ["last.pt", pytest.param("metrics.json", marks=pytest.mark.slow)])
def test_kill_inside_a_write_leaves_the_previous_file_and_the_rerun_matches(reference, tmp_path, target):
    config, expected = reference
    run_dir = tmp_path / "runs" / "crash" / LABEL
    if target == "last.pt":  # the second checkpoint: the first must survive the kill, whole
        def inside_write():
            return (run_dir / "last.pt").exists() and any(p.name.startswith(".last.pt.") for p in tmp_files(run_dir))
    else:
        def inside_write():
            return any(p.name.startswith(".metrics.json.") for p in tmp_files(run_dir))
    assert kill_when(command(config, tmp_path / "runs"), inside_write, write_delay=0.3)
    assert tmp_files(run_dir), "the kill was meant to land inside a write"
    assert_trusted_files_valid(run_dir)
    assert not (run_dir / "metrics.json").exists()
    step = torch.load(run_dir / "last.pt", weights_only=True)["step"]
    assert step == (3 if target == "last.pt" else ITERS)
    rerun = run(command(config, tmp_path / "runs"))
    assert rerun.returncode == 0 and f"resuming from step {step}" in rerun.stderr, rerun.stderr
    same_results(expected, run_dir)


def _kill_at_random_points(config: Path, out: Path, delays: list[float]) -> None:
    run_dir = out / "crash" / LABEL
    for delay in delays:
        start = time.monotonic()
        kill_when(command(config, out), lambda start=start, delay=delay: time.monotonic() - start > delay,
                  write_delay=0.1)
        assert_trusted_files_valid(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_points_then_rerun_matches(reference, tmp_path, seed):
    """Kills at seeded random times (start-up, training, checkpoint and results writes)."""
    config, expected = reference
    rng = random.Random(seed)
    count = 4
    _kill_at_random_points(config, tmp_path / "runs", [rng.uniform(1.0, 6.0) for _ in range(count)])
    rerun = run(command(config, tmp_path / "runs"))
    assert rerun.returncode == 0, rerun.stderr
    same_results(expected, tmp_path / "runs" / "crash" / LABEL)


def test_truncated_checkpoint_is_reported_not_loaded(reference, tmp_path):
    config, expected = reference
    run_dir = tmp_path / "runs" / "crash" / LABEL
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_bytes((expected / "config.yaml").read_bytes())
    (run_dir / "last.pt").write_bytes((expected / "last.pt").read_bytes()[:3000])
    out = run(command(config, tmp_path / "runs"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert lines[-1].startswith("error: ") and "last.pt: not a readable checkpoint" in lines[-1], out.stderr
    assert not (run_dir / "metrics.json").exists()


def test_truncated_metrics_json_is_reported_and_recomputed(reference, tmp_path):
    config, expected = reference
    out_dir = tmp_path / "runs" / "crash"
    out_dir.mkdir(parents=True)
    run_dir = out_dir / LABEL
    run_dir.mkdir()
    for name in ("config.yaml", "last.pt", "history.csv", "samples.npz"):
        (run_dir / name).write_bytes((expected / name).read_bytes())
    (run_dir / "metrics.json").write_bytes((expected / "metrics.json").read_bytes()[:500])
    out = run(command(config, tmp_path / "runs"))
    assert out.returncode == 0, out.stderr
    assert "metrics.json: not valid JSON (truncated or corrupt?)" in out.stderr
    assert "not counted as finished" in out.stderr
    assert f"resuming from step {ITERS}" in out.stderr  # evaluated again from the final checkpoint
    same_results(expected, run_dir)


def test_two_concurrent_runs_share_an_output_folder(tmp_path):
    """Both exit 0; every run is trained and finished exactly once; every file is valid."""
    config = tmp_path / "shared.yaml"
    config.write_text(TINY.replace("[mcce, tce]", "[mcce, focal, tce]").replace("seeds: [0]", "seeds: [0, 1]"))
    cmd = command(config, tmp_path / "runs")
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment())
             for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    exp = tmp_path / "runs" / "shared"
    runs = sorted(p.name for p in exp.iterdir() if not p.name.startswith("."))
    assert runs == sorted(f"{loss}-s{seed}" for loss in ("mcce", "focal", "tce-t1") for seed in (0, 1))
    stderr = "".join(err for _, err in results)
    for name in runs:
        run_dir = exp / name
        assert stderr.count(f"{run_dir}: done") == 1, (name, stderr)  # trained and written once
        assert stderr.count(f"{run_dir}: training ") == 1, (name, stderr)
        assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "history.csv", "last.pt",
                                                              "metrics.json", "samples.npz"]
        metrics = read_record(run_dir)
        assert metrics["steps"] == 6 and len(pd.read_csv(run_dir / "history.csv")) == 6
        assert torch.load(run_dir / "last.pt", weights_only=True)["step"] == 6
    cache = [p for p in (exp / ".cache").iterdir()]
    assert cache and not [p for p in cache if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_two_concurrent_runs_repeated(tmp_path):
    for attempt in range(3):
        (tmp_path / str(attempt)).mkdir()
        test_two_concurrent_runs_share_an_output_folder(tmp_path / str(attempt))

