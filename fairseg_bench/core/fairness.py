"""The TCE paper's fairness metrics across classes (its Table 3) and a few standard extras.

numpy only. Definitions (docs/definitions.md), with K classes and fraction f (0.25 in the paper):

- ``miou``: mean IoU over the classes.
- ``sorted_bottom`` / ``sorted_top``: the classes are ranked by the **reference** model's IoU
  (ascending; ties broken by class index, stably); k = ceil(f·K) (5 of 19); the mean of *this*
  model's IoU over the reference's bottom k and top k classes.
- ``pct_bottom_threshold`` / ``pct_top_threshold``: the 100·f-th and 100·(1−f)-th percentiles of
  the model's own IoUs (linear interpolation, numpy's default); ``pct_bottom_mean`` /
  ``pct_top_mean``: the mean of the IoUs ≤ / ≥ that threshold.
- ``worst`` (minimum), ``std`` (sample standard deviation, ddof = 1).
- Extras: ``best`` (maximum), ``gap`` (best − worst), ``cov`` (std / miou, the coefficient of
  variation), ``gini`` (Gini coefficient of the IoUs: mean absolute difference over twice the
  mean; 0 = all classes equal), ``n_classes`` (classes counted) and ``k`` (the sorted group size).

NaN (a class with no ground truth and no prediction) is excluded everywhere: K counts only the
classes with a finite IoU. A class whose **reference** IoU is NaN cannot be ranked: it belongs to
neither sorted group, and k = ceil(f·K_ref) with K_ref the number of classes the reference
ranks. A class ranked by the reference but NaN for the model stays in its group and is left out
of that group's mean.

Values keep the scale they come in (fractions in → fractions out, percent in → percent out);
``cov``, ``gini``, ``n_classes`` and ``k`` have no unit. Everything is vectorised over leading
dimensions, so a ``(B, K)`` stack of bootstrap replicates is one call.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["fairness_metrics", "reference_order", "cut_ties", "sorted_group_range", "FAIRNESS_KEYS", "PAPER_KEYS",
           "COUNT_KEYS", "UNITLESS_KEYS"]

#: The keys of Table 3 of the paper, in its column order (plus ``miou`` first).
PAPER_KEYS = (
    "miou",
    "sorted_bottom",
    "sorted_top",
    "pct_bottom_threshold",
    "pct_bottom_mean",
    "pct_top_threshold",
    "pct_top_mean",
    "worst",
    "std",
)
#: What the metrics were computed over (the classes with an IoU, the size of a sorted group): counts, not metrics.
COUNT_KEYS = ("n_classes", "k")
#: Every key ``fairness_metrics`` returns, in a stable order.
FAIRNESS_KEYS = PAPER_KEYS + ("best", "gap", "cov", "gini") + COUNT_KEYS
#: Keys that are not IoUs (no percent/fraction scale).
UNITLESS_KEYS = ("cov", "gini", "n_classes", "k")


def _masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of x over mask along the last axis, NaNs in x skipped; NaN where nothing is left."""
    use = mask & ~np.isnan(x)
    count = use.sum(-1)
    total = np.where(use, x, 0.0).sum(-1)
    return _divide(total, count)


def _divide(num, den) -> np.ndarray:
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _group_size(fraction: float, n: np.ndarray) -> np.ndarray:
    """k = ceil(f·n); rounding first so that e.g. 0.1·30 = 3.0000000000000004 gives 3, not 4."""
    return np.ceil(np.round(fraction * n, 9)).astype(np.int64)


def _ranks(reference: np.ndarray) -> np.ndarray:
    """Rank of each class in the ascending order of the reference (ties: lower index first).

    numpy sorts NaN last, so the ``n`` ranked classes get ranks 0..n-1.
    """
    order = np.argsort(reference, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(reference.shape[-1]), axis=-1)
    return ranks


def _sorted_groups(x: np.ndarray, reference: np.ndarray, fraction: float) -> tuple[np.ndarray, ...]:
    """Means of x over the reference's bottom-k and top-k classes, and k."""
    ranked = ~np.isnan(reference)
    n_ranked = ranked.sum(-1)
    k = _group_size(fraction, n_ranked)
    ranks = _ranks(reference)
    bottom = ranked & (ranks < k[..., None])
    top = ranked & (ranks >= (n_ranked - k)[..., None])
    return _masked_mean(x, bottom), _masked_mean(x, top), k


def nan_percentile(x: np.ndarray, q: float) -> np.ndarray:
    """``np.nanpercentile(x, q, axis=-1)`` (linear interpolation), vectorised.

    numpy's own version loops over rows in Python when NaNs are present; this one sorts once.
    """
    xs = np.sort(x, axis=-1)  # NaN last
    n = (~np.isnan(xs)).sum(-1)
    pos = np.maximum(n - 1, 0) * (q / 100.0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    a = np.take_along_axis(xs, lo[..., None], -1)[..., 0]
    b = np.take_along_axis(xs, hi[..., None], -1)[..., 0]
    t = pos - lo
    diff = b - a
    # numpy's _lerp: interpolate from the nearer end, so the result is exact at t = 0 and 1
    out = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return np.where(n > 0, out, np.nan)


def _gini(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Gini coefficient over the finite entries: sum_i (2i - n - 1) x_(i) / (n sum x)."""
    xs = np.sort(x, axis=-1)  # NaN last
    i = np.arange(1, x.shape[-1] + 1)
    valid = i <= n[..., None]
    weights = np.where(valid, 2 * i - n[..., None] - 1, 0)
    values = np.where(valid, xs, 0.0)
    return _divide((weights * values).sum(-1), n * values.sum(-1))


def _batch_metrics(x: np.ndarray, reference: np.ndarray, fraction: float) -> dict[str, np.ndarray]:
    """All metrics for x of shape (B, K) against a reference of the same shape."""
    valid = ~np.isnan(x)
    n = valid.sum(-1)
    miou = _masked_mean(x, valid)
    sorted_bottom, sorted_top, k = _sorted_groups(x, reference, fraction)
    with warnings.catch_warnings():  # all-NaN rows give NaN, which is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        low_thr = nan_percentile(x, 100 * fraction)
        high_thr = nan_percentile(x, 100 * (1 - fraction))
        worst = np.nanmin(x, axis=-1)
        best = np.nanmax(x, axis=-1)
        std = np.nanstd(x, axis=-1, ddof=1)
    std = np.where(n >= 2, std, np.nan)
    return {
        "miou": miou,
        "sorted_bottom": sorted_bottom,
        "sorted_top": sorted_top,
        "pct_bottom_threshold": low_thr,
        "pct_bottom_mean": _masked_mean(x, valid & (x <= low_thr[..., None])),
        "pct_top_threshold": high_thr,
        "pct_top_mean": _masked_mean(x, valid & (x >= high_thr[..., None])),
        "worst": worst,
        "std": std,
        "best": best,
        "gap": best - worst,
        "cov": _divide(std, miou),
        "gini": _gini(x, n),
        "n_classes": n,
        "k": k,
    }


def fairness_metrics(iou: ArrayLike, reference: ArrayLike | None = None, fraction: float = 0.25) -> dict:
    """The paper's fairness metrics of one model (or a stack of replicates).

    Args:
        iou: per-class IoU, NaN for classes to leave out; fractions or percent.
        reference: the reference model's per-class IoU (same classes, same scale), used only to
            rank the classes for ``sorted_bottom``/``sorted_top``; default: ``iou`` itself.
            It may have the shape of ``iou`` (one reference per replicate) or ``(K,)``.
        fraction: f, the share of classes in each sorted group and the percentile (0.25).

    Returns:
        dict with the keys of ``FAIRNESS_KEYS``: Python floats (``n_classes`` and ``k`` ints)
        for a ``(K,)`` input, numpy arrays of shape ``(...)`` for ``(..., K)``.

    Shape:
        iou ``(..., K)``; reference ``(K,)`` or ``(..., K)``.

    Example:
        >>> fairness_metrics([0.5, 0.7, 0.9, 0.6])["sorted_bottom"]
        0.5
    """
    x = np.asarray(iou, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"iou must have at least one class, got shape {x.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    ref = x if reference is None else np.asarray(reference, dtype=np.float64)
    if ref.shape[-1:] != x.shape[-1:]:
        raise ValueError(f"reference has {ref.shape[-1] if ref.ndim else 0} classes, iou has {x.shape[-1]}")
    ref = np.broadcast_to(ref, x.shape)
    flat = _batch_metrics(x.reshape(-1, x.shape[-1]), ref.reshape(-1, x.shape[-1]), fraction)
    if x.ndim == 1:
        return {key: (int(v[0]) if key in ("n_classes", "k") else float(v[0])) for key, v in flat.items()}
    return {key: v.reshape(x.shape[:-1]) for key, v in flat.items()}


def reference_order(reference) -> np.ndarray:
    """Class indices in ascending order of the reference IoU; ties by class index, NaN last.

    Example:
        >>> reference_order([0.5, 0.1, float("nan"), 0.1]).tolist()
        [1, 3, 0, 2]
    """
    return np.argsort(np.asarray(reference, dtype=np.float64), kind="stable")


def cut_ties(reference, fraction: float = 0.25) -> dict[str, list[int]]:
    """Classes tied across the bottom-k or top-k cut of the reference ordering.

    When the k-th and the (k+1)-th ranked classes have the same reference IoU, which of them
    falls in the group is decided by class index only: every class with that value is listed.

    Returns:
        ``{"bottom": [class indices], "top": [...]}``, each empty when the cut is clean.

    Example:
        >>> cut_ties([0.0, 0.0, 0.5, 0.9], fraction=0.25)
        {'bottom': [0, 1], 'top': []}
    """
    ref = np.asarray(reference, dtype=np.float64)
    ranked = reference_order(ref)[: int((~np.isnan(ref)).sum())]
    n = ranked.size
    k = int(_group_size(fraction, np.asarray(n)))
    out: dict[str, list[int]] = {"bottom": [], "top": []}
    for name, inside, outside in (("bottom", k - 1, k), ("top", n - k, n - k - 1)):
        if 0 <= inside < n and 0 <= outside < n and ref[ranked[inside]] == ref[ranked[outside]]:
            value = ref[ranked[inside]]
            out[name] = [int(c) for c in np.flatnonzero(ref == value)]
    return out


def sorted_group_range(iou, reference, fraction: float = 0.25, group: str = "bottom") -> tuple[float, float]:
    """The least and the greatest ``sorted_<group>`` over every way of breaking the reference's ties.

    Classes tied at the cut (see ``cut_ties``) are filled into the group in the model's own worst
    order (for the least value) and best order (for the greatest).

    Example:
        >>> sorted_group_range([0.3, 0.9, 0.5, 0.8], [0.0, 0.0, 0.5, 0.9], 0.25)
        (0.3, 0.9)
    """
    x, ref = np.asarray(iou, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    ranked = reference_order(ref)[: int((~np.isnan(ref)).sum())]
    k = int(_group_size(fraction, np.asarray(ranked.size)))
    members = ranked[:k] if group == "bottom" else ranked[ranked.size - k:]
    tied = cut_ties(ref, fraction)[group]
    fixed = [c for c in members if c not in tied]
    slots = k - len(fixed)
    candidates = np.sort(x[tied]) if tied else np.array([])
    if not k:
        return math.nan, math.nan
    low = np.nanmean(np.concatenate([x[fixed], candidates[:slots]]))
    high = np.nanmean(np.concatenate([x[fixed], candidates[candidates.size - slots:] if slots else []]))
    return float(low), float(high)
