"""``fairseg-bench run / train / evaluate`` end to end on a tiny synthetic config (CPU, seconds):
the files, the schema and the values; skip and resume; bad input; torchrun with gloo."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from support.cli import call_main as cli
from support.cli import fairseg
from support.configs import ITERS, TINY

from fairseg_bench.config import config_hash, load_config
from fairseg_bench.data import build_dataset
from fairseg_bench.results import read_record
from fairseg_bench.results.read import read_results

K = 19


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    config = root / "tiny.yaml"
    config.write_text(TINY)
    out = fairseg("run", "-c", config, "--out", root / "runs", "--quiet", "--no-report")
    assert out.returncode == 0, out.stderr
    return root, config, out


def snapshot(folder: Path) -> dict:
    """Every file's bytes under ``folder`` (to prove nothing was touched)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_writes_every_file(tiny):
    root, _, _ = tiny
    exp = root / "runs" / "tiny"
    assert {"mcce-s0", "tce-t1-s0"} <= {p.name for p in exp.iterdir()}
    for run in ("mcce-s0", "tce-t1-s0"):
        names = {p.name for p in (exp / run).iterdir()}
        assert {"config.yaml", "last.pt", "history.csv", "metrics.json", "samples.npz"} <= names
        assert ".lock" not in names and not any(n.endswith(".tmp") for n in names)
        torch.load(exp / run / "last.pt", weights_only=True)


def test_metrics_schema_and_values(tiny):
    root, config, _ = tiny
    runs = read_results(root / "runs" / "tiny").runs
    assert sorted(r.method for r in runs) == ["mcce", "tce-t1"]
    val = build_dataset("synthetic", split="val", num_images=6, size=(32, 64), seed=3)
    labels = np.stack([val.label(i) for i in range(len(val))])
    valid = labels != 255
    digest = config_hash(load_config(config))
    for run in runs:
        d = run.record
        assert d["config_hash"] == digest and d["steps"] == ITERS and d["seed"] == 0
        assert d["classes"] == val.classes and d["dataset"] == "synthetic" and d["split"] == "val"
        assert np.asarray(d["palette"]).shape == (K, 3)
        cm = run.confusion_matrix
        # every valid val pixel counted once, in its ground-truth row
        assert cm.sum() == valid.sum()
        assert np.array_equal(cm.sum(1), np.bincount(labels[valid], minlength=K))
        tp, fp, fn = np.diag(cm), cm.sum(0) - np.diag(cm), cm.sum(1) - np.diag(cm)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected_iou = tp / (tp + fp + fn)
        assert np.allclose(run.iou, expected_iou, equal_nan=True)
        assert d["miou"] == pytest.approx(np.nanmean(expected_iou))
        assert d["pixel_accuracy"] == pytest.approx(tp.sum() / cm.sum())
        per_image = run.per_image
        assert per_image["tp"].shape == (len(val), K)
        assert np.array_equal(per_image["tp"].sum(0), tp) and np.array_equal(per_image["fp"].sum(0), fp)
        assert np.array_equal(per_image["fn"].sum(0), fn)
        assert d["fairness"]["worst"] == pytest.approx(np.nanmin(expected_iou))
        assert d["fairness"]["miou"] == pytest.approx(d["miou"])
        assert set(d["timing"]) == {"wall_time_s", "train_images_per_s", "eval_images_per_s"}
        assert d["timing"]["train_images_per_s"] > 0
        assert {"fairseg_bench", "torch", "python", "device", "git_commit"} <= set(d["environment"])
    tce = next(r for r in runs if r.method == "tce-t1").record["sampler"]
    assert tce["name"] == "tce" and sum(tce["draw_histogram"]) == ITERS
    assert sum(tce["final_weights"]) == pytest.approx(1.0)
    assert next(r for r in runs if r.method == "mcce").record["sampler"] is None


def test_history_and_samples(tiny):
    root, _, _ = tiny
    exp = root / "runs" / "tiny"
    mcce = pd.read_csv(exp / "mcce-s0" / "history.csv")
    assert list(mcce.columns) == ["step", "lr", "loss", "grad_norm", "images_per_s"]
    assert mcce["step"].tolist() == list(range(1, ITERS + 1))
    assert mcce["lr"].iloc[0] == pytest.approx(0.002) and mcce["lr"].is_monotonic_decreasing
    tce = pd.read_csv(exp / "tce-t1-s0" / "history.csv")
    weights = tce[[f"w_{c}" for c in read_record(exp / "tce-t1-s0")["classes"]]]
    assert len(tce) == ITERS
    assert list(tce.columns[:6]) == ["step", "lr", "loss", "grad_norm", "images_per_s", "drawn_class"]
    assert np.allclose(weights.sum(axis=1), 1.0)
    drawn = np.bincount(tce["drawn_class"], minlength=K)
    assert np.array_equal(drawn, read_record(exp / "tce-t1-s0")["sampler"]["draw_histogram"])
    with np.load(exp / "mcce-s0" / "samples.npz") as samples:
        assert samples["image"].shape == (2, 32, 64, 3) and samples["pred"].shape == (2, 32, 64)
        val = build_dataset("synthetic", split="val", num_images=6, size=(32, 64), seed=3)
        assert np.array_equal(samples["image"][1], val.image(1))
        assert np.array_equal(samples["target"][1], val.label(1))
        assert samples["pred"].max() < K


def printed_table(stdout: str, title: str) -> pd.DataFrame:
    """Parse a printed Markdown table (split into parts with a 'continued' header) back into numbers."""
    block = stdout[stdout.index(title):].split("### ")[0]
    parts, columns = {}, None
    for line in block.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0].startswith(":"):
            continue
        if cells[0] in ("Method", "continued"):
            columns = cells[1:]
            continue
        values = [float("nan") if c == "–" else float(c) for c in cells[1:]]
        parts.setdefault(cells[0], {}).update(zip(columns, values))
    return pd.DataFrame(parts).T


def test_run_prints_the_tables(tiny):
    _, _, out = tiny
    runs = {r.method: r for r in read_results(Path(tiny[0]) / "runs" / "tiny").runs}
    table1 = printed_table(out.stdout, "Table 1")
    assert list(table1.index) == ["mcce", "tce-t1"]
    assert list(table1.columns[:-1]) != list(runs["mcce"].classes)  # reordered ...
    assert sorted(table1.columns[:-1]) == sorted(runs["mcce"].classes)  # ... not changed
    reference = table1.loc["mcce"].iloc[:-1].dropna()
    assert reference.is_monotonic_increasing  # sorted by the reference (first loss)
    for method, run in runs.items():
        expected = pd.Series(run.iou * 100, index=list(run.classes))[table1.columns[:-1]]
        assert np.allclose(table1.loc[method].iloc[:-1], expected, atol=0.006, equal_nan=True)
        assert table1.loc[method, "mIoU"] == pytest.approx(run.record["miou"] * 100, abs=0.006)
    table3 = printed_table(out.stdout, "Table 3")
    assert table3.loc["mcce", "overall worst"] == pytest.approx(100 * np.nanmin(runs["mcce"].iou), abs=0.006)
    assert table3.loc["tce-t1", "overall std."] == pytest.approx(100 * np.nanstd(runs["tce-t1"].iou, ddof=1), abs=0.006)


def test_run_and_report_share_the_default_reference(tiny, tmp_path, capsys):
    """``run --losses tce,mcce`` and then ``report`` on its folder: one reference (the first MCCE, not the
    first loss) and the same numbers in every printed table."""
    root, config, _ = tiny
    code, out, err = cli(capsys, "run", "-c", config, "--losses", "tce,mcce", "--out", root / "runs", "--quiet",
                         "--no-report")
    assert code == 0, err
    code, _, err = cli(capsys, "report", root / "runs" / "tiny", "--out", tmp_path / "report", "--format", "md",
                       "--no-figures", "--bootstrap", "0")
    assert code == 0, err
    written = (tmp_path / "report" / "report.md").read_text()
    assert "Table 1: per-class IoU (%), classes sorted by mcce." in out
    assert "Table 1: per-class IoU (%), classes sorted by mcce." in written
    for title in ("Table 1", "Table 3"):
        pd.testing.assert_frame_equal(printed_table(out, title), printed_table(written, title))


def test_second_run_skips_finished_runs(tiny, capsys):
    root, config, _ = tiny
    before = snapshot(root / "runs")
    code, _, err = cli(capsys, "run", "-c", config, "--out", root / "runs", "--quiet", "--no-report")
    assert code == 0 and err.count("finished, skipped") == 2
    assert snapshot(root / "runs") == before


def test_evaluate_reproduces_the_confusion_matrix(tiny, tmp_path, capsys):
    root, _, _ = tiny
    run = root / "runs" / "tiny" / "mcce-s0"
    code, _, err = cli(capsys, "evaluate", "--checkpoint", run / "last.pt", "--out", tmp_path, "--quiet")
    assert code == 0, err
    again, original = read_record(tmp_path), read_record(run)
    assert np.array_equal(again["confusion_matrix"], original["confusion_matrix"])
    assert again["per_image"] == original["per_image"]


@pytest.mark.parametrize("args, message", [
    (["--losses", "mcce,nosuchloss"], "unknown loss 'nosuchloss'"),
    (["--losses", "tce:q=1"], "unknown parameter 'q' for loss 'tce'"),
    (["--seeds", "x"], "seeds must be a non-empty list of distinct non-negative integers"),
    (["-c", "cityscapes_dlv3p_r101", "--data-root", "/no/such/cityscapes"], "/no/such/cityscapes"),
    (["-c", "no-such-config"], "no such config file"),
    (["--iters", "3"], "holds runs of a different config"),
])
def test_bad_input_is_one_line_and_touches_nothing(tiny, capsys, args, message):
    root, config, _ = tiny
    args = ["-c", config, *args] if "-c" not in args else args
    before = snapshot(root / "runs")
    code, _, err = cli(capsys, "run", *args, "--out", root / "runs", "--quiet")
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert snapshot(root / "runs") == before


def test_bad_yaml_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {iters: [}\n")
    out = fairseg("run", "-c", bad, "--out", tmp_path / "runs")
    assert out.returncode == 2 and "not valid YAML" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
    bad.write_text("train: {iters: abc}\n")
    code, _, err = cli(capsys, "run", "-c", bad)
    assert code == 2 and err.strip() == f"error: {bad}: train.iters must be a positive integer, got 'abc'"


def _kill_after_checkpoint(cmd, run_dir: Path, timeout=120):
    """Start ``cmd``, SIGKILL it as soon as ``last.pt`` exists; return the checkpoint's step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + timeout
    while not (run_dir / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return torch.load(run_dir / "last.pt", weights_only=True)["step"]


@pytest.mark.parametrize("loss, label, amp, iters", [
    # sampler state (class RNG, log-tilted losses, draw histogram); the default suite resumes it too,
    # killed by submitit's local executor (tests/launch) and in-process (tests/test_engine.py)
    pytest.param("tce", "tce-t1", "true", 40, marks=pytest.mark.slow),
    # bfloat16 autocast on CPU: 20 steps, since a CPU without native bfloat16 emulates it ~10x slower
    ("mcce", "mcce", "bf16", 20),
    pytest.param("tce-online", "tce-online-t1", "true", 40, marks=pytest.mark.slow),  # loss-module buffers
])
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, loss, label, amp, iters):
    config = tmp_path / "resume.yaml"
    config.write_text(TINY.replace(f"iters: {ITERS}", f"iters: {iters}").replace(
        "checkpoint_every: 2", f"checkpoint_every: 4, amp: {amp}"))
    straight = fairseg("train", "-c", config, "--loss", loss, "--out", tmp_path / "a", "--quiet")
    assert straight.returncode == 0, straight.stderr
    run_dir = tmp_path / "b" / "resume" / f"{label}-s0"
    cmd = [sys.executable, "-m", "fairseg_bench", "train", "-c", str(config), "--loss", loss,
           "--out", str(tmp_path / "b"), "--quiet"]
    step = _kill_after_checkpoint(cmd, run_dir)
    assert 0 < step < iters and not (run_dir / "metrics.json").exists()  # killed mid-training
    resumed = fairseg("train", "-c", config, "--loss", loss, "--out", tmp_path / "b", "--quiet")
    assert resumed.returncode == 0 and f"resuming from step {step}" in resumed.stderr
    a = read_record(tmp_path / "a" / "resume" / f"{label}-s0")
    b = read_record(run_dir)
    for key in ("confusion_matrix", "per_image", "iou", "fairness", "sampler", "steps", "config_hash"):
        assert a[key] == b[key], key
    ha = pd.read_csv(tmp_path / "a" / "resume" / f"{label}-s0" / "history.csv")
    hb = pd.read_csv(run_dir / "history.csv")
    assert ha.drop(columns="images_per_s").equals(hb.drop(columns="images_per_s"))


def test_amp_bf16_trains_in_bfloat16_and_evaluate_reproduces_it(tmp_path, capsys):
    runs = {}
    for amp in ("true", "bf16"):
        config = tmp_path / f"amp-{amp}.yaml"
        config.write_text(TINY.replace("losses: [mcce, tce]", "losses: [mcce]").replace(
            "checkpoint_every: 2", f"checkpoint_every: 2, amp: {amp}"))
        out = fairseg("run", "-c", config, "--out", tmp_path / amp, "--quiet", "--no-report")
        assert out.returncode == 0, out.stderr
        runs[amp] = tmp_path / amp / f"amp-{amp}" / "mcce-s0"
    float32, bfloat16 = (pd.read_csv(runs[a] / "history.csv")["loss"].to_numpy() for a in ("true", "bf16"))
    # the same weights and batch: the first loss differs by bfloat16's rounding (8 mantissa bits) only
    assert float32[0] != bfloat16[0] and abs(float32[0] - bfloat16[0]) < 0.02 * float32[0]
    code, _, err = cli(capsys, "evaluate", "--checkpoint", runs["bf16"] / "last.pt", "--out", tmp_path / "ev",
                       "--quiet")
    assert code == 0, err
    evaluated, trained = read_record(tmp_path / "ev"), read_record(runs["bf16"])
    assert np.array_equal(evaluated["confusion_matrix"], trained["confusion_matrix"])


def test_torchrun_gloo_two_ranks(tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(TINY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "fairseg_bench", "train", "-c", str(config), "--loss", "tce", "--seed", "0",
           "--out", str(tmp_path / "runs"), "--device", "cpu", "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / "runs" / "ddp" / "tce-t1-s0"
    ranks = json.loads((run_dir / "ranks.json").read_text())
    assert ranks["world_size"] == 2 and len(set(ranks["sampler_state_sha256"])) == 1
    metrics = read_record(run_dir)
    assert metrics["steps"] == ITERS and sum(metrics["sampler"]["draw_histogram"]) == ITERS
    history = pd.read_csv(run_dir / "history.csv")
    assert len(history) == ITERS
    single = fairseg("evaluate", "--checkpoint", run_dir / "last.pt", "--out", tmp_path / "single", "--quiet")
    assert single.returncode == 0, single.stderr
    again = read_record(tmp_path / "single")
    assert np.array_equal(again["confusion_matrix"], metrics["confusion_matrix"])
    assert again["per_image"] == metrics["per_image"]


def test_run_locks_stale_and_live(tmp_path, capsys):
    """A lock left by a dead process is taken over; a live process's lock makes ``run`` skip the run."""
    config = tmp_path / "locks.yaml"
    config.write_text(TINY)
    exp = tmp_path / "runs" / "locks"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        for run, pid in (("mcce-s0", dead.pid), ("tce-t1-s0", live.pid)):
            (exp / run).mkdir(parents=True)
            (exp / run / ".lock").write_text(str(pid))
        code, out, err = cli(capsys, "run", "-c", config, "--out", tmp_path / "runs", "--quiet", "--no-report")
    finally:
        live.kill()
        live.wait()
    assert code == 0, err
    assert (exp / "mcce-s0" / "metrics.json").is_file() and not (exp / "mcce-s0" / ".lock").exists()
    assert "tce-t1-s0: locked by another process, skipped" in err
    assert sorted(p.name for p in (exp / "tce-t1-s0").iterdir()) == [".lock"]  # untouched
    assert "| mcce |" in out and "| tce-t1 |" not in out


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    import re

    config = tmp_path / "diverge.yaml"  # SGD at lr 1e12 overflows within a few steps
    config.write_text(TINY.replace("{name: adam, lr: 0.002}", "{name: sgd, lr: 1.0e+12}").replace(
        f"iters: {ITERS}", "iters: 30").replace("checkpoint_every: 2", "checkpoint_every: 1"))
    code, _, err = cli(capsys, "run", "-c", config, "--losses", "mcce", "--out", tmp_path / "runs", "--quiet")
    run = tmp_path / "runs" / "diverge" / "mcce-s0"
    found = re.search(r"step (\d+): the (loss|gradient norm|parameters) .*training stopped.*; "
                      r"last good checkpoint kept: .*last.pt \(step (\d+)\)", err)
    assert code == 2 and found, err
    assert err.strip().splitlines()[-1] == "error: 1 run(s) stopped on a NaN/Inf loss: mcce-s0"
    bad_step, kept_step = int(found.group(1)), int(found.group(3))
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["step"] == kept_step < bad_step and not (run / "metrics.json").exists()
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())
