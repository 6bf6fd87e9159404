"""The device check and the step benchmark on the CPU: everything in them that does not need CUDA."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_process  # noqa: E402
import bench_step  # noqa: E402
import gpu_check  # noqa: E402


def test_confusion_check_dry(capsys):
    assert gpu_check.main(["confusion", "--dry", "--maps", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| cpu matrix == CPU matrix | yes |" in out and "| update / copy |" in out


def test_train_check_dry(capsys):
    assert gpu_check.main(["train", "--dry", "--steps", "4", "--warmup", "1", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "| bare loop |" in out and "| harness (engine.train) |" in out and "unet_tiny" in out


def test_gpu_check_refuses_without_cuda(monkeypatch):
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA device"):
        gpu_check.main(["confusion"])


def test_step_benchmark_runs(capsys):
    bench_step.main(["--model", "unet_tiny", "--batch", "2", "--size", "32,32", "--rounds", "2", "--steps", "1",
                     "--threads", "1"])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].replace("← amp: auto", "").strip(): line
            for line in out.splitlines() if line.startswith("| c")}
    assert set(bench_step.VARIANTS) <= set(rows)
    assert rows["contiguous, float32 (before)"].rstrip().endswith("| 1.00× | 1.00× |")  # the reference
    from fairseg_bench.precision import cpu_bf16_native

    marked = [name for name, line in rows.items() if "← amp: auto" in line]
    chosen = "channels_last, bfloat16 (amp: bf16)" if cpu_bf16_native() else "channels_last, float32 (amp: false)"
    assert marked == [chosen]


@pytest.mark.slow  # ~8 s of process start-ups; the settings it times are tested in tests/launch
def test_process_benchmark_runs_both_variants(capsys):
    """Two processes a round, one round each way: the table, and the settings the tuned ones took."""
    bench_process.main(["--procs", "2", "--steps", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [float(v) for v in line.split("|")[2:6]]
            for line in out.splitlines() if line.startswith(("| plain", "| tuned"))}
    assert set(rows) == {"plain", "tuned"} and all(v[0] > 0 and v[1] > 0 for v in rows.values())
    assert "plain / tuned, wall per step:" in out
    if sys.platform.startswith("linux"):
        assert "tuned: SCHED_BATCH" in out


@pytest.mark.slow
def test_gpu_check_script_dry(tmp_path):
    """The whole script, --dry: (a), (b) and (c) with two runs at once (a minute or two on 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OUT": str(tmp_path), "PYTHON": sys.executable}
    out = subprocess.run([str(BENCHMARKS / "gpu_check.sh"), "--dry"], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "| --jobs 2 |" in out.stdout and "2 done" in out.stdout
    assert "mcce-s0: --jobs 2 confusion matrix == --jobs 1" in out.stdout
