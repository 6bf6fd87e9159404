"""Parallel sweeps: ``run --jobs N`` (child processes), ``--launcher local`` (submitit's local
executor, with a preemption and requeue), a failing run among others, the Slurm job array up to
the submitit call, and ``fairseg-bench status`` — on a tiny CPU config, compared bit for bit with
``--jobs 1``."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from support.cli import call_main as cli
from support.cli import fairseg

from fairseg_bench.config import config_from_dict, config_hash, load_config
from fairseg_bench.launch import resources
from fairseg_bench.results import read_record
from fairseg_bench.run_status import read_status, sweep_rows

ITERS = 8
TINY = f"""
losses: [mcce, tce]
seeds: [0]
device: cpu
data:
  dataset: synthetic
  train_options: {{num_images: 16, size: [32, 64], seed: 3}}
  val_options: {{num_images: 6, size: [32, 64], seed: 3}}
model: {{name: unet_tiny}}
optim: {{name: adam, lr: 0.002}}
train: {{iters: {ITERS}, batch_size: 4, checkpoint_every: 2}}
eval: {{batch_size: 4, samples: 2}}
"""
RUNS = ("mcce-s0", "tce-t1-s0")
SAME = ("confusion_matrix", "per_image", "iou", "fairness", "sampler", "steps", "config_hash")


def write_config(folder: Path, text: str = TINY) -> Path:
    config = folder / "tiny.yaml"
    config.write_text(text)
    return config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run one after the other in one process (``--jobs 1``)."""
    root = tmp_path_factory.mktemp("jobs1")
    out = fairseg("run", "-c", write_config(root), "--out", root / "runs", "--quiet", "--no-report", "--jobs", "1")
    assert out.returncode == 0, out.stderr
    return root / "runs" / "tiny"


def assert_same_runs(expected: Path, actual: Path, runs=RUNS) -> None:
    """Bit-identical confusion matrices, per-image statistics, metrics and histories; the same run config."""
    for run in runs:
        a, b = read_record(expected / run), read_record(actual / run)
        for key in SAME:
            assert a[key] == b[key], (run, key)
        ha, hb = (pd.read_csv(folder / run / "history.csv").drop(columns="images_per_s")
                  for folder in (expected, actual))
        assert ha.equals(hb), run
        strip = lambda text: [line for line in text.splitlines() if not line.startswith("out:")]  # noqa: E731
        assert strip((expected / run / "config.yaml").read_text()) == strip((actual / run / "config.yaml").read_text())


def test_jobs_2_matches_jobs_1(reference, tmp_path):
    out = fairseg("run", "-c", write_config(tmp_path), "--out", tmp_path / "runs", "--quiet", "--no-report",
                  "--jobs", "2")
    assert out.returncode == 0, out.stderr
    exp = tmp_path / "runs" / "tiny"
    assert_same_runs(reference, exp)
    for run in RUNS:  # one progress line per event of each run; a log per run
        lines = [line for line in out.stderr.splitlines() if f" {run} " in line]
        assert "started (pid " in lines[0] and "finished in" in lines[-1], lines
        assert "resuming" not in (exp / ".sweep" / f"{run}.log").read_text()
        assert read_status(exp / run)["state"] == "done"
    assert "[2/2 done]" in out.stderr
    assert "| mcce |" in out.stdout and "| tce-t1 |" in out.stdout  # the summary tables at the end
    assert sorted(p.name for p in (exp / "mcce-s0").iterdir()) == ["config.yaml", "history.csv", "last.pt",
                                                                   "metrics.json", "samples.npz"]


@pytest.mark.slow  # the default suite runs the local launcher in the stricter preemption test below
def test_launcher_local_matches_jobs_1(reference, tmp_path):
    out = fairseg("run", "-c", write_config(tmp_path), "--out", tmp_path / "runs", "--quiet", "--no-report",
                  "--launcher", "local", "--jobs", "2")
    assert out.returncode == 0, out.stderr
    assert_same_runs(reference, tmp_path / "runs" / "tiny")
    assert "local job" in out.stderr and "| tce-t1 |" in out.stdout


def test_local_preempted_run_is_requeued_and_ends_bit_identical(reference, tmp_path):
    """SIGUSR2 (Slurm's preemption/time-limit signal) mid-training: submitit requeues the task,
    which resumes from last.pt and ends as the uninterrupted run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FAIRSEG_BENCH_TEST_WRITE_DELAY": "0.3"}  # slow checkpoints
    cmd = [sys.executable, "-m", "fairseg_bench", "run", "-c", str(write_config(tmp_path)), "--losses", "tce",
           "--out", str(tmp_path / "runs"), "--quiet", "--no-report", "--launcher", "local"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run_dir = tmp_path / "runs" / "tiny" / "tce-t1-s0"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        record = read_status(run_dir)
        if record.get("state") == "running" and record.get("step", 0) >= 2:
            break
        time.sleep(0.02)
    record = read_status(run_dir)
    assert record.get("step", 0) < ITERS, "the run ended before it could be interrupted"
    os.kill(record["pid"], signal.SIGUSR2)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    logs = "".join(p.read_text() for p in (tmp_path / "runs" / "tiny" / ".sweep" / "submitit").glob("*.err"))
    assert "preempted" in logs and "resuming from step" in logs, logs[-3000:]
    assert read_status(run_dir)["pid"] != record["pid"]  # trained on by a new process
    assert_same_runs(reference, tmp_path / "runs" / "tiny", runs=["tce-t1-s0"])


def test_failing_run_leaves_the_other_finished(tmp_path):
    exp = tmp_path / "runs" / "tiny"
    (exp / "tce-t1-s0").mkdir(parents=True)
    (exp / "tce-t1-s0" / "last.pt").write_bytes(b"not a checkpoint")  # this run fails at resume
    out = fairseg("run", "-c", write_config(tmp_path), "--out", tmp_path / "runs", "--quiet", "--no-report",
                  "--jobs", "2")
    assert out.returncode == 2
    assert (exp / "mcce-s0" / "metrics.json").is_file() and not (exp / "tce-t1-s0" / "metrics.json").exists()
    last = out.stderr.strip().splitlines()[-1]
    log = exp / ".sweep" / "tce-t1-s0.log"
    assert last == f"error: 1 of 2 run(s) failed: tce-t1-s0 (log: {log})", last
    assert "not a readable checkpoint" in log.read_text()
    assert "tce-t1-s0  FAILED" in out.stderr and "| mcce |" in out.stdout
    code = fairseg("status", tmp_path / "runs")
    assert code.returncode == 0, code.stderr
    rows = {line.split()[0]: line.split()[1] for line in code.stdout.splitlines()[1:-1]}
    assert rows == {"tiny/mcce-s0": "done", "tiny/tce-t1-s0": "failed"}
    assert "not a readable checkpoint" in code.stdout and code.stdout.strip().endswith("1 done, 1 failed")


def test_status_lists_queued_running_stopped(tmp_path):
    from fairseg_bench.run_status import write_status

    exp = tmp_path / "exp"
    write_status(exp / "a-s0", "queued", job_id="77_0")
    (exp / "b-s0").mkdir(parents=True)
    (exp / "b-s0" / "last.pt").write_bytes(b"")
    write_status(exp / "b-s0", "running", step=4, total=8)  # its process (this one) holds no lock
    (exp / "c-s0").mkdir()
    (exp / "c-s0" / ".lock").write_text(str(os.getpid()))
    write_status(exp / "c-s0", "running", step=2, total=8)
    rows = {r["run"]: r for r in sweep_rows(exp)}
    assert {k: r["state"] for k, r in rows.items()} == {"a-s0": "queued", "b-s0": "stopped", "c-s0": "running"}
    assert rows["c-s0"]["step"] == "2/8" and rows["b-s0"]["step"] == "4/8"


def slurm_fake(monkeypatch):
    """A stand-in for the submitit module: records the executor's parameters and map_array calls."""
    import fairseg_bench.launch.submit as submit

    calls = {}

    class Job:
        def __init__(self, index):
            self.job_id = f"4242_{index}"
            self.paths = type("Paths", (), {"stderr": Path(f"/logs/4242_{index}_0_log.err")})()

        def done(self):
            return True

        def exception(self):
            return calls.get("errors", {}).get(self.job_id)

    class AutoExecutor:
        def __init__(self, folder, cluster=None):
            calls["folder"], calls["cluster"] = Path(folder), cluster

        def update_parameters(self, **params):
            calls.setdefault("params", {}).update(params)

        def map_array(self, fn, *iterables):
            calls.setdefault("map_array", []).append((fn, [list(i) for i in iterables]))
            return [Job(i) for i in range(len(iterables[0]))]

    fake = type(sys)("submitit")
    fake.AutoExecutor = AutoExecutor
    monkeypatch.setattr(submit, "submitit", fake)
    return calls


def test_slurm_submits_one_job_array(tmp_path, capsys, monkeypatch):
    calls = slurm_fake(monkeypatch)
    config = write_config(tmp_path, TINY.replace("seeds: [0]", "seeds: [0, 1]"))
    code, _, err = cli(capsys, "run", "-c", config, "--out", tmp_path / "runs", "--quiet", "--launcher", "slurm",
                       "--partition", "gpu", "--account", "lab", "--gpus-per-run", "2", "--time", "90",
                       "--mem", "64", "--jobs", "3")
    assert code == 0, err
    exp = tmp_path / "runs" / "tiny"
    assert calls["cluster"] == "slurm" and calls["folder"] == exp / ".sweep" / "submitit"
    params = calls["params"]
    assert params["slurm_partition"] == "gpu" and params["slurm_account"] == "lab"
    assert params["timeout_min"] == 90 and params["mem_gb"] == 64 and params["slurm_array_parallelism"] == 3
    assert params["gpus_per_node"] == 2 and params["tasks_per_node"] == 2 and params["nodes"] == 1
    assert len(calls["map_array"]) == 1  # one array for the sweep
    task, (losses, seeds) = calls["map_array"][0]
    assert list(zip(losses, seeds)) == [("mcce", 0), ("mcce", 1), ("tce:t=1", 0), ("tce:t=1", 1)]
    assert "job array 4242" in err and f"fairseg-bench status {exp}" in err
    assert read_status(exp / "tce-t1-s1")["job_id"] == "4242_3"
    # what each task runs: the sweep's config, read back unchanged, trained in the submitting folder
    assert Path(task.config_file) == (exp / ".sweep" / "sweep.yaml").resolve() and task.cwd == os.getcwd()
    assert config_hash(load_config(task.config_file)) == config_hash(load_config(config))
    assert load_config(task.config_file).launcher.partition == "gpu"
    requeued = task.checkpoint("tce:t=1", 1)  # the Checkpointable requeue resubmits the same call
    assert requeued.function is task and requeued.args == ("tce:t=1", 1)
    assert task("tce:t=1", 1) == str(exp / "tce-t1-s1")  # the task itself trains its run (here, on CPU)
    assert read_record(exp / "tce-t1-s1")["steps"] == ITERS
    assert not (exp / "mcce-s0").exists()  # nothing else ran here


def test_slurm_wait_follows_the_array_and_names_the_failed_task(tmp_path, capsys, monkeypatch):
    calls = slurm_fake(monkeypatch)
    calls["errors"] = {"4242_1": RuntimeError("Traceback ...\nerror: out of memory")}
    code, _, err = cli(capsys, "run", "-c", write_config(tmp_path), "--out", tmp_path / "runs", "--quiet",
                       "--launcher", "slurm", "--wait")
    exp = tmp_path / "runs" / "tiny"
    assert code == 2
    assert err.strip().splitlines()[-1] == ("error: 1 of 2 run(s) failed: tce-t1-s0 "
                                            "(log: /logs/4242_1_0_log.err)")
    assert "tce-t1-s0  FAILED: error: out of memory" in err
    assert read_status(exp / "tce-t1-s0")["state"] == "failed"


def test_slurm_without_submitit_is_one_line(tmp_path, capsys, monkeypatch):
    import fairseg_bench.launch.submit as submit

    monkeypatch.setattr(submit, "submitit", None)
    code, _, err = cli(capsys, "run", "-c", write_config(tmp_path), "--out", tmp_path / "runs", "--launcher", "slurm")
    assert code == 2 and err.strip() == ("error: --launcher local|slurm needs submitit: "
                                         "pip install 'fairseg-bench[slurm]'")
    assert not (tmp_path / "runs").exists()


def test_launcher_yaml_block_is_checked_and_not_hashed():
    plain = config_from_dict({})
    cfg = config_from_dict({"launcher": {"name": "slurm", "partition": "gpu", "jobs": 4, "time": 120}})
    assert cfg.launcher.partition == "gpu" and cfg.launcher.jobs == 4 and config_hash(cfg) == config_hash(plain)
    assert cfg.override(launcher={"jobs": 2, "partition": None}).launcher.jobs == 2
    from fairseg_bench.errors import UserError

    with pytest.raises(UserError, match="launcher.name must be one of process, local, slurm"):
        config_from_dict({"launcher": {"name": "pbs"}})
    with pytest.raises(UserError, match="unknown key launcher.queue"):
        config_from_dict({"launcher": {"queue": "x"}})


def test_local_slots_split_gpus_and_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(resources, "visible_gpus", lambda device: ["0", "1"])
    slots = resources.local_slots(3, "cuda", cores=8)
    assert [s["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1", "0"]
    assert all(s["OMP_NUM_THREADS"] == "2" for s in slots)  # 3 × 2 ≤ 8
    monkeypatch.setattr(resources, "visible_gpus", lambda device: [])
    for jobs, cores in ((1, 2), (2, 2), (3, 2), (4, 16), (5, 16)):
        slots = resources.local_slots(jobs, "cpu", cores=cores)
        threads = int(slots[0]["OMP_NUM_THREADS"])
        assert "CUDA_VISIBLE_DEVICES" not in slots[0] and threads >= 1
        assert jobs * threads <= max(cores, jobs)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert resources.local_slots(2, "cpu", cores=16)[0]["OMP_NUM_THREADS"] == "1"  # the user's cap holds
    assert resources.default_jobs("cpu") == 1


def test_multi_gpu_task_exports_the_torch_distributed_environment(monkeypatch):
    """A run of several Slurm tasks joins torch.distributed as torchrun would (env:// variables)."""
    import fairseg_bench.launch.submit as submit

    exported = []

    class Env:
        num_tasks = 2

    class TorchDistributedEnvironment:
        def export(self, set_cuda_visible_devices=True):
            exported.append(set_cuda_visible_devices)
            return self

    fake = type(sys)("submitit")
    fake.JobEnvironment = Env
    fake.helpers = type(sys)("submitit.helpers")
    fake.helpers.TorchDistributedEnvironment = TorchDistributedEnvironment
    monkeypatch.setattr(submit, "submitit", fake)
    submit.RunTask._export_distributed()
    assert exported == [False]  # every task keeps the node's GPUs and takes cuda:LOCAL_RANK, as under torchrun
    Env.num_tasks = 1
    submit.RunTask._export_distributed()
    assert exported == [False]  # one task: a plain single-process run


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_BATCH and glibc's mallopt are Linux's")
def test_a_cpu_run_process_is_a_batch_job():
    """``train`` processes on CPU ask for SCHED_BATCH and keep freed memory (fairseg_bench.cpu_process);
    in a process of its own, since the settings last for the process."""
    import platform

    code = ("import os; from fairseg_bench.cpu_process import tune_training_process; "
            "print(tune_training_process(), os.sched_getscheduler(0) == os.SCHED_BATCH)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("]")
    applied, batch = out[0] + "]", out[1].strip()
    assert "SCHED_BATCH" in applied and batch == "True"
    assert ("mallopt" in applied) == (platform.libc_ver()[0] == "glibc")


def test_run_task_tunes_a_cpu_process(tmp_path, monkeypatch):
    from fairseg_bench import cpu_process, runner

    calls = []
    monkeypatch.setattr(cpu_process, "tune_training_process", lambda: calls.append(1) or [])
    cfg = load_config(write_config(tmp_path)).override(out=str(tmp_path / "runs"), quiet=True)
    run_dir = runner.run_task(cfg, "mcce", 0)
    assert calls == [1] and (run_dir / "metrics.json").is_file()


def test_a_generated_data_set_is_drawn_once_for_the_experiments_processes(tmp_path, monkeypatch):
    """prepare draws every synthetic image and caches the drawing; a run process's prepare (another
    Experiment, as in a child) then reads it and draws nothing."""
    from fairseg_bench import runner
    from fairseg_bench.data import synthetic

    cfg = load_config(write_config(tmp_path)).override(out=str(tmp_path / "runs"))
    parent = runner.prepare(cfg)
    assert {p.name.split("-")[1] for p in (parent.folder / ".cache").glob("scenes-*.npz")} == {"train", "val"}
    drawn = []
    real = synthetic.render_scene
    monkeypatch.setattr(synthetic, "render_scene", lambda *a, **k: drawn.append(1) or real(*a, **k))
    child = runner.prepare(cfg)
    assert not drawn and child.class_index.num_images == 16
    assert child.train_set.label(7).tobytes() == parent.train_set.label(7).tobytes()
