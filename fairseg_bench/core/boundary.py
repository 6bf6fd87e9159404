"""Boundary IoU per class (Cheng et al., "Boundary IoU: Improving Object-Centric Image
Segmentation Evaluation", CVPR 2021), counted like IoU: intersection and union per class,
summed over the images of a split.

Definition, per class ``c`` in one image: ``G = (label == c)``; ``G_d = G - erode(G, d)``, the
pixels of ``G`` within distance ``d`` of its contour, where ``erode`` applies a 3x3 square ``d``
times and pixels outside the image count as background (the image border is contour);
``d = max(1, round(0.02 * diagonal))``. Likewise ``P_d`` for ``prediction == c``. The class's
counts are ``|G_d ∩ P_d|`` and ``|G_d ∪ P_d|``; Boundary IoU_c is their ratio, both summed over
the images first (so it aggregates and bootstraps like IoU).

Choices:

* Ignored pixels (``label == ignore_index``) are background of every class while the boundaries
  are found (an ignored region is not class ``c``), then removed from both ``G_d`` and ``P_d``:
  a prediction on an unlabelled pixel counts nowhere, as in the confusion matrix.
* Predictions outside ``[0, K)`` (a void prediction) belong to no class. A label outside
  ``[0, K)`` that is not the ignore index is a ``ValueError``.

How it is computed (exact, no loop over pixels or classes): ``d`` erosions by a 3x3 square are
one erosion by a ``(2d+1)^2`` square, so a pixel of class ``c`` lies in ``G_d`` exactly when its
``(2d+1)^2`` window holds another value or leaves the image: ``max != min`` over the window, or
the pixel lies within ``d`` of the border. Max and min are separable sliding maxima (of the map
and of its bitwise complement), each a van Herk-style doubling of ``log2(2d+1)`` elementwise
maxima on the whole (N, H, W) stack at once, so the cost does not depend on ``d`` or ``K``. One
joint histogram of (label class if in ``G_d``, predicted class if in ``P_d``) gives every count.

Not detectron2's number: ``SemSegEvaluator`` computes ``mask - erode(mask)`` on the whole label
map at once (``cv2.erode`` of the class-id image, a grey erosion), so its "boundary" is a
difference of class ids, not the per-class boundary above, and its ``BoundaryIoU-<class>`` is
another quantity (:mod:`fairseg_bench.results.tool_rules` reproduces it).

The numpy functions never import torch; :func:`boundary_counts_torch` (CPU or CUDA) does,
lazily.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["boundary_width", "boundary_counts", "boundary_counts_torch", "boundary_iou", "BoundaryIoU"]

DILATION_RATIO = 0.02


def boundary_width(height: int, width: int, ratio: float = DILATION_RATIO) -> int:
    """``d = max(1, round(ratio * diagonal))``, as Cheng et al.'s ``mask_to_boundary``.

    Example:
        >>> boundary_width(1024, 2048)
        46
    """
    return max(1, int(round(ratio * math.hypot(height, width))))


# ----------------------------------------------------------------- shared (numpy or torch)
def _along(axis: int, part: slice) -> tuple:
    """Index selecting ``part`` along ``axis`` (-1 or -2) of an array of any rank."""
    return (Ellipsis, part) if axis == -1 else (Ellipsis, part, slice(None))


def _sliding_max(a, d: int, axis: int, xp):
    """Maximum over the window ``[i - d, i + d]`` (clipped to the array) along ``axis``.

    Edge padding equals clipping for a maximum. The window of length ``p`` doubles each step;
    two overlapping windows of the largest ``p`` cover ``2d + 1``.
    """
    n, w = a.shape[axis], 2 * d + 1
    shape = list(a.shape)
    shape[axis] = d
    first, last = a[_along(axis, slice(0, 1))], a[_along(axis, slice(n - 1, n))]
    m = xp.concatenate([xp.broadcast_to(first, shape), a, xp.broadcast_to(last, shape)], axis=axis)
    p = 1
    while 2 * p <= w:
        length = m.shape[axis]
        m = xp.maximum(m[_along(axis, slice(0, length - p))], m[_along(axis, slice(p, length))])
        p *= 2
    return xp.maximum(m[_along(axis, slice(0, n))], m[_along(axis, slice(w - p, w - p + n))])


def _boundary_mask(codes, d: int, xp):
    """``(..., H, W)`` bool: pixels within ``d`` of another value or of the image border.

    ``max(~x) = ~min(x)`` for integers, so one stacked sliding maximum gives both extremes.
    """
    stacked = xp.stack([codes, ~codes])
    extremes = _sliding_max(_sliding_max(stacked, d, -1, xp), d, -2, xp)
    mask = extremes[0] != ~extremes[1]
    mask[..., :d, :] = True  # the image border is contour: outside pixels are background
    mask[..., -d:, :] = True
    mask[..., :, :d] = True
    mask[..., :, -d:] = True
    return mask


def _codes(x, num_classes: int, dtype, xp):
    """Class indices in ``[0, K)`` kept, every other value ``K`` (background of every class), narrow."""
    K = num_classes
    if x.dtype == xp.uint8:  # no negative values: one minimum, no temporaries
        return _cast(np.minimum(x, K) if isinstance(x, np.ndarray) else x.clamp(max=K), dtype)
    return _cast(xp.where((x >= 0) & (x < K), x, K), dtype)


def _histogram_keys(label, prediction, num_classes: int, ignore_index: int, d: int, xp):
    """Per pixel, a key into a ``(K + 1, K + 1)`` histogram, and the count of bad labels.

    Row ``c``/column ``c``: the pixel is in ``G_d``/``P_d`` of class ``c``; row/column ``K``: in
    neither (or ignored). Bad labels (outside ``[0, K)``, not ignored) are counted apart.
    """
    K = num_classes
    dtype = xp.uint8 if K < 255 else xp.int32
    g, p = _codes(label, K, dtype, xp), _codes(prediction, K, dtype, xp)
    bad = (g == K) & (label != ignore_index)
    row = xp.where(_boundary_mask(g, d, xp), g, K)
    col = xp.where(_boundary_mask(p, d, xp) & (g != K), p, K)
    key_dtype = xp.int16 if (K + 1) ** 2 <= 32767 else xp.int32
    return _cast(row, key_dtype) * (K + 1) + _cast(col, key_dtype), bad


def _cast(x, dtype):
    return x.astype(dtype, copy=False) if isinstance(x, np.ndarray) else x.to(dtype)


def _counts(hist, num_classes: int):
    """``(..., K + 1, K + 1)`` histograms -> intersection and union, each ``(..., K)``."""
    K = num_classes
    square = hist[..., :K, :K]
    inter = square.diagonal(axis1=-2, axis2=-1) if isinstance(hist, np.ndarray) else square.diagonal(dim1=-2, dim2=-1)
    return inter, hist[..., :K, :].sum(-1) + hist[..., :, :K].sum(-2) - inter


def _check_shapes(label, prediction) -> None:
    if label.shape != prediction.shape or len(label.shape) < 2:
        raise ValueError(f"label and prediction must share one shape (..., H, W); got {tuple(label.shape)} "
                         f"and {tuple(prediction.shape)}")


def _width(label, width: int | None) -> int:
    """``d``: the given width, else :func:`boundary_width` of the image size."""
    d = boundary_width(*label.shape[-2:]) if width is None else int(width)
    if d < 1:
        raise ValueError(f"the boundary width must be at least 1 pixel, got {width}")
    return d


def _raise_bad(bad: int) -> None:
    if bad:
        raise ValueError(f"{bad} label pixels hold a value outside [0, K) that is not the ignore index")


# ---------------------------------------------------------------------------------- numpy
def boundary_counts(label: np.ndarray, prediction: np.ndarray, num_classes: int, *, ignore_index: int = 255,
                    width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Boundary IoU counts ``|G_d ∩ P_d|`` and ``|G_d ∪ P_d|`` of label maps (numpy, no torch).

    Args:
        label: ground-truth class indices; ``ignore_index`` counts nowhere.
        prediction: predicted class indices; values outside ``[0, K)`` belong to no class.
        num_classes: ``K``.
        ignore_index: the label value of unlabelled pixels.
        width: ``d``; default :func:`boundary_width` of the image size.

    Returns:
        ``(intersection, union)``, int64. Sum them over images, then :func:`boundary_iou`.

    Shape:
        label, prediction ``(H, W)`` or ``(N, H, W)`` (N images) -> each ``(K,)`` or ``(N, K)``.

    Raises:
        ValueError: different shapes, or a label outside ``[0, K)`` that is not ``ignore_index``.

    Example:
        >>> label = np.zeros((8, 8), np.uint8); label[2:6, 2:6] = 1
        >>> pred = np.zeros((8, 8), np.uint8); pred[2:6, 3:7] = 1
        >>> inter, union = boundary_counts(label, pred, 2, width=1)
        >>> inter.tolist(), union.tolist(), boundary_iou(inter, union).round(3).tolist()
        ([38, 6], [52, 18], [0.731, 0.333])
    """
    label, prediction = np.asarray(label), np.asarray(prediction)
    _check_shapes(label, prediction)
    K = int(num_classes)
    keys, bad = _histogram_keys(label, prediction, K, ignore_index, _width(label, width), np)
    _raise_bad(int(np.count_nonzero(bad)))
    flat = keys.reshape(-1, keys.shape[-2] * keys.shape[-1])
    hist = np.stack([_run_bincount(image, (K + 1) ** 2) for image in flat])
    return _counts(hist.reshape(*keys.shape[:-2], K + 1, K + 1), K)


def _run_bincount(keys: np.ndarray, bins: int) -> np.ndarray:
    """``np.bincount`` of a 1-D key array, int64, counted by runs of equal keys.

    Boundary keys are coherent along rows (long runs of "neither" and of one class), and one
    weighted count per run is cheaper than one increment per pixel.
    """
    change = np.empty(keys.size, bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    if np.count_nonzero(change) > keys.size // 4:  # short runs: the plain count is cheaper
        return np.bincount(keys, minlength=bins)
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=keys.size)
    return np.bincount(keys[starts], weights=lengths, minlength=bins).astype(np.int64)  # exact below 2**53


def boundary_iou(intersection, union) -> np.ndarray:
    """``intersection / union`` per class, float64; NaN where the union is empty.

    Shape:
        ``(..., K)`` -> ``(..., K)``; sum per-image counts over images first for the split's value.
    """
    inter, union = (np.asarray(x, np.float64) for x in (intersection, union))
    out = np.full(union.shape, np.nan)
    np.divide(inter, union, out=out, where=union > 0)
    return out


# ---------------------------------------------------------------------------------- torch
def _torch_histogram(label, prediction, num_classes: int, ignore_index: int, width: int | None):
    """``(..., K + 1, K + 1)`` int64 histograms and the bad-label count, on the input's device.

    No host synchronisation on CUDA: ``bincount`` reads the maximum back to the host, a scatter
    into fixed bins does not.
    """
    import torch

    K = num_classes
    keys, bad = _histogram_keys(label, prediction, K, ignore_index, _width(label, width), torch)
    keys = keys.reshape(-1, label.shape[-2] * label.shape[-1]).int()
    total = keys.shape[0] * (K + 1) ** 2  # one histogram per image
    keys = (keys + torch.arange(0, total, (K + 1) ** 2, device=keys.device, dtype=keys.dtype)[:, None]).reshape(-1)
    if keys.device.type == "cpu":  # counting by runs is several times faster than torch.bincount here
        hist = torch.from_numpy(_run_bincount(keys.numpy(), total))
    else:
        hist = _scatter_count(keys, total)
    return hist.reshape(*label.shape[:-2], K + 1, K + 1), bad.sum()


def _scatter_count(keys, total: int):
    """``bincount(keys, minlength=total)`` as a scatter into fixed bins: no read-back to the host."""
    import torch

    hist = torch.zeros(total, dtype=torch.int64, device=keys.device)
    return hist.scatter_add_(0, keys.long(), torch.ones_like(keys, dtype=torch.int64))


def boundary_counts_torch(label, prediction, num_classes: int, *, ignore_index: int = 255,
                          width: int | None = None) -> tuple[Any, Any]:
    """:func:`boundary_counts` on torch tensors (CPU or CUDA); int64 tensors on the input's device.

    The label check reads one number back to the host (a synchronisation on CUDA);
    :class:`BoundaryIoU` defers it to ``compute()``.

    Shape:
        label, prediction ``(H, W)`` or ``(N, H, W)`` -> each ``(K,)`` or ``(N, K)``.
    """
    _check_shapes(label, prediction)
    hist, bad = _torch_histogram(label, prediction, int(num_classes), ignore_index, width)
    _raise_bad(int(bad))
    return _counts(hist, int(num_classes))


# ------------------------------------------------------------------------------ streaming
class BoundaryIoU:
    """Streaming per-class Boundary IoU over a split: numpy arrays or torch tensors (any device).

    ``update`` returns the batch's per-image counts (for the bootstrap, as per-image TP/FP/FN);
    the totals stay on the input's device until ``compute``.

    Example:
        >>> metric = BoundaryIoU(2, width=1)
        >>> label = np.zeros((1, 8, 8), np.uint8); label[0, 2:6, 2:6] = 1
        >>> _ = metric.update(label, label)
        >>> metric.compute().tolist()
        [1.0, 1.0]
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, width: int | None = None,
                 per_image: bool = False) -> None:
        self.num_classes, self.ignore_index, self.width = int(num_classes), int(ignore_index), width
        self.per_image = per_image  # keep every batch's per-image counts (for the bootstrap), as ConfusionMatrix
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far."""
        self._totals: tuple | None = None  # (intersection (K,), union (K,), bad-label count), numpy or on the device
        self._images: list = []  # per batch (intersection (n, K), union (n, K)), with per_image

    def update(self, label, prediction):
        """Count a batch ``(N, H, W)`` or one image ``(H, W)``; returns per-image ``(intersection, union)``."""
        _check_shapes(label, prediction)
        K = self.num_classes
        if isinstance(label, np.ndarray):
            inter, union = boundary_counts(label, prediction, K, ignore_index=self.ignore_index, width=self.width)
            bad = 0
        else:
            hist, bad = _torch_histogram(label, prediction, K, self.ignore_index, self.width)
            inter, union = _counts(hist, K)
        batch = (inter.reshape(-1, K), union.reshape(-1, K))
        totals = (batch[0].sum(0), batch[1].sum(0), bad)
        self._totals = totals if self._totals is None else tuple(a + b for a, b in zip(self._totals, totals))
        if self.per_image:
            self._images.append(batch)
        return batch

    def per_image_counts(self) -> dict[str, np.ndarray]:
        """``{"intersection", "union"}`` of every image counted, in order, int64 numpy ``(N, K)`` each."""
        if not self.per_image:
            raise ValueError("per-image counts need BoundaryIoU(..., per_image=True)")
        self.counts()  # raises on a bad label, as compute() does
        host = lambda x: x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)  # noqa: E731
        out = {}
        for i, key in enumerate(("intersection", "union")):
            parts = [host(batch[i]).astype(np.int64) for batch in self._images]
            out[key] = np.concatenate(parts) if parts else np.zeros((0, self.num_classes), np.int64)
        return out

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Total ``(intersection, union)``, int64 numpy ``(K,)`` each.

        Raises:
            ValueError: a label outside ``[0, K)`` that is not the ignore index was counted.
        """
        if self._totals is None:
            return np.zeros(self.num_classes, np.int64), np.zeros(self.num_classes, np.int64)
        inter, union, bad = self._totals
        _raise_bad(int(bad))
        host = (lambda x: x.cpu().numpy()) if hasattr(inter, "cpu") else np.asarray
        return host(inter).astype(np.int64), host(union).astype(np.int64)

    def compute(self) -> np.ndarray:
        """Per-class Boundary IoU, float64 ``(K,)``, NaN for a class with an empty union."""
        return boundary_iou(*self.counts())
