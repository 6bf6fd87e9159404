"""Fairness across groups of images (numpy only): per-group IoU, worst group, gap, equity-scaled scores.

The images of a split fall into G groups (a capture sequence, a city, a weather condition). From
the per-image TP/FP/FN of one model, shape ``(N, K)``, and one group id per image, shape ``(N,)``:

- per group g: ``IoU_{g,c}`` from the counts summed over the images of g (dataset-level within
  the group), ``mIoU_g`` its mean over classes (NaN left out), and ``P̄_g``: the mean of the
  per-image score ``mIoU_i`` (:func:`fairseg_bench.core.image_metrics.image_miou`) over g;
- across groups: the worst group ``min_g mIoU_g``, the gap ``max_g mIoU_g − min_g mIoU_g``, and
  the worst (group, class) cell ``min IoU_{g,c}``;
- equity-scaled performance, both published variants, on the per-image score (fractions):
  Harvard-FairSeg (Tian et al., ICLR 2024) ``ES = P_all / (1 + Σ_g |P̄_g − P_all|)`` and
  FairMedFM ``ES = P_all / (1 + std_g P̄_g)`` (population std over the groups), with ``P_all`` the
  mean over all images; plus FairMedFM's ratio ``(1 − min_g P̄_g) / (1 − max_g P̄_g)`` (1 when
  every group scores alike, larger is less fair);
- per class c, the Harvard-FairSeg ES on the images whose ground truth holds c, with the per-image
  IoU of c as the score (groups without such an image are left out of the sum).

Every function takes optional bootstrap weights ``(B, N)`` (how often each image is drawn in each
replicate, :func:`stratified_counts`), so replicates are weighted sums, never copies of the data;
without them ``B = 1``. Scores are fractions; NaN where nothing is defined.
"""
from __future__ import annotations

import numpy as np

from fairseg_bench.core.image_metrics import per_image_class_iou

__all__ = ["group_codes", "stratified_counts", "group_iou", "group_means", "equity_scaled_harvard",
           "equity_scaled_fairmedfm", "min_max_ratio", "class_equity_scaled", "worst_cell", "group_metrics"]


def _weights(weights, n: int) -> np.ndarray:
    """``(B, N)`` float64 weights; all ones ``(1, N)`` when None."""
    return np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def group_codes(labels) -> tuple[list[str], np.ndarray]:
    """Group names in order of first appearance and each image's index into them.

    Shape:
        labels ``(N,)`` strings -> names ``G``, codes ``(N,)`` int64.

    Example:
        >>> group_codes(["dusk", "day", "dusk"])
        (['dusk', 'day'], array([0, 1, 0]))
    """
    names = list(dict.fromkeys(map(str, labels)))
    index = {name: i for i, name in enumerate(names)}
    return names, np.array([index[str(label)] for label in labels], dtype=np.int64)


def stratified_counts(codes, n_boot: int, seed=0) -> np.ndarray:
    """Bootstrap draws that resample the images of each group within the group (group sizes kept).

    Shape:
        codes ``(N,)`` -> int64 ``(n_boot, N)``; the counts of a group's images sum to its size.
    """
    codes = np.asarray(codes)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_boot, codes.size), dtype=np.int64)
    for g in np.unique(codes):
        members = np.flatnonzero(codes == g)
        counts[:, members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size), size=n_boot)
    return counts


def _one_hot(codes, n_groups: int | None = None) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    g = int(codes.max()) + 1 if n_groups is None else int(n_groups)
    return (codes[:, None] == np.arange(g)[None, :]).astype(np.float64)


def group_iou(tp, fp, fn, codes, weights=None, n_groups: int | None = None) -> np.ndarray:
    """``IoU_{g,c}``: the counts of each group's images summed (weighted), then ``TP / (TP + FP + FN)``.

    Shape:
        tp, fp, fn ``(N, K)``; codes ``(N,)``; weights ``(B, N)`` -> ``(B, G, K)``.

    Example:
        >>> group_iou([[1, 0], [3, 1]], [[1, 0], [0, 1]], [[0, 0], [1, 0]], [0, 1])[0].tolist()
        [[0.5, nan], [0.75, 0.5]]
    """
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    w = _weights(weights, tp.shape[0])[:, :, None] * _one_hot(codes, n_groups)[None]  # (B, N, G)
    sums = [np.einsum("bng,nk->bgk", w, x) for x in (tp, fp, fn)]
    return _ratio(sums[0], sums[0] + sums[1] + sums[2])


def group_means(scores, codes, weights=None, n_groups: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted means of per-image scores: per group ``P̄_g`` and over all images ``P_all``; NaN scores left out.

    Shape:
        scores ``(N,)`` or ``(N, K)`` (a score per image and class); codes ``(N,)``; weights ``(B, N)``
        -> ``(B, G)`` and ``(B,)``, or ``(B, G, K)`` and ``(B, K)``.
    """
    s = np.asarray(scores, dtype=np.float64)
    column = s.ndim == 1
    s = s[:, None] if column else s
    valid = ~np.isnan(s)
    w = _weights(weights, s.shape[0])
    wg = w[:, :, None] * _one_hot(codes, n_groups)[None]  # (B, N, G)
    per_group = _ratio(np.einsum("bng,nk->bgk", wg, np.where(valid, s, 0.0)), np.einsum("bng,nk->bgk", wg, valid))
    overall = _ratio(w @ np.where(valid, s, 0.0), w @ valid)
    return (per_group[..., 0], overall[..., 0]) if column else (per_group, overall)


def equity_scaled_harvard(group_scores, overall) -> np.ndarray:
    """Harvard-FairSeg's ``ES = P_all / (1 + Σ_g |P̄_g − P_all|)``; groups with a NaN score left out.

    Shape:
        group_scores ``(..., G)``, overall ``(...)`` -> ``(...)``.

    Example:
        >>> float(equity_scaled_harvard(np.array([0.6, 0.8]), np.array(0.7)))
        0.5833333333333333
    """
    spread = np.nansum(np.abs(np.asarray(group_scores) - np.asarray(overall)[..., None]), axis=-1)
    return np.asarray(overall) / (1.0 + spread)


def _nan_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Population std, min and max along the last axis, NaN left out (NaN where nothing is finite)."""
    finite = ~np.isnan(x)
    n = finite.sum(-1)
    mean = _ratio(np.where(finite, x, 0.0).sum(-1), n)
    var = _ratio(np.where(finite, (x - mean[..., None]) ** 2, 0.0).sum(-1), n)
    low = np.where(n > 0, np.where(finite, x, np.inf).min(-1), np.nan)
    high = np.where(n > 0, np.where(finite, x, -np.inf).max(-1), np.nan)
    return np.sqrt(var), low, high


def equity_scaled_fairmedfm(group_scores, overall) -> np.ndarray:
    """FairMedFM's ``ES = P_all / (1 + std_g P̄_g)``, the population std over the groups.

    Shape:
        group_scores ``(..., G)``, overall ``(...)`` -> ``(...)``.

    Example:
        >>> float(equity_scaled_fairmedfm(np.array([0.6, 0.8]), np.array(0.7)))
        0.6363636363636362
    """
    std, _, _ = _nan_moments(np.asarray(group_scores, dtype=np.float64))
    return np.asarray(overall) / (1.0 + std)


def min_max_ratio(group_scores) -> np.ndarray:
    """FairMedFM's ``(1 − min_g P̄_g) / (1 − max_g P̄_g)``: 1 when the groups score alike; inf at a perfect group.

    Shape:
        ``(..., G)`` -> ``(...)``.
    """
    _, low, high = _nan_moments(np.asarray(group_scores, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isnan(low), np.nan, (1.0 - low) / (1.0 - high))


def class_equity_scaled(tp, fp, fn, codes, weights=None, n_groups: int | None = None) -> np.ndarray:
    """Harvard-FairSeg's ES per class, on the images holding the class, scored by their IoU of it.

    Shape:
        tp, fp, fn ``(N, K)``; codes ``(N,)``; weights ``(B, N)`` -> ``(B, K)``.
    """
    per_group, overall = group_means(per_image_class_iou(tp, fp, fn), codes, weights, n_groups)  # (B,G,K), (B,K)
    return equity_scaled_harvard(np.moveaxis(per_group, -2, -1), overall)


def worst_cell(iou) -> tuple[int, int] | None:
    """``(g, c)`` of the lowest finite ``IoU_{g,c}`` (the first in row-major order on ties); None if none.

    Example:
        >>> worst_cell(np.array([[0.5, np.nan], [0.75, 0.25]]))
        (1, 1)
    """
    iou = np.asarray(iou, dtype=np.float64)
    if not np.isfinite(iou).any():
        return None
    g, c = np.unravel_index(int(np.nanargmin(iou)), iou.shape)
    return int(g), int(c)


def group_metrics(tp, fp, fn, codes, weights=None, n_groups: int | None = None) -> dict[str, np.ndarray]:
    """Every group number of one model, for each replicate of ``weights`` (fractions; ratio unitless).

    Keys and shapes (``B`` replicates, ``G`` groups, ``K`` classes): ``iou`` ``(B, G, K)``,
    ``miou`` ``(B, G)`` (dataset-level within each group), ``miou_image`` ``(B, G)`` (``P̄_g``),
    ``miou_image_all`` ``(B,)`` (``P_all``), ``worst_group``, ``group_gap`` (of ``miou``),
    ``worst_cell`` (min of ``iou``), ``es_harvard``, ``es_fairmedfm``, ``ratio_fairmedfm`` ``(B,)``,
    ``es_class`` ``(B, K)``.

    Example:
        >>> out = group_metrics([[2, 0], [1, 1]], [[0, 0], [1, 0]], [[0, 0], [0, 1]], [0, 1])
        >>> out["miou"].round(3).tolist(), out["es_harvard"].round(3).tolist()
        ([[1.0, 0.5]], [0.5])
    """
    from fairseg_bench.core.image_metrics import image_miou

    n_groups = int(np.max(codes)) + 1 if n_groups is None else n_groups
    iou = group_iou(tp, fp, fn, codes, weights, n_groups)
    with np.errstate(invalid="ignore"):
        finite = ~np.isnan(iou)
        miou = _ratio(np.where(finite, iou, 0.0).sum(-1), finite.sum(-1))
    per_group, overall = group_means(image_miou(tp, fp, fn), codes, weights, n_groups)
    _, low, high = _nan_moments(miou)
    cells = np.where(np.isnan(iou), np.inf, iou).reshape(iou.shape[0], -1).min(-1)
    return {
        "iou": iou, "miou": miou, "miou_image": per_group, "miou_image_all": overall,
        "worst_group": low, "group_gap": high - low, "worst_cell": np.where(np.isinf(cells), np.nan, cells),
        "es_harvard": equity_scaled_harvard(per_group, overall),
        "es_fairmedfm": equity_scaled_fairmedfm(per_group, overall),
        "ratio_fairmedfm": min_max_ratio(per_group),
        "es_class": class_equity_scaled(tp, fp, fn, codes, weights, n_groups),
    }
