"""Bootstrap intervals over images, paired differences and seed aggregation."""
import numpy as np
import pytest
from scipy import stats as sps

from fairseg_bench.core.fairness import FAIRNESS_KEYS, fairness_metrics
from fairseg_bench.core.stats import (
    bootstrap_ci,
    bootstrap_counts,
    bootstrap_iou,
    paired_bootstrap,
    resample_totals,
    seed_summary,
)

# A population where the truth is known: per image, tp/fp/fn are Poisson with image-level
# gamma multipliers of mean 1, so the dataset IoU converges to lam_tp / (lam_tp + lam_fp + lam_fn).
LAM = {
    "tp": np.array([500.0, 300, 60, 25, 800]),
    "fp": np.array([100.0, 200, 40, 30, 50]),
    "fn": np.array([80.0, 100, 60, 10, 70]),
}
TRUE_IOU = LAM["tp"] / (LAM["tp"] + LAM["fp"] + LAM["fn"])


def simulate(rng, n_images=60, shift=0.0):
    """Per-image statistics from the population above (``shift`` moves tp <-> fn)."""
    mult = rng.gamma(2.0, 0.5, (n_images, 5, 3))
    tp = LAM["tp"] * (1 + shift)
    fn = np.maximum(LAM["fn"] - LAM["tp"] * shift, 1)
    return {
        "tp": rng.poisson(tp * mult[..., 0]),
        "fp": rng.poisson(LAM["fp"] * mult[..., 1]),
        "fn": rng.poisson(fn * mult[..., 2]),
    }


def test_counts_and_totals():
    counts = bootstrap_counts(7, 50, seed=1)
    assert counts.shape == (50, 7) and (counts.sum(1) == 7).all()
    stats = simulate(np.random.default_rng(0), n_images=7)
    totals = resample_totals(stats, counts)
    np.testing.assert_array_equal(totals["tp"][3], (counts[3][:, None] * stats["tp"]).sum(0))  # exact


def test_bootstrap_is_seeded_and_centred_on_the_pooled_iou():
    stats = simulate(np.random.default_rng(1))
    a, b = bootstrap_iou(stats, 100, seed=3), bootstrap_iou(stats, 100, seed=3)
    np.testing.assert_array_equal(a, b)
    result = bootstrap_ci(stats, n_boot=300, seed=0)
    pooled = stats["tp"].sum(0) / (stats["tp"].sum(0) + stats["fp"].sum(0) + stats["fn"].sum(0))
    np.testing.assert_allclose(result["iou"]["estimate"], pooled)
    assert (result["iou"]["low"] <= pooled).all() and (pooled <= result["iou"]["high"]).all()
    assert set(FAIRNESS_KEYS) <= set(result)
    assert result["miou"]["estimate"] == pytest.approx(fairness_metrics(pooled)["miou"])


def test_identical_images_give_a_zero_width_interval():
    one = {k: np.tile(v.astype(np.int64)[None], (20, 1)) for k, v in LAM.items()}
    result = bootstrap_ci(one, n_boot=50)
    np.testing.assert_allclose(result["iou"]["low"], result["iou"]["high"])
    np.testing.assert_allclose(result["iou"]["low"], TRUE_IOU)


def test_coverage_at_about_the_nominal_rate():
    """200 simulated evaluations x 200 replicates: the 90 % intervals of each class IoU and of
    the mIoU cover the truth about 90 % of the time."""
    rng = np.random.default_rng(12345)
    covered_iou, covered_miou = [], []
    for sim in range(200):
        result = bootstrap_ci(simulate(rng), n_boot=200, confidence=0.9, seed=sim)
        covered_iou.append((result["iou"]["low"] <= TRUE_IOU) & (TRUE_IOU <= result["iou"]["high"]))
        covered_miou.append(result["miou"]["low"] <= TRUE_IOU.mean() <= result["miou"]["high"])
    rate_iou, rate_miou = np.mean(covered_iou), np.mean(covered_miou)
    assert 0.85 <= rate_iou <= 0.95, rate_iou  # 1000 (correlated) trials around 0.90
    assert 0.83 <= rate_miou <= 0.96, rate_miou


def test_paired_bootstrap_of_identical_models_is_zero():
    stats = simulate(np.random.default_rng(2))
    result = paired_bootstrap(stats, stats, n_boot=100)
    for key in ("iou", "miou", "sorted_bottom", "std", "gini"):
        np.testing.assert_array_equal(result[key]["low"], 0)
        np.testing.assert_array_equal(result[key]["high"], 0)


def test_paired_bootstrap_detects_a_real_improvement_that_unpaired_intervals_blur():
    rng = np.random.default_rng(3)
    base = simulate(rng)
    # the same images, every class improved a little: share the image multipliers
    better = {k: v.copy() for k, v in base.items()}
    moved = np.round(0.08 * base["fn"]).astype(np.int64)
    better["tp"] = base["tp"] + moved
    better["fn"] = base["fn"] - moved
    paired = paired_bootstrap(better, base, n_boot=400, seed=1)
    assert (paired["iou"]["low"] > 0).all()
    assert paired["miou"]["low"] > 0 and paired["miou"]["p_le_zero"] == 0
    a, b = bootstrap_ci(better, n_boot=400, seed=1), bootstrap_ci(base, n_boot=400, seed=2)
    assert a["miou"]["low"] < b["miou"]["high"]  # separately, the intervals overlap


def test_reference_as_other_model_stats_or_fixed_vector():
    rng = np.random.default_rng(4)
    model, ref = simulate(rng), simulate(rng)
    ref_iou = ref["tp"].sum(0) / (ref["tp"].sum(0) + ref["fp"].sum(0) + ref["fn"].sum(0))
    model_iou = model["tp"].sum(0) / (model["tp"].sum(0) + model["fp"].sum(0) + model["fn"].sum(0))
    expected = fairness_metrics(model_iou, ref_iou)["sorted_bottom"]
    assert bootstrap_ci(model, reference=ref, n_boot=20)["sorted_bottom"]["estimate"] == pytest.approx(expected)
    assert bootstrap_ci(model, reference=ref_iou, n_boot=20)["sorted_bottom"]["estimate"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="not the same images"):
        bootstrap_ci(model, reference={k: v[:5] for k, v in ref.items()}, n_boot=5)


def test_seed_summary_matches_scipy_t_interval():
    values = [0.71, 0.74, 0.69, 0.73]
    out = seed_summary(values, confidence=0.95)
    mean, std = np.mean(values), np.std(values, ddof=1)
    half = sps.t.ppf(0.975, 3) * std / 2
    assert out["n"] == 4 and out["mean"] == pytest.approx(mean) and out["std"] == pytest.approx(std)
    assert out["low"] == pytest.approx(mean - half) and out["high"] == pytest.approx(mean + half)
    per_class = seed_summary(np.array([[0.1, 0.5], [0.3, 0.5]]))
    assert per_class["low"][1] == per_class["high"][1] == 0.5  # equal seeds: a point interval
    single = seed_summary([0.7])
    assert single["mean"] == 0.7 and np.isnan(single["std"]) and np.isnan(single["low"])


def test_invalid_statistics():
    with pytest.raises(ValueError, match="tp, fp, fn"):
        bootstrap_iou({"tp": np.ones((2, 2))})
    with pytest.raises(ValueError, match="share one shape"):
        bootstrap_iou({"tp": np.ones((2, 2)), "fp": np.ones((2, 3)), "fn": np.ones((2, 2))})
