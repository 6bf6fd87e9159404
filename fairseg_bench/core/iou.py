"""Pure reductions of a confusion matrix: per-class IoU, mIoU, pixel and class accuracy.

numpy only (reports use them without torch); a torch tensor, on any device, is accepted.
Conventions (docs/definitions.md): IoU from the dataset-level confusion matrix, not a per-image mean;
a class with no ground truth and no prediction has IoU NaN and is left out of every mean
(never 1, never 0). Results are fractions in [0, 1].
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["per_class_iou", "mean_iou", "pixel_accuracy", "class_accuracy", "as_numpy"]


def as_numpy(x: ArrayLike) -> np.ndarray:
    """A numpy array from an array-like or a torch tensor (copied to the host if needed)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _square(cm: ArrayLike) -> np.ndarray:
    cm = as_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"a confusion matrix must be square (K, K), got shape {cm.shape}")
    return cm.astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 (no warning)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def per_class_iou(cm: ArrayLike, void: ArrayLike | None = None) -> np.ndarray:
    """Intersection over union of each class: ``TP / (TP + FP + FN)``.

    Args:
        cm: confusion matrix, rows ground truth, columns prediction.
        void: optional ``(K,)`` pixels of each ground-truth class predicted as no evaluated class
            (e.g. a Cityscapes labelId that is not evaluated); false negatives of that class and
            false positives of none, as cityscapesScripts counts them.

    Returns:
        float64 ``(K,)`` in [0, 1]; NaN for a class with no ground truth and no prediction.

    Shape:
        cm ``(K, K)`` -> ``(K,)``.
    """
    cm = _square(cm)
    tp = np.diag(cm)
    fn = cm.sum(1) - tp + (0.0 if void is None else as_numpy(void).astype(np.float64))
    return _ratio(tp, cm.sum(0) + fn)


def mean_iou(cm_or_iou: ArrayLike) -> float:
    """mIoU: the mean of the per-class IoUs, NaN classes left out (NaN if every class is).

    Args:
        cm_or_iou: a ``(K, K)`` confusion matrix or a ``(K,)`` vector of per-class IoUs.
    """
    x = as_numpy(cm_or_iou)
    iou = per_class_iou(x) if x.ndim == 2 else x.astype(np.float64)
    finite = iou[~np.isnan(iou)]
    return float(finite.mean()) if finite.size else float("nan")


def pixel_accuracy(cm: ArrayLike) -> float:
    """Share of counted (non-ignored) pixels predicted correctly; NaN if none was counted."""
    cm = _square(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total > 0 else float("nan")


def class_accuracy(cm: ArrayLike) -> np.ndarray:
    """Recall of each class, ``TP / (TP + FN)``; NaN for a class without ground truth.

    Shape:
        cm ``(K, K)`` -> ``(K,)``.
    """
    cm = _square(cm)
    return _ratio(np.diag(cm), cm.sum(1))
