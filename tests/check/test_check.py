"""The fairness regression gate: baselines, direction-aware tolerances, rules, exit codes, summary."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from support import ROOT
from support.cli import call_main

from fairseg_bench import check as gate
from fairseg_bench.errors import UserError
from fairseg_bench.results import write_json_atomic
from fairseg_bench.results.read import read_results

CLI = ROOT / ".venv" / "bin" / "fairseg-bench"
CLASSES = ["road", "building", "pole", "person", "car", "train"]
HASH = "c0ffee"


# ----------------------------------------------------------------------------- helpers


def results_of(*paths):
    return read_results(list(paths))


def pp(fraction) -> str:
    """A tolerance given as a fraction, in percentage points."""
    return f"{100 * fraction!r}pp"


def reference_fairness(iou, ref=None) -> dict:
    """Fairness metrics written from docs/definitions.md in float64 (``ref`` ranks the sorted groups)."""
    v = np.asarray([x for x in iou if x is not None and math.isfinite(x)], dtype=np.float64)
    k = math.ceil(0.25 * v.size)
    order = np.argsort(v if ref is None else np.asarray(ref, dtype=np.float64), kind="stable")
    lo_thr, hi_thr = np.percentile(v, 25), np.percentile(v, 75)
    mean, std = v.mean(), v.std(ddof=1)
    diffs = np.abs(v[:, None] - v[None, :]).sum()
    return {
        "miou": mean,
        "sorted_bottom": v[order[:k]].mean(),
        "sorted_top": v[order[-k:]].mean(),
        "pct_bottom_threshold": lo_thr,
        "pct_bottom_mean": v[v <= lo_thr].mean(),
        "pct_top_threshold": hi_thr,
        "pct_top_mean": v[v >= hi_thr].mean(),
        "worst": v.min(),
        "std": std,
        "best": v.max(),
        "gap": v.max() - v.min(),
        "cov": std / mean,
        "gini": diffs / (2 * v.size**2 * mean),
    }


def write_run(root, method, seed, iou, *, fairness=None, config_hash=HASH, classes=CLASSES, experiment="exp"):
    """One synthetic run folder following the results schema."""
    k = len(classes)
    data = {
        "schema_version": 1,
        "experiment": experiment,
        "method": method,
        "loss_spec": method,
        "seed": seed,
        "config_hash": config_hash,
        "config": {},
        "dataset": "synthetic",
        "split": "val",
        "steps": 10,
        "classes": list(classes),
        "ignore_index": 255,
        "confusion_matrix": np.zeros((k, k), dtype=np.int64),
        "iou": list(iou),
        "miou": float(np.nanmean([np.nan if x is None else x for x in iou])),
        "fairness": reference_fairness(iou) if fairness is None else fairness,
    }
    path = Path(root) / experiment / f"{method}-s{seed}" / "metrics.json"
    write_json_atomic(path, data)
    return path


BASE_IOU = {
    "mcce": [0.95, 0.80, 0.30, 0.60, 0.85, 0.20],
    "focal": [0.93, 0.78, 0.38, 0.62, 0.84, 0.35],
}


def write_experiment(root, seeds=(0,), iou=BASE_IOU, **kwargs):
    for method, values in iou.items():
        for seed in seeds:
            write_run(root, method, seed, values, **kwargs)
    return Path(root)


def run_cli(*args):
    """The installed console script, as CI calls it."""
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=60)


def edit_json(path, edit):
    data = json.loads(Path(path).read_text())
    edit(data)
    Path(path).write_text(json.dumps(data))


@pytest.fixture
def experiment(tmp_path):
    """Runs of mcce and focal (one seed) and a baseline written from them."""
    runs = write_experiment(tmp_path / "runs")
    baseline = tmp_path / "baseline.json"
    gate.write_baseline(baseline, results_of(runs))
    return runs, baseline


def worst_runs(tmp_path, name, worst: float):
    """A run whose worst class (train) has IoU ``worst`` (below every other class)."""
    write_run(tmp_path / name, "mcce", 0, [0.95, 0.80, 0.60, 0.60, 0.85, worst])
    return results_of(tmp_path / name)


# ----------------------------------------------------------------------------- exit codes (CLI)


def test_identical_runs_pass_with_exit_0(experiment):
    runs, baseline = experiment
    proc = run_cli("check", runs, "--baseline", baseline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check passed" in proc.stdout
    assert "REGRESSION" not in proc.stdout


def test_higher_worst_in_baseline_fails_with_exit_1_naming_method_and_metric(experiment):
    runs, baseline = experiment
    edit_json(baseline, lambda d: d["methods"]["focal"]["fairness"].__setitem__("worst", 35 + 3))
    proc = run_cli("check", runs, "--baseline", baseline)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failing = [line for line in proc.stdout.splitlines() if line.startswith("REGRESSION")]
    assert failing == [line for line in failing if "focal" in line and "worst" in line]
    assert len(failing) == 1
    assert "-3.00 pp" in failing[0]


def test_update_writes_a_baseline_that_then_passes(tmp_path):
    runs = write_experiment(tmp_path / "runs", seeds=(0, 1))
    baseline = tmp_path / "reports" / "baseline.json"
    proc = run_cli("check", runs, "--baseline", baseline, "--update")
    assert proc.returncode == 0, proc.stderr
    data = gate.read_baseline(baseline)
    assert data["config_hash"] == HASH and data["classes"] == CLASSES
    assert set(data["methods"]) == {"mcce", "focal"}
    assert data["methods"]["mcce"]["seeds"] == [0, 1] and data["methods"]["mcce"]["n_seeds"] == 2
    assert list(data["methods"]["mcce"]["iou"].values()) == pytest.approx([100 * v for v in BASE_IOU["mcce"]])
    assert data["methods"]["focal"]["fairness"]["worst"] == pytest.approx(35)
    assert data["unit"] == "percent" and data["reference"] == "mcce"
    assert run_cli("check", runs, "--baseline", baseline).returncode == 0
    # --update overwrites: a changed run becomes the new reference
    write_run(runs, "mcce", 0, [0.5] * len(CLASSES))
    assert run_cli("check", runs, "--baseline", baseline).returncode == 1
    assert run_cli("check", runs, "--baseline", baseline, "--update").returncode == 0
    assert run_cli("check", runs, "--baseline", baseline).returncode == 0


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]), "not valid JSON"),
        (lambda p: edit_json(p, lambda d: d.__setitem__("schema_version", 99)), "schema version 99"),
        (lambda p: edit_json(p, lambda d: d.pop("methods")), "missing key 'methods'"),
        (lambda p: edit_json(p, lambda d: d.pop("config_hash")), "missing key 'config_hash'"),
        (lambda p: edit_json(p, lambda d: d["methods"]["mcce"].pop("iou")), "missing key 'iou'"),
        (lambda p: edit_json(p, lambda d: d["methods"]["mcce"]["iou"].popitem()), "sizes do not match"),
        (lambda p: edit_json(p, lambda d: d["methods"]["mcce"]["fairness"].__setitem__("worst", "x")), "bad value"),
        (lambda p: p.write_text("[1, 2]"), "expected a JSON object"),
    ],
    ids=["truncated", "schema_version", "no-methods", "no-config-hash", "no-iou", "short-iou", "string-value", "list"],
)
def test_malformed_baseline_exits_2_with_one_line(experiment, capsys, damage, message):
    runs, baseline = experiment
    damage(baseline)
    code, out, err = call_main(capsys, "check", runs, "--baseline", baseline)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert message in err
    assert "REGRESSION" not in out


def test_malformed_baseline_exits_2_in_a_subprocess(experiment):
    runs, baseline = experiment
    baseline.write_text(baseline.read_text()[:100])
    proc = run_cli("check", runs, "--baseline", baseline)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_baseline_of_another_config_is_refused(experiment, tmp_path):
    _, baseline = experiment
    other = write_experiment(tmp_path / "other", config_hash="deadbeef")
    proc = run_cli("check", other, "--baseline", baseline)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "config c0ffee" in proc.stderr and "deadbeef" in proc.stderr


def test_baseline_of_another_class_set_is_refused(experiment, tmp_path, capsys):
    _, baseline = experiment
    classes = CLASSES[:-1] + ["bus"]
    other = write_experiment(tmp_path / "other", classes=classes)
    code, _, err = call_main(capsys, "check", other, "--baseline", baseline)
    assert code == 2
    assert "class set" in err and "'train'" in err and "'bus'" in err
    # same names in another order are another class set too (IoU columns would be misread)
    shuffled = write_experiment(tmp_path / "shuffled", classes=CLASSES[::-1])
    code, _, err = call_main(capsys, "check", shuffled, "--baseline", baseline)
    assert code == 2 and "another order" in err


def test_runs_of_several_configs_are_refused(tmp_path):
    write_run(tmp_path / "runs", "mcce", 0, BASE_IOU["mcce"])
    write_run(tmp_path / "runs", "focal", 0, BASE_IOU["focal"], config_hash="other", experiment="exp2")
    with pytest.raises(UserError, match="2 different configs"):
        results_of(tmp_path / "runs")


@pytest.mark.parametrize("option", ["--tolerance=worst", "--tolerance=speed=1pp", "--tolerance=worst=-1pp",
                                    "--per-class-tolerance=x", "--tolerance=worst=2", "--per-class-tolerance=1"])
def test_bad_tolerance_exits_2(experiment, capsys, option):
    runs, baseline = experiment
    code, _, err = call_main(capsys, "check", runs, "--baseline", baseline, option)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("option", ["--tolerance=worst=2", "--per-class-tolerance=1"])
def test_a_bare_tolerance_names_both_units(experiment, capsys, option):
    runs, baseline = experiment
    code, _, err = call_main(capsys, "check", runs, "--baseline", baseline, option)
    number = option.rsplit("=", 1)[1]
    assert code == 2 and f"{number}pp (percentage points)" in err and f"{number}% (relative" in err


def test_relative_tolerance_is_a_share_of_the_baseline_value(tmp_path, capsys):
    baseline = tmp_path / "b.json"
    gate.write_baseline(baseline, worst_runs(tmp_path, "base", 0.40))
    worst_runs(tmp_path, "cur", 0.38)  # -2 pp = -5 % of 40
    args = ("check", tmp_path / "cur", "--baseline", baseline, "--per-class-tolerance", "5pp", "--tolerance")
    assert call_main(capsys, *args, "all=100pp,worst=5%")[0] == 0
    assert call_main(capsys, *args, "all=100pp,worst=4.9%")[0] == 1
    assert call_main(capsys, *args, "all=100pp,worst=2pp")[0] == 0


def test_missing_method_fails_and_new_method_is_a_note(experiment, tmp_path, capsys):
    runs, baseline = experiment
    only_mcce = write_experiment(tmp_path / "only", iou={"mcce": BASE_IOU["mcce"]})
    code, out, _ = call_main(capsys, "check", only_mcce, "--baseline", baseline)
    assert code == 1
    assert "REGRESSION focal: in the baseline but missing from the runs" in out.splitlines()

    write_run(runs, "tce-t1", 0, [0.9, 0.7, 0.4, 0.6, 0.8, 0.4])
    code, out, err = call_main(capsys, "check", runs, "--baseline", baseline)
    assert code == 0
    assert "note: tce-t1: not in the baseline" in err


def test_check_does_not_import_torch():
    code = "import sys, fairseg_bench.check, fairseg_bench.cli.check; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


# ----------------------------------------------------------------------------- tolerances


@pytest.mark.parametrize(
    "base, tol",
    [(0.50, 0.01), (0.30, 0.005), (0.45, 0.02), (0.123456789, 0.001), (0.3, 0.0)],
)
def test_fixed_tolerance_edges_for_a_higher_is_better_metric(tmp_path, base, tol):
    baseline = gate.make_baseline(worst_runs(tmp_path, "base", base))
    exact = worst_runs(tmp_path, "exact", base - tol)
    beyond = worst_runs(tmp_path, "beyond", base - tol - 1e-6)
    better = worst_runs(tmp_path, "better", base + 0.05)
    verdict = lambda runs: {r.metric: r.passed for r in gate.compare(runs, baseline, {"worst": pp(tol)}).rows}["worst"]
    assert verdict(exact) is True  # a drop exactly equal to the tolerance passes despite float rounding
    assert verdict(beyond) is False
    assert verdict(better) is True


def test_tolerance_given_in_points_on_the_command_line(tmp_path, capsys):
    baseline = tmp_path / "b.json"
    gate.write_baseline(baseline, worst_runs(tmp_path, "base", 0.50))
    worst_runs(tmp_path, "cur", 0.48)
    args = ("check", tmp_path / "cur", "--baseline", baseline, "--tolerance", "all=100pp")
    assert call_main(capsys, *args[:4])[0] == 1  # default 1 pp
    assert call_main(capsys, *args, "--tolerance", "worst=2pp")[0] == 0  # exactly 2 pp
    assert call_main(capsys, *args, "--tolerance", "worst=1.99pp")[0] == 1
    assert call_main(capsys, *args, "--tolerance", "std=10pp", "--tolerance", "worst=3pp,gap=10pp")[0] == 0


def test_direction_awareness(tmp_path):
    base = [0.95, 0.80, 0.30, 0.60, 0.85, 0.20]
    write_run(tmp_path / "base", "mcce", 0, base)
    baseline = gate.make_baseline(results_of(tmp_path / "base"))

    def verdicts(name, iou):
        write_run(tmp_path / name, "mcce", 0, iou)
        rows = gate.compare(results_of(tmp_path / name), baseline, {"all": "100pp", "std": "0.5pp", "gini": "1pp",
                                                                    "worst": "1pp"}).rows
        return {r.metric: r.passed for r in rows if r.kind == "fairness"}

    lower_spread = verdicts("lower", [0.90, 0.78, 0.40, 0.60, 0.80, 0.30])  # classes closer together
    assert lower_spread["std"] and lower_spread["gini"] and lower_spread["worst"]
    higher_spread = verdicts("higher", [0.99, 0.80, 0.25, 0.60, 0.90, 0.20])  # further apart
    assert not higher_spread["std"] and not higher_spread["gini"]
    assert not verdicts("drop", [0.95, 0.80, 0.30, 0.60, 0.85, 0.18])["worst"]


def test_default_tolerances_cover_every_metric_with_a_direction():
    assert set(gate.DEFAULT_TOLERANCES) == set(gate.GATED) == set(gate.METRICS) | {
        "miou_image", "miou_image_worst_5", "miou_image_worst_10", "miou_class", "biou", "min_iou_biou", "worst_group"}
    assert set(gate.HIGHER_IS_BETTER).isdisjoint(gate.LOWER_IS_BETTER)
    assert {"worst", "miou", "sorted_bottom", "best"} <= set(gate.HIGHER_IS_BETTER)
    assert {"std", "gap", "cov", "gini"} == set(gate.LOWER_IS_BETTER)
    assert gate.parse_tolerances("worst=1pp, std=5%") == {"worst": gate.Tolerance(1.0, "pp"),
                                                           "std": gate.Tolerance(5.0, "%")}
    everything = gate.parse_tolerances("gap=0.5pp,all=0pp")
    assert everything == dict.fromkeys(gate.GATED, gate.Tolerance(0.0)) | {"gap": gate.Tolerance(0.5)}


def test_per_class_tolerance(tmp_path, capsys):
    runs = write_experiment(tmp_path / "runs", iou={"mcce": BASE_IOU["mcce"]})
    baseline = tmp_path / "b.json"
    gate.write_baseline(baseline, results_of(runs))
    pole = CLASSES.index("pole")

    def run_with_pole(name, value):
        iou = list(BASE_IOU["mcce"])
        iou[pole] = value
        write_run(tmp_path / name, "mcce", 0, iou)
        return tmp_path / name

    exact = run_with_pole("exact", 0.30 - 0.02)  # default 2 pp
    beyond = run_with_pole("beyond", 0.30 - 0.0201)
    loose = ("--tolerance", "all=100pp")  # only the per-class rule can fail
    assert call_main(capsys, "check", exact, "--baseline", baseline, *loose)[0] == 0
    code, out, _ = call_main(capsys, "check", beyond, "--baseline", baseline, *loose)
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("REGRESSION")] == [
        "REGRESSION mcce iou[pole]: 30.00 -> 27.99 (-2.01 pp, allowed 2.00 pp drop)"
    ]
    assert call_main(capsys, "check", beyond, "--baseline", baseline, *loose, "--per-class-tolerance", "3pp")[0] == 0
    assert call_main(capsys, "check", exact, "--baseline", baseline, *loose, "--per-class-tolerance", "1pp")[0] == 1


def test_undefined_class_iou_is_skipped_with_a_note(tmp_path):
    iou = list(BASE_IOU["mcce"])
    iou[-1] = None
    write_run(tmp_path / "base", "mcce", 0, iou)
    baseline = gate.make_baseline(results_of(tmp_path / "base"))
    assert baseline["methods"]["mcce"]["iou"]["train"] is None
    write_run(tmp_path / "cur", "mcce", 0, BASE_IOU["mcce"])
    result = gate.compare(results_of(tmp_path / "cur"), baseline, {"all": "100pp"})
    train = next(r for r in result.rows if r.metric == "train")
    assert train.skipped and train.passed
    assert any("class train undefined in the baseline" in n for n in result.notes)


# ----------------------------------------------------------------------------- rules with seeds


def spread_runs(tmp_path, name, worst_values):
    """Seeds whose worst class (train) has the given IoUs."""
    for seed, worst in enumerate(worst_values):
        write_run(tmp_path / name, "mcce", seed, [0.95, 0.80, 0.60, 0.60, 0.85, worst])
    return results_of(tmp_path / name)


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12])
def test_spread_rule_agrees_with_a_two_sample_t_test(tmp_path, shift):
    base_values = [0.40, 0.44, 0.48]
    cur_values = [v - shift + d for v, d in zip(base_values, (0.01, -0.02, 0.005))]
    baseline = gate.make_baseline(spread_runs(tmp_path, "base", base_values))
    current = spread_runs(tmp_path, "cur", cur_values)
    row = next(r for r in gate.compare(current, baseline, {"all": "0pp"}, rule="spread").rows if r.metric == "worst")
    test = stats.ttest_ind(cur_values, base_values, equal_var=True, alternative="two-sided")
    significant_drop = test.pvalue < 0.05 and np.mean(cur_values) < np.mean(base_values)
    assert row.passed is (not significant_drop)
    # and the allowance is the t-interval half-width: at it the t statistic is the critical value
    pooled = math.sqrt((np.var(base_values, ddof=1) * 2 + np.var(cur_values, ddof=1) * 2) / 4)
    assert row.allowed == pytest.approx(100 * stats.t.ppf(0.975, 4) * pooled * math.sqrt(2 / 3), rel=1e-9)


def test_spread_rule_relaxes_the_fixed_rule_but_never_tightens_it(tmp_path):
    base = spread_runs(tmp_path, "base", [0.40, 0.44, 0.48])  # seed std 4 pp
    baseline = gate.make_baseline(base)
    current = spread_runs(tmp_path, "cur", [0.38, 0.41, 0.45])  # mean drop 2.67 pp
    worst = lambda rule: next(r for r in gate.compare(current, baseline, rule=rule).rows if r.metric == "worst")
    assert not worst("fixed").passed
    assert worst("spread").passed and worst("spread").allowed > 2.67
    # identical seeds: zero spread, so the fixed tolerance is the floor
    flat = gate.make_baseline(spread_runs(tmp_path, "flat", [0.44, 0.44, 0.44]))
    same = spread_runs(tmp_path, "same", [0.435, 0.435, 0.435])
    row = next(r for r in gate.compare(same, flat, rule="spread").rows if r.metric == "worst")
    assert row.allowed == gate.DEFAULT_TOLERANCES["worst"].value and row.passed


def test_spread_rule_with_one_seed_per_side_falls_back_with_a_note(tmp_path):
    baseline = gate.make_baseline(spread_runs(tmp_path, "base", [0.44]))
    result = gate.compare(spread_runs(tmp_path, "cur", [0.40]), baseline, rule="spread")
    assert any("fixed tolerances" in n for n in result.notes)
    assert not next(r for r in result.rows if r.metric == "worst").passed


def test_spread_rule_with_one_current_seed_uses_the_baseline_spread(tmp_path):
    baseline = gate.make_baseline(spread_runs(tmp_path, "base", [0.40, 0.44, 0.48]))
    row = next(
        r for r in gate.compare(spread_runs(tmp_path, "cur", [0.42]), baseline, rule="spread").rows
        if r.metric == "worst"
    )
    assert row.allowed == pytest.approx(100 * stats.t.ppf(0.975, 2) * 0.04 * math.sqrt(1 / 3 + 1))


def test_baseline_stores_seed_means_spread_and_per_seed_values(tmp_path):
    ious = {0: [0.9, 0.8, 0.3, 0.6, 0.8, 0.2], 1: [0.92, 0.78, 0.36, 0.58, 0.84, 0.1],
            2: [0.91, 0.8, 0.33, 0.61, 0.83, 0.3]}
    for seed, iou in ious.items():
        write_run(tmp_path / "runs", "mcce", seed, iou)
    record = gate.make_baseline(results_of(tmp_path / "runs"))["methods"]["mcce"]
    per_seed = np.array(list(ious.values()))
    assert record["seeds"] == [0, 1, 2] and record["n_seeds"] == 3
    np.testing.assert_allclose(list(record["iou"].values()), 100 * per_seed.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(list(record["iou_std"].values()), 100 * per_seed.std(axis=0, ddof=1), rtol=1e-12)
    worst = [100 * min(v) for v in ious.values()]
    assert record["fairness_per_seed"]["worst"] == pytest.approx(worst)
    assert record["fairness"]["worst"] == pytest.approx(np.mean(worst))
    assert record["fairness_std"]["worst"] == pytest.approx(np.std(worst, ddof=1))


def per_image_counts(seed, n_images=40, k=len(CLASSES)):  # noqa: B008 - a constant
    rng = np.random.default_rng(seed)
    return {
        "tp": rng.integers(5, 60, (n_images, k)),
        "fp": rng.integers(0, 25, (n_images, k)),
        "fn": rng.integers(0, 25, (n_images, k)),
    }


def write_counted_run(root, counts, method="mcce", seed=0):
    """A run whose IoU and fairness follow from its per-image counts, stored for the bootstrap."""
    tp, fp, fn = (counts[k].sum(0) for k in ("tp", "fp", "fn"))
    iou = list(tp / (tp + fp + fn))
    path = write_run(root, method, seed, iou)
    edit_json(path, lambda d: d.__setitem__("per_image", {k: v.tolist() for k, v in counts.items()}))
    return results_of(root)


def test_baseline_ci_halfwidths_match_scipy_bootstrap(tmp_path):
    counts = per_image_counts(0)
    record = gate.make_baseline(write_counted_run(tmp_path / "runs", counts))["methods"]["mcce"]
    iou_widths = [w / 100 for w in record["ci_halfwidth"]["iou"].values()]
    for c in range(len(CLASSES)):
        ref = stats.bootstrap(
            (counts["tp"][:, c], counts["fp"][:, c], counts["fn"][:, c]),
            lambda tp, fp, fn: tp.sum() / (tp.sum() + fp.sum() + fn.sum()),
            paired=True, vectorized=False, method="percentile", n_resamples=2000, random_state=1,
        ).confidence_interval
        # Monte-Carlo error of a 1,000-replicate percentile interval: ~10 % of its width
        assert iou_widths[c] == pytest.approx((ref.high - ref.low) / 2, rel=0.2)
    # per-image counts: image level gated too (no Boundary IoU counts, no groups in these runs)
    assert set(record["ci_halfwidth"]["fairness"]) == set(gate.METRICS) | {
        "miou_image", "miou_image_worst_5", "miou_image_worst_10", "miou_class"}
    assert all(w > 0 for w in record["ci_halfwidth"]["fairness"].values())


def test_ci_rule_allows_drops_inside_the_bootstrap_intervals(tmp_path):
    counts = per_image_counts(0)
    baseline = gate.make_baseline(write_counted_run(tmp_path / "base", counts))
    pole = CLASSES.index("pole")
    w_base = baseline["methods"]["mcce"]["ci_halfwidth"]["iou"]["pole"]

    def moved(name, share):
        # move a share of pole's true positives to false negatives: a pole IoU drop
        shifted = {k: v.copy() for k, v in counts.items()}
        delta = (shifted["tp"][:, pole] * share).astype(int)
        shifted["tp"][:, pole] -= delta
        shifted["fn"][:, pole] += delta
        runs = write_counted_run(tmp_path / name, shifted)
        result = gate.compare(runs, baseline, {"all": "100pp"}, per_class_tolerance="0pp", rule="ci")
        row = next(r for r in result.rows if r.metric == "pole")
        w_cur = gate.make_baseline(runs)["methods"]["mcce"]["ci_halfwidth"]["iou"]["pole"]
        assert row.allowed == pytest.approx(math.hypot(w_base, w_cur), rel=1e-12)
        fixed = gate.compare(runs, baseline, {"all": "100pp"}, per_class_tolerance="0pp")
        return row, next(r for r in fixed.rows if r.metric == "pole")

    small, small_fixed = moved("small", 0.05)
    assert 0 < -small.delta < small.allowed
    assert small.passed and not small_fixed.passed
    large, _ = moved("large", 0.5)
    assert -large.delta > large.allowed and not large.passed


def test_ci_rule_without_bootstrap_data_is_a_user_error(experiment):
    runs, baseline = experiment
    with pytest.raises(UserError, match="no intervals"):
        gate.compare(results_of(runs), gate.read_baseline(baseline), rule="ci")


# ----------------------------------------------------------------------------- summary


def parse_summary_tables(markdown: str) -> list[dict]:
    """Rows of every Markdown table as dicts keyed by the header cells."""
    rows, header = [], None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set("".join(cells)) <= set("-: "):
            rows.append(dict(zip(header, cells)))
    return rows


def test_summary_markdown_holds_the_right_deltas(experiment, tmp_path, capsys):
    runs, baseline = experiment
    changed = {
        "mcce": [0.95, 0.79, 0.27, 0.61, 0.85, 0.21],  # pole -3 pp: a per-class regression
        "focal": [0.94, 0.78, 0.39, 0.62, 0.84, 0.36],
    }
    current = write_experiment(tmp_path / "cur", iou=changed)
    summary = tmp_path / "summary.md"
    code, _, _ = call_main(capsys, "check", current, "--baseline", baseline, "--summary", summary)
    assert code == 1
    markdown = summary.read_text()
    assert markdown.startswith("## fairseg-bench check: ❌")
    rows = parse_summary_tables(markdown)
    fairness_rows = [r for r in rows if "metric" in r]
    class_rows = [r for r in rows if "class" in r]
    assert len(fairness_rows) == 2 * len(gate.METRICS)
    for row in fairness_rows:  # the sorted groups ranked by mcce, the reference
        before = reference_fairness(BASE_IOU[row["method"]], BASE_IOU["mcce"])[row["metric"]]
        after = reference_fairness(changed[row["method"]], changed["mcce"])[row["metric"]]
        assert float(row["baseline"]) == pytest.approx(100 * before, abs=0.005)
        assert float(row["current"]) == pytest.approx(100 * after, abs=0.005)
        assert float(row["Δ (pp)"]) == pytest.approx(100 * (after - before), abs=0.005)
        worse = (before - after) if row["metric"] in gate.HIGHER_IS_BETTER else (after - before)
        expected = "pass" if 100 * worse <= gate.DEFAULT_TOLERANCES[row["metric"]].value + 1e-7 else "FAIL"
        assert row["result"].endswith(expected), row
    failed_classes = {(r["method"], r["class"]) for r in class_rows if r["result"].endswith("FAIL")}
    assert failed_classes == {("mcce", "pole")}
    pole = next(r for r in class_rows if (r["method"], r["class"]) == ("mcce", "pole"))
    assert float(pole["Δ (pp)"]) == pytest.approx(-3.0) and float(pole["allowed (pp)"]) == 2.0
    # every class of every method is listed once in the full table (plus the failure again above)
    assert len(class_rows) == 2 * len(CLASSES) + 1


def test_summary_is_appended_like_github_step_summary(experiment, tmp_path):
    runs, baseline = experiment
    summary = tmp_path / "step_summary.md"
    summary.write_text("# earlier step output\n")
    proc = run_cli("check", runs, "--baseline", baseline, "--summary", summary)
    assert proc.returncode == 0
    text = summary.read_text()
    assert text.startswith("# earlier step output\n## fairseg-bench check: ✅ pass")
    assert all(r["result"].endswith("pass") for r in parse_summary_tables(text))


def test_failure_lines_are_one_per_failing_metric(experiment, tmp_path):
    runs, baseline = experiment
    worse = {"mcce": [0.90, 0.80, 0.20, 0.60, 0.85, 0.10], "focal": BASE_IOU["focal"]}
    result = gate.compare(results_of(write_experiment(tmp_path / "cur", iou=worse)), gate.read_baseline(baseline))
    lines = result.failure_lines()
    assert len(lines) == len(result.failures) and all(line.startswith("REGRESSION mcce ") for line in lines)
    named = {re.match(r"REGRESSION mcce (\S+):", line).group(1) for line in lines}
    ref_b, ref_c = reference_fairness(BASE_IOU["mcce"]), reference_fairness(worse["mcce"])
    expected = {
        m
        for m in gate.METRICS
        if 100 * (ref_b[m] - ref_c[m] if m in gate.HIGHER_IS_BETTER else ref_c[m] - ref_b[m])
        > gate.DEFAULT_TOLERANCES[m].value + 1e-7
    } | {"iou[road]", "iou[pole]", "iou[train]"}
    assert named == expected


def test_fairness_missing_from_a_run_is_computed_from_its_ious(tmp_path):
    path = write_run(tmp_path / "runs", "mcce", 0, BASE_IOU["mcce"])
    edit_json(path, lambda d: d.pop("fairness"))
    record = gate.make_baseline(results_of(tmp_path / "runs"))["methods"]["mcce"]
    expected = reference_fairness(BASE_IOU["mcce"])
    assert record["fairness"] == pytest.approx({m: 100 * expected[m] for m in gate.METRICS}, rel=1e-12)


def test_another_torch_or_device_is_a_note_not_a_failure(experiment, tmp_path):
    runs, baseline = experiment
    for path in Path(runs).rglob("metrics.json"):
        edit_json(path, lambda d: d.__setitem__("environment", {"torch": "9.9", "device": "cpu: x86_64"}))
    assert not gate.compare(results_of(runs), gate.read_baseline(baseline)).notes  # baseline's unknown
    edit_json(baseline, lambda d: d.__setitem__("environment", {"torch": "2.4.0", "device": "cpu: x86_64"}))
    result = gate.compare(results_of(runs), gate.read_baseline(baseline))
    assert result.passed
    assert [n for n in result.notes if n.startswith("baseline made with")] == [
        "baseline made with torch 2.4.0, runs with 9.9: float results may differ within the tolerances"
    ]


def test_sorted_bottom_is_ranked_by_the_reference_as_in_report_and_metrics(tmp_path, capsys):
    """focal's own bottom classes differ from mcce's: the gate uses mcce's, like the paper's Table 3."""
    iou = {"mcce": BASE_IOU["mcce"], "focal": [0.93, 0.30, 0.60, 0.62, 0.84, 0.65]}
    runs = write_experiment(tmp_path / "runs", iou=iou)
    baseline = tmp_path / "b.json"
    assert call_main(capsys, "check", runs, "--baseline", baseline, "--update")[0] == 0
    stored = json.loads(baseline.read_text())["methods"]["focal"]["fairness"]
    by_reference = reference_fairness(iou["focal"], iou["mcce"])
    by_itself = reference_fairness(iou["focal"])
    assert by_reference["sorted_bottom"] != pytest.approx(by_itself["sorted_bottom"])
    assert stored["sorted_bottom"] == pytest.approx(100 * by_reference["sorted_bottom"])
    code, out, _ = call_main(capsys, "metrics", runs, "--format", "json")
    assert json.loads(out)["methods"]["focal"]["fairness"]["sorted_bottom"] == stored["sorted_bottom"]


def test_a_fairness_block_that_disagrees_with_the_ious_names_the_file(tmp_path, capsys):
    path = write_run(tmp_path / "runs", "mcce", 0, BASE_IOU["mcce"])
    edit_json(path, lambda d: d["fairness"].__setitem__("worst", 0.5))
    for command in (["metrics"], ["report", "--out", tmp_path / "rep", "--no-figures"],
                    ["check", "--baseline", tmp_path / "b.json", "--update"]):
        code, _, err = call_main(capsys, command[0], tmp_path / "runs", *command[1:])
        assert code == 2 and str(path) in err and "disagrees with itself" in err
