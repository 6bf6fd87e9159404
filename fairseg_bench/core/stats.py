"""Uncertainty: bootstrap over images, paired bootstrap of differences, aggregation over seeds.

numpy/scipy only. The bootstrap works on the compact per-image statistics kept by
``ConfusionMatrix(per_image=True)`` — TP, FP and FN per image and class, shape ``(N, K)`` — never
on the label maps: a replicate draws N images with replacement, re-sums their counts and
recomputes every IoU and fairness metric from the totals (the dataset-level IoU, as the point
estimate is). All replicates are drawn at once as a ``(B, N)`` matrix of multinomial counts, so
the re-summing is one matrix product (exact in float64 up to 2**53 pixels).

Intervals are percentile intervals of the replicates. A class that a replicate happens not to
contain (no ground truth, no prediction) is NaN in that replicate and left out of its interval.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from fairseg_bench.core.fairness import fairness_metrics, nan_percentile

__all__ = [
    "bootstrap_counts",
    "resample_totals",
    "bootstrap_iou",
    "percentile_interval",
    "bootstrap_ci",
    "paired_bootstrap",
    "seed_summary",
    "seed_std",
    "bootstrap_seed_iou",
    "draw_seeds",
    "spread_halfwidth",
]

_STATS = ("tp", "fp", "fn")


def _per_image(stats) -> dict[str, np.ndarray]:
    """Validate ``{"tp", "fp", "fn"}`` arrays of one shape ``(N, K)``."""
    if not all(key in stats for key in _STATS):
        raise ValueError(f"per-image statistics need the keys tp, fp, fn; got {sorted(stats)}")
    arrays = {key: np.asarray(stats[key], dtype=np.float64) for key in _STATS}
    shape = arrays["tp"].shape
    if len(shape) != 2 or any(a.shape != shape for a in arrays.values()):
        raise ValueError(f"tp, fp, fn must share one shape (N_images, K); got {[a.shape for a in arrays.values()]}")
    if shape[0] == 0:
        raise ValueError("per-image statistics hold no image")
    return arrays


def _iou(tp, fp, fn) -> np.ndarray:
    den = tp + fp + fn
    out = np.full(np.shape(den), np.nan)
    np.divide(tp, den, out=out, where=den > 0)
    return out


def bootstrap_counts(n_images: int, n_boot: int, seed=0) -> np.ndarray:
    """How often each image is drawn in each replicate.

    Returns:
        int64 ``(n_boot, n_images)``; each row sums to ``n_images``.
    """
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n_boot)


def resample_totals(stats, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Dataset totals of tp/fp/fn for every replicate.

    Shape:
        stats: ``{"tp","fp","fn"}`` each ``(N, K)``; counts ``(B, N)`` -> each ``(B, K)``.
    """
    stats = _per_image(stats)
    weights = np.asarray(counts, dtype=np.float64)
    return {key: weights @ stats[key] for key in _STATS}


def bootstrap_iou(stats, n_boot: int = 1000, seed=0) -> np.ndarray:
    """Per-class IoU of ``n_boot`` bootstrap replicates over images.

    Shape:
        stats ``(N, K)`` each -> ``(n_boot, K)``.
    """
    stats = _per_image(stats)
    totals = resample_totals(stats, bootstrap_counts(stats["tp"].shape[0], n_boot, seed))
    return _iou(totals["tp"], totals["fp"], totals["fn"])


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval along axis 0, NaN replicates left out."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    alpha = 100 * (1 - confidence) / 2
    columns = np.moveaxis(np.asarray(samples, dtype=np.float64), 0, -1)
    return nan_percentile(columns, alpha), nan_percentile(columns, 100 - alpha)


def _float_or_array(value):
    """0-d arrays and numpy scalars to Python floats; arrays stay arrays."""
    value = np.asarray(value, dtype=np.float64)
    return float(value) if value.ndim == 0 else value


def _interval(estimate, samples, confidence) -> dict:
    low, high = percentile_interval(samples, confidence)
    return {"estimate": _float_or_array(estimate), "low": _float_or_array(low), "high": _float_or_array(high)}


def _summaries(estimate_iou, replicate_iou, estimate_ref, replicate_ref, fraction, confidence) -> dict:
    """Intervals for the per-class IoU and every fairness metric."""
    point = fairness_metrics(estimate_iou, estimate_ref, fraction)
    reps = fairness_metrics(replicate_iou, replicate_ref, fraction)
    out = {"iou": _interval(estimate_iou, replicate_iou, confidence)}
    for key, value in point.items():
        out[key] = _interval(value, reps[key], confidence)
    return out


def bootstrap_ci(
    stats,
    *,
    reference=None,
    fraction: float = 0.25,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed=0,
) -> dict:
    """Bootstrap confidence intervals for each class IoU and each fairness metric of one model.

    Args:
        stats: per-image ``{"tp", "fp", "fn"}``, each ``(N_images, K)``.
        reference: how ``sorted_bottom``/``sorted_top`` rank the classes: None ranks by the model
            itself (re-ranked in every replicate, as the statistic is defined); a ``(K,)`` IoU
            vector (same scale: fractions) is a fixed ranking; another model's per-image stats on
            the same images are resampled together with this model's (the paper's MCCE ranking).
        fraction: f of the fairness metrics.
        n_boot: number of replicates B.
        confidence: interval level.
        seed: seed of numpy's default generator.

    Returns:
        ``{"iou": {"estimate", "low", "high"} ((K,) arrays), key: {"estimate", "low", "high"}
        for every key of ``fairness_metrics``}``; IoUs as fractions.
    """
    stats = _per_image(stats)
    n_images = stats["tp"].shape[0]
    counts = bootstrap_counts(n_images, n_boot, seed)
    totals = resample_totals(stats, counts)
    estimate = _iou(*(stats[key].sum(0) for key in _STATS))
    replicates = _iou(totals["tp"], totals["fp"], totals["fn"])
    ref_estimate, ref_replicates = _reference_replicates(reference, counts, n_images)
    return _summaries(estimate, replicates, ref_estimate, ref_replicates, fraction, confidence)


def _reference_replicates(reference, counts, n_images):
    """(estimate, replicates) of the ranking reference, or (None, None) for 'the model itself'."""
    if reference is None:
        return None, None
    if isinstance(reference, dict):
        ref = _per_image(reference)
        if ref["tp"].shape[0] != n_images:
            raise ValueError(f"the reference has {ref['tp'].shape[0]} images, the model {n_images}: "
                             "not the same images")
        totals = resample_totals(ref, counts)
        return _iou(*(ref[key].sum(0) for key in _STATS)), _iou(totals["tp"], totals["fp"], totals["fn"])
    reference = np.asarray(reference, dtype=np.float64)
    return reference, reference


def paired_bootstrap(
    stats_a,
    stats_b,
    *,
    rank_by: str = "b",
    fraction: float = 0.25,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed=0,
) -> dict:
    """Bootstrap CI of the difference a − b between two models evaluated on the same images.

    Both models are resampled with the same images in every replicate, so the variation the
    two share (hard images) cancels out of the difference.

    Args:
        stats_a, stats_b: per-image ``{"tp", "fp", "fn"}`` of the two models, same images in
            the same order.
        rank_by: ``"b"`` (default: b is the baseline, as the paper ranks every model by MCCE),
            ``"a"``, or ``"self"`` (each model ranked by its own IoUs) for the sorted groups.
        fraction, n_boot, confidence, seed: as in ``bootstrap_ci``.

    Returns:
        Like ``bootstrap_ci``, for the differences, plus ``"p_le_zero"`` under each key: the
        share of replicates where the difference is ≤ 0 (a one-sided bootstrap p-value for
        "a is better").
    """
    a, b = _per_image(stats_a), _per_image(stats_b)
    if a["tp"].shape != b["tp"].shape:
        raise ValueError(f"the two models' statistics differ in shape: {a['tp'].shape} vs {b['tp'].shape}")
    if rank_by not in ("a", "b", "self"):
        raise ValueError(f"rank_by must be 'a', 'b' or 'self', got {rank_by!r}")
    counts = bootstrap_counts(a["tp"].shape[0], n_boot, seed)
    iou = {}
    for name, stats in (("a", a), ("b", b)):
        totals = resample_totals(stats, counts)
        iou[name] = (_iou(*(stats[key].sum(0) for key in _STATS)), _iou(totals["tp"], totals["fp"], totals["fn"]))
    ref = {"a": iou["a"], "b": iou["b"], "self": (None, None)}[rank_by]
    out = {}
    diff_est = iou["a"][0] - iou["b"][0]
    diff_rep = iou["a"][1] - iou["b"][1]
    out["iou"] = _interval(diff_est, diff_rep, confidence) | {"p_le_zero": _share_le_zero(diff_rep)}
    fa = fairness_metrics(iou["a"][0], ref[0], fraction), fairness_metrics(iou["a"][1], ref[1], fraction)
    fb = fairness_metrics(iou["b"][0], ref[0], fraction), fairness_metrics(iou["b"][1], ref[1], fraction)
    for key in fa[0]:
        reps = np.asarray(fa[1][key], dtype=np.float64) - np.asarray(fb[1][key], dtype=np.float64)
        out[key] = _interval(fa[0][key] - fb[0][key], reps, confidence) | {"p_le_zero": _share_le_zero(reps)}
    return out


def _share_le_zero(replicates: np.ndarray) -> np.ndarray:
    """Share of non-NaN replicates ≤ 0, along axis 0."""
    valid = ~np.isnan(replicates)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _float_or_array(((replicates <= 0) & valid).sum(0) / valid.sum(0))


def seed_summary(values, confidence: float = 0.95) -> dict:
    """Mean, sample std and Student-t interval of a metric over seeds.

    Args:
        values: one value per seed along axis 0 (e.g. ``(S,)`` mIoUs or ``(S, K)`` IoUs).
        confidence: interval level.

    Returns:
        ``{"n", "mean", "std", "sem", "low", "high"}``; with one seed std and the interval are NaN.

    Shape:
        values ``(S, ...)`` -> each ``(...)``.
    """
    from scipy import stats as sps

    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError("seed_summary needs at least one value")
    n = x.shape[0]
    mean = x.mean(0)
    std = x.std(0, ddof=1) if n > 1 else np.full(mean.shape, np.nan)
    sem = std / np.sqrt(n)
    if n > 1:
        with np.errstate(invalid="ignore"):
            low, high = sps.t.interval(confidence, n - 1, loc=mean, scale=sem)
        # scale 0 (all seeds equal) makes scipy return NaN; the interval is the point itself
        low, high = np.where(sem == 0, mean, low), np.where(sem == 0, mean, high)
    else:
        low = high = np.full(mean.shape, np.nan)
    scalar = x.ndim == 1
    pack = (lambda v: float(v)) if scalar else (lambda v: np.asarray(v))
    return {"n": n, "mean": pack(mean), "std": pack(std), "sem": pack(sem), "low": pack(low), "high": pack(high)}


def seed_std(values) -> np.ndarray:
    """Sample std (ddof = 1) over seeds, axis 0, NaN values left out; NaN with fewer than two.

    Shape:
        values ``(S, ...)`` -> ``(...)``.

    Example:
        >>> seed_std([[1.0, 2.0], [3.0, 2.0]]).tolist()
        [1.4142135623730951, 0.0]
    """
    x = np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        std = np.nanstd(x, axis=0, ddof=1)
    return np.where((~np.isnan(x)).sum(0) >= 2, std, np.nan)


def bootstrap_seed_iou(stats, counts: np.ndarray) -> np.ndarray:
    """Per-seed IoU (fractions) of every replicate of the image draw ``counts``.

    Shape:
        stats ``{"tp", "fp", "fn"}`` each ``(S, N, K)``; counts ``(B, N)`` -> ``(B, S, K)``.
    """
    per_seed = []
    for s in range(np.shape(stats["tp"])[0]):
        totals = resample_totals({k: stats[k][s] for k in _STATS}, counts)
        per_seed.append(_iou(totals["tp"], totals["fp"], totals["fn"]))
    return np.stack(per_seed, axis=1)


def draw_seeds(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Redraw the seeds of each replicate with replacement (the second level of the bootstrap).

    With one seed this changes nothing; with several the seed-to-seed spread enters the
    intervals. Shape ``(B, S, K) -> (B, S, K)``.
    """
    b, s = values.shape[:2]
    drawn = rng.integers(0, s, size=(b, s))
    return np.take_along_axis(values, drawn[:, :, None], axis=1)


def spread_halfwidth(base_values, cur_values, confidence: float = 0.95) -> float | None:
    """Half-width of the Student-t interval of ``mean(cur) - mean(base)`` from the seeds' spread.

    Pooled sample variance over both sides (only the side with two or more seeds if the other
    has one); None when neither side has two seeds.

    Example:
        >>> round(spread_halfwidth([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]), 3)
        2.267
    """
    from scipy import stats as sps

    b = np.asarray(base_values, dtype=np.float64)
    c = np.asarray(cur_values, dtype=np.float64)
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    if b.size == 0 or c.size == 0:
        return None
    sq = sum(((x - x.mean()) ** 2).sum() for x in (b, c) if x.size >= 2)
    df = sum(x.size - 1 for x in (b, c) if x.size >= 2)
    if df == 0:
        return None
    s = math.sqrt(sq / df)
    return float(sps.t.ppf(0.5 + confidence / 2, df) * s * math.sqrt(1 / b.size + 1 / c.size))
