"""Numerical faults and determinism: a loss that turns NaN at a known step stops the run there and
keeps the last good checkpoint; the Stochastic TCE sampler stays finite at extreme tilts; the same
config and seed reproduce the same metrics bit for bit in two processes on CPU."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from support.cli import call_main as cli
from support.configs import TINY

from fairseg_bench.core.class_index import ClassIndex
from fairseg_bench.loss_specs import build_sampler
from fairseg_bench.results import read_record

NAN_AT = 5


class NaNAtCall(torch.nn.Module):
    """The real loss, except that its ``NAN_AT``-th training call returns NaN."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = self.inner(logits, target)
        return loss * float("nan") if self.calls == NAN_AT else loss


def test_nan_loss_at_a_known_step_names_it_and_keeps_the_checkpoint_before(tmp_path, capsys, monkeypatch):
    import fairseg_bench.loss_specs as losses

    real = losses.build_loss
    monkeypatch.setattr(losses, "build_loss", lambda *a, **k: NaNAtCall(real(*a, **k)))
    config = tmp_path / "nan.yaml"
    config.write_text(TINY.replace("[mcce, tce]", "[mcce]").replace("iters: 6", "iters: 8"))  # checkpoints every 2
    code, _, err = cli(capsys, "run", "-c", config, "--out", tmp_path / "runs", "--quiet", "--no-report")
    run_dir = tmp_path / "runs" / "nan" / "mcce-s0"
    assert code == 2 and "Traceback" not in err
    assert (f"{run_dir}: step {NAN_AT}: the loss is nan; training stopped before applying it; "
            f"last good checkpoint kept: {run_dir / 'last.pt'} (step 4)") in err, err
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert state["step"] == 4 and len(state["history"]) == 4
    assert all(math.isfinite(row["loss"]) for row in state["history"])
    assert all(torch.isfinite(v.float()).all() for v in state["model"].values())
    assert not (run_dir / "metrics.json").exists()


def _finite_tensors(obj) -> bool:
    if isinstance(obj, dict):
        return all(_finite_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_finite_tensors(v) for v in obj)
    if torch.is_tensor(obj) and obj.is_floating_point():
        return bool(torch.isfinite(obj).all())
    if isinstance(obj, float):
        return math.isfinite(obj)
    return True


@pytest.mark.parametrize("t", [1000.0, -50.0, 1e-6])
def test_stochastic_tce_sampler_state_stays_finite_at_extreme_tilt(t):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5000, size=(40, 6)) * (rng.random((40, 6)) < 0.5)
    counts[:, 0] += 1  # every image holds class 0; class 5 appears in a single image
    counts[:, 5] = 0
    counts[7, 5] = 3
    sampler = build_sampler(f"tce:t={t:g}", class_index=ClassIndex(counts), batch_size=4, num_batches=300, seed=1)
    # losses spanning zero to very large: exp(t * loss) overflows float64 long before 1e3 at t = 1000
    losses = np.concatenate([[0.0, 1e-12, 1e3, 50.0], rng.exponential(3.0, 296)])
    for step, (batch, loss) in enumerate(zip(sampler, losses)):
        assert len(batch) == 4
        sampler.update(float(loss))
        weights = sampler.weights
        assert np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() == pytest.approx(1.0), step
    assert step == 299 and sampler.draw_histogram.sum() == 300
    assert _finite_tensors(sampler.state_dict())


def _train(config, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FAIRSEG_BENCH_TEST_WRITE_DELAY", None)
    cmd = [sys.executable, "-m", "fairseg_bench", "run", "-c", str(config), "--out", str(out), "--quiet", "--no-report",
           "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr


def test_same_config_and_seed_are_bit_identical_across_two_processes(tmp_path):
    config = tmp_path / "det.yaml"
    config.write_text(TINY.replace("[mcce, tce]", "[tce]").replace("seeds: [0]", "seeds: [7]"))
    _train(config, tmp_path / "a")
    _train(config, tmp_path / "b")
    a, b = (tmp_path / x / "det" / "tce-t1-s7" for x in "ab")
    ma, mb = read_record(a), read_record(b)
    for record in (ma, mb):
        del record["timing"], record["environment"], record["config"]["out"]  # where, when and on what
    assert ma == mb  # every float compared with ==, JSON written with full repr precision
    ha, hb = (pd.read_csv(x / "history.csv").drop(columns="images_per_s") for x in (a, b))
    assert ha.equals(hb)
    sa, sb = (torch.load(x / "last.pt", weights_only=True) for x in (a, b))
    assert sa["model"].keys() == sb["model"].keys()
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])
