"""Fairness across images: per-image TP/FP/FN, and image-level IoU statistics from them (numpy only).

The counts come from confusion matrices with a void column (:func:`tp_fp_fn`) or from class-id
maps (:func:`image_stats`); every per-image number of the harness (records, tables, figures) is
one of the functions below.

Wang et al., "Revisiting Evaluation Metrics for Semantic Segmentation: Optimization and
Evaluation of Fine-grained Intersection over Union", NeurIPS 2023 Datasets & Benchmarks, with
the choices of the authors' code (JDTLosses, ``metrics/miouic_metric.py``) where the paper leaves
one open; docs/definitions.md ("Image-level metrics") states every choice.

- ``IoU_{i,c} = TP_{i,c} / (TP_{i,c} + FP_{i,c} + FN_{i,c})``, defined only for the classes
  *present in image i's ground truth* (``TP + FN > 0``). A class only predicted in image i (all
  false positives) has no IoU there; its false positives still lower the IoU of the ground-truth
  classes whose pixels it took.
- ``mIoU_i`` = mean of ``IoU_{i,c}`` over the classes present in image i. An image without any
  valid (non-ignored) pixel has none and is left out of everything.
- ``mIoU^I`` = mean of ``mIoU_i`` over the images; the worst-q % value is the mean of the
  ``max(1, floor(q/100 * N))`` lowest ``mIoU_i``.
- ``IoU^C_c`` = mean of ``IoU_{i,c}`` over the images containing class c; ``mIoU^C`` = mean of
  ``IoU^C_c`` over the classes present in at least one image.

All results are fractions in [0, 1] (tables show percent); NaN where nothing is defined.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["tp_fp_fn", "image_stats", "per_image_class_iou", "image_miou", "worst_mean", "class_image_iou",
           "image_level_metrics", "WORST_PERCENTS"]

WORST_PERCENTS = (5, 10)


def tp_fp_fn(matrix) -> np.ndarray:
    """True positives, false positives and false negatives of confusion matrices with a void column.

    Rows are ground truth, columns predictions; column K counts predictions of no class (void),
    false negatives of their row's class and false positives of none, as cityscapesScripts counts them.

    Shape:
        matrix ``(..., K, K + 1)`` -> ``(..., 3, K)`` (TP, FP, FN).

    Example:
        >>> tp_fp_fn([[3, 1, 2], [0, 4, 0]]).tolist()
        [[3, 4], [0, 1], [3, 0]]
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[-2]
    counted = matrix[..., :k]
    tp = np.diagonal(counted, axis1=-2, axis2=-1)
    return np.stack([tp, counted.sum(-2) - tp, matrix.sum(-1) - tp], axis=-2)


def image_stats(target, prediction, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Per-image TP, FP and FN of class-id maps; ignored target pixels count nowhere, and a prediction
    outside ``[0, K)`` is void (a false negative of its pixel's class, a false positive of none).

    Shape:
        target, prediction ``(N, H, W)`` -> ``(N, 3, K)``.

    Example:
        >>> image_stats([[[0, 1, 255]]], [[[0, 0, 1]]], 2)[0].tolist()
        [[1, 0], [1, 0], [0, 1]]
    """
    target, prediction = np.asarray(target, np.int64), np.asarray(prediction, np.int64)
    k, n = int(num_classes), target.shape[0]
    valid = target != ignore_index
    if ((target[valid] < 0) | (target[valid] >= k)).any():
        raise ValueError(f"target values must lie in [0, {k}) or be the ignore index {ignore_index}")
    column = np.where((prediction >= 0) & (prediction < k), prediction, k)
    cell = (np.arange(n).reshape(-1, *[1] * (target.ndim - 1)) * k + target) * (k + 1) + column
    matrices = np.bincount(cell[valid], minlength=n * k * (k + 1)).reshape(n, k, k + 1)
    return tp_fp_fn(matrices)


def _stats(tp, fp, fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    if not tp.shape == fp.shape == fn.shape or tp.ndim != 2:
        raise ValueError(f"tp, fp and fn must share one shape (N_images, K); got {tp.shape}, {fp.shape}, {fn.shape}")
    return tp, fp, fn


def per_image_class_iou(tp, fp, fn) -> np.ndarray:
    """IoU of every class in every image; NaN where the class is absent from the image's ground truth.

    Shape:
        tp, fp, fn ``(N, K)`` -> ``(N, K)``.

    Example:
        >>> per_image_class_iou([[2, 0]], [[1, 3]], [[0, 0]]).round(3).tolist()
        [[0.667, nan]]
    """
    tp, fp, fn = _stats(tp, fp, fn)
    out = np.full(tp.shape, np.nan)
    np.divide(tp, tp + fp + fn, out=out, where=(tp + fn) > 0)
    return out


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Row means over the finite entries; NaN for a row without any."""
    finite = ~np.isnan(values)
    count = finite.sum(1)
    sums = np.where(finite, values, 0.0).sum(1)
    out = np.full(values.shape[0], np.nan)
    np.divide(sums, count, out=out, where=count > 0)
    return out


def image_miou(tp, fp, fn) -> np.ndarray:
    """``mIoU_i`` of every image: the mean IoU over the classes in its ground truth (NaN: no valid pixel).

    Shape:
        tp, fp, fn ``(N, K)`` -> ``(N,)``.
    """
    return _nanmean_rows(per_image_class_iou(tp, fp, fn))


def worst_mean(values, q: float) -> float:
    """Mean of the ``max(1, floor(q/100 * n))`` lowest of the ``n`` finite values (NaN if none).

    Example:
        >>> worst_mean([0.9, 0.1, 0.5, 0.3], 50)
        0.2
    """
    values = np.asarray(values, dtype=np.float64)
    values = np.sort(values[~np.isnan(values)])
    if not values.size:
        return math.nan
    if not 0 < q <= 100:
        raise ValueError(f"q must lie in (0, 100], got {q}")
    n = max(1, int(math.floor(q / 100 * values.size + 1e-9)))
    return float(values[:n].mean())


def class_image_iou(tp, fp, fn) -> np.ndarray:
    """``IoU^C_c``: the mean IoU of class c over the images whose ground truth contains it (NaN: none).

    Shape:
        tp, fp, fn ``(N, K)`` -> ``(K,)``.
    """
    return _nanmean_rows(per_image_class_iou(tp, fp, fn).T)


def _finite_mean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def image_level_metrics(tp, fp, fn, worst_percents=WORST_PERCENTS) -> dict:
    """Every image-level number, JSON-ready (fractions; NaN where undefined).

    Keys: ``miou_image`` (mIoU^I), ``miou_image_worst_<q>`` for each q, ``miou_class`` (mIoU^C),
    ``iou_class`` (K values of IoU^C_c), ``images`` (images with at least one valid pixel).
    """
    per_image = image_miou(tp, fp, fn)
    per_class = class_image_iou(tp, fp, fn)
    out = {"miou_image": _finite_mean(per_image)}
    for q in worst_percents:
        out[f"miou_image_worst_{q:g}"] = worst_mean(per_image, q)
    out["miou_class"] = _finite_mean(per_class)
    out["iou_class"] = per_class.tolist()
    out["images"] = int((~np.isnan(per_image)).sum())
    return out



def _weighted_worst(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """Worst-q % mean of every replicate, an image drawn w times counting w times.

    Shape:
        values ``(N,)`` finite; weights ``(B, N)`` non-negative integers -> ``(B,)``.
    """
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[:, order].astype(np.float64)
    total = w.sum(1)
    n = np.maximum(1.0, np.floor(q / 100 * total + 1e-9))  # images kept, per replicate
    before = np.cumsum(w, axis=1) - w  # images ranked below each value
    take = np.clip(n[:, None] - before, 0.0, w)  # copies of each value among the n lowest
    return (take * v).sum(1) / n


def image_level_replicates(tp, fp, fn, counts, worst_percents=WORST_PERCENTS) -> dict[str, np.ndarray]:
    """:func:`image_level_metrics` of bootstrap replicates over images, without materialising them.

    ``counts[b, i]`` is how often image i is drawn in replicate b (images without a valid pixel
    are ignored whatever their count). Returns the scalar keys as ``(B,)`` arrays and
    ``iou_class`` as ``(B, K)``; with ``counts`` all ones it equals :func:`image_level_metrics`.

    Shape:
        tp, fp, fn ``(N, K)``; counts ``(B, N)``.
    """
    iou = per_image_class_iou(tp, fp, fn)
    per_image = _nanmean_rows(iou)
    used = ~np.isnan(per_image)
    w = np.asarray(counts, dtype=np.float64)[:, used]
    v = per_image[used]
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["miou_image"] = (w @ v) / w.sum(1)
        for q in worst_percents:
            out[f"miou_image_worst_{q:g}"] = _weighted_worst(v, w, q) if v.size else np.full(len(w), np.nan)
        present = ~np.isnan(iou[used])
        per_class = (w @ np.where(present, iou[used], 0.0)) / (w @ present)  # (B, K), NaN where absent
    finite = ~np.isnan(per_class)
    out["miou_class"] = np.where(finite, per_class, 0.0).sum(1) / np.maximum(finite.sum(1), 1)
    out["miou_class"][finite.sum(1) == 0] = np.nan
    out["iou_class"] = per_class
    return out
