"""The short commands stay short: ``evaluate --predictions``, ``metrics``, ``report``, ``check``,
``presets`` and ``datasets`` run in a fresh process without importing torch or torchvision, and
still give the right output."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from support import FIXTURES
from support.fake_datasets import write_cityscapes

HEAVY = ("torch", "torchvision")

# The command as ``python -m fairseg_bench`` runs it; whatever the exit, the heavy modules that were
# imported are reported on the last line of stderr.
RUN_COMMAND = f"""
import runpy, sys
sys.argv = ["fairseg-bench", *sys.argv[1:]]
try:
    runpy.run_module("fairseg_bench", run_name="__main__", alter_sys=True)
finally:
    print("imported:" + ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
"""


def light(*args, cwd=None) -> subprocess.CompletedProcess:
    """Run ``fairseg-bench ARGS`` in a fresh process; assert it imported neither torch nor torchvision."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FAIRSEG_BENCH_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", RUN_COMMAND, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    assert last == "imported:", f"{args[0]} imported {last.partition(':')[2]}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A two-image Cityscapes val split with known counts, its predictions, and their metrics.json.

    Both labels: road (labelId 7) on the left half, car (26) on the right. Both predictions: road
    on the left; on the right, car in the top half and "unlabeled" (0, void) in the bottom. So road
    IoU is 1, car IoU 1/2 (the void half is false negatives), every other class absent.
    """
    root = tmp_path_factory.mktemp("imports")
    label = np.full((8, 16), 7, np.uint8)
    label[:, 8:] = 26
    prediction = label.copy()
    prediction[4:, 8:] = 0
    write_cityscapes(root / "data", {"val": {"aachen": [label, label]}})
    for k in range(2):
        (root / "preds").mkdir(exist_ok=True)
        Image.fromarray(prediction).save(root / "preds" / f"aachen_{k:06d}_000019_leftImg8bit.png")
    out = root / "run" / "preds" / "metrics.json"
    proc = light("evaluate", "--predictions", root / "preds", "--dataset", "cityscapes", "--root", root / "data",
                 "--out", out, "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr
    return root, out, proc


def test_evaluate_predictions(evaluated):
    _, out, proc = evaluated
    record = json.loads(out.read_text())
    iou = dict(zip(record["classes"], record["iou"]))
    assert iou["road"] == 1.0 and iou["car"] == 0.5
    assert all(v is None for k, v in iou.items() if k not in ("road", "car"))  # absent classes: NaN -> null
    assert record["miou"] == 0.75
    cm = np.asarray(record["confusion_matrix"])
    road, car = record["classes"].index("road"), record["classes"].index("car")
    assert cm[road, road] == 128 and cm[car, car] == 64 and cm.sum() == 192
    assert record["void_predictions"][car] == 64 and sum(record["void_predictions"]) == 64
    assert record["environment"]["torch"]  # the version is recorded without importing torch
    assert "mIoU^I" in proc.stdout  # the tables are printed


def test_metrics_paper_table():
    proc = light("metrics", FIXTURES / "paper_table1.csv", "--reference", "MCCE", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    from io import StringIO

    table = pd.read_csv(StringIO(proc.stdout)).set_index("method")
    for method, row in pd.read_csv(FIXTURES / "paper_table3.csv").set_index("method").iterrows():
        for key, printed in row.items():
            assert abs(table.loc[method, key] - printed) <= 0.01 + 1e-9, (method, key)


def test_metrics_of_an_evaluated_folder(evaluated):
    _, out, _ = evaluated
    proc = light("metrics", out, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stdout)["methods"]["preds"]
    assert entry["iou"]["road"] == pytest.approx(100.0) and entry["iou"]["car"] == pytest.approx(50.0)


def test_report(evaluated, tmp_path):
    _, out, _ = evaluated
    proc = light("report", out.parent.parent, "--out", tmp_path / "report", "--bootstrap", "0")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "report" / "index.html").is_file() and (tmp_path / "report" / "report.md").is_file()
    assert list((tmp_path / "report" / "figures").glob("*.png"))  # matplotlib ran, torch did not


def test_check(evaluated, tmp_path):
    _, out, _ = evaluated
    baseline = tmp_path / "baseline.json"
    proc = light("check", out, "--baseline", baseline, "--update")
    assert proc.returncode == 0 and baseline.is_file(), proc.stderr
    proc = light("check", out, "--baseline", baseline)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("check passed: 1 method(s)")


def test_presets():
    proc = light("presets")
    assert proc.returncode == 0 and "quick" in proc.stdout, proc.stderr


def test_datasets_listing():
    proc = light("datasets")
    assert proc.returncode == 0 and "cityscapes" in proc.stdout, proc.stderr


@pytest.mark.parametrize("coherent", [True, False], ids=["runs", "per-pixel"])
def test_the_numpy_count_is_the_per_pixel_count(coherent):
    """The torch-free count, on both of its paths (long runs, noise), against ``np.add.at``."""
    from fairseg_bench.predictions import joint_histogram

    rng = np.random.default_rng(0)
    if coherent:  # 8-px blocks of any value, a few rows changed: long runs
        label = np.kron(rng.integers(0, 256, (8, 12)), np.ones((8, 8), np.int64)).astype(np.uint8)
        prediction = label.copy()
        prediction[::7] = 3
    else:
        label, prediction = (rng.integers(0, 256, (40, 30)).astype(np.uint8) for _ in range(2))
    expected = np.zeros((256, 256), np.int64)
    np.add.at(expected, (label.reshape(-1), prediction.reshape(-1)), 1)
    counts = joint_histogram(label, prediction)
    assert counts.dtype == np.int64
    np.testing.assert_array_equal(counts, expected)


def test_a_synthetic_training_run_imports_torch_but_not_torchvision(tmp_path):
    """``make run``'s processes (synthetic data, the quick preset's model): torchvision's import pulls
    in ``torch._dynamo``, seconds of every run process's start-up that these runs do not need."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN_COMMAND, "train", "--loss", "mcce", "--seed", "0", "--iters", "2",
                           "--out", tmp_path, "--quiet"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "imported:torch", proc.stderr
    assert json.loads((tmp_path / "quick" / "mcce-s0" / "metrics.json").read_text())["steps"] == 2
