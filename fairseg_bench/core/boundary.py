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
``(2d+1)^2`` window holds another value or leaves the image (within ``d`` of the border). Which
windows hold two values follows from where neighbours differ (:func:`_boundary_mask`): two
sliding ORs over boolean change maps, each a doubling of ``log2(2d)`` elementwise ORs on the
whole (N, H, W) stack at once, the vertical ones on packed bits, so the cost barely depends on
``d`` and not on ``K``. One joint histogram of (label class if in ``G_d``, predicted class if in
``P_d``) gives every count.

Not detectron2's number: ``SemSegEvaluator`` computes ``mask - erode(mask)`` on the whole label
map at once (``cv2.erode`` of the class-id image, a grey erosion), so its "boundary" is a
difference of class ids, not the per-class boundary above, and its ``BoundaryIoU-<class>`` is
another quantity (:mod:`fairseg_bench.results.tool_rules` reproduces it).

The numpy functions never import torch; :func:`boundary_counts_torch` (CPU or CUDA) does,
lazily.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

__all__ = ["boundary_width", "boundary_counts", "boundary_counts_given_confusion", "boundary_counts_torch",
           "boundary_iou", "one_value_per_class", "BoundaryIoU"]

DILATION_RATIO = 0.02


def boundary_width(height: int, width: int, ratio: float = DILATION_RATIO) -> int:
    """``d = max(1, round(ratio * diagonal))``, as Cheng et al.'s ``mask_to_boundary``.

    Example:
        >>> boundary_width(1024, 2048)
        46
    """
    return max(1, int(round(ratio * math.hypot(height, width))))


# ----------------------------------------------------------------- shared (numpy or torch)
def _zeros(x, shape: tuple):
    """Zeros of ``x``'s dtype (and device) in ``shape``."""
    return np.zeros(shape, x.dtype) if isinstance(x, np.ndarray) else x.new_zeros(shape)


def _window_any(x, lo: int, hi: int, axis: int):
    """``out[i] = x[i + lo] | ... | x[i + hi]`` along ``axis`` (-1 or -2), False/0 beyond the ends.

    Works on booleans and on bytes of packed bits alike. The window of length ``p`` doubles each
    step (one elementwise OR each); two overlapping windows of the largest ``p`` cover ``hi - lo + 1``.
    """
    n, length = x.shape[axis], hi - lo + 1
    before, after = max(0, -lo), max(0, hi)
    shape = list(x.shape)
    shape[axis] = n + before + after
    m = _zeros(x, tuple(shape))
    m[_along(axis, slice(before, before + n))] = x
    p = 1
    while 2 * p <= length:
        size = m.shape[axis]
        m = m[_along(axis, slice(0, size - p))] | m[_along(axis, slice(p, size))]
        p *= 2
    first = before + lo
    return m[_along(axis, slice(first, first + n))] | m[_along(axis, slice(first + length - p, first + length - p + n))]


def _along(axis: int, part: slice) -> tuple:
    """Index selecting ``part`` along ``axis`` (-1 or -2) of an array of any rank."""
    return (Ellipsis, part) if axis == -1 else (Ellipsis, part, slice(None))


def _changes(codes, axis: int):
    """Bool, the shape of ``codes``: ``True`` at ``i`` where ``codes[i] != codes[i + 1]`` along ``axis``."""
    n = codes.shape[axis]
    first, second, last = (_along(axis, part) for part in (slice(0, n - 1), slice(1, n), slice(n - 1, n)))
    if isinstance(codes, np.ndarray):
        out = np.empty(codes.shape, bool)
        np.not_equal(codes[first], codes[second], out=out[first])
    else:
        out = _zeros(codes, tuple(codes.shape)) != 0
        out[first] = codes[first] != codes[second]
    out[last] = False
    return out


def _boundary_mask(codes, d: int, xp):
    """``(..., H, W)`` bool: pixels whose ``(2d+1)^2`` window holds another value or leaves the image.

    Inside the image, a window is uniform exactly when none of its rows changes value between
    two neighbours and its centre column does not either (every row is then constant, and the
    column says they are all equal). So: the horizontal changes, dilated over the ``2d`` pairs
    in a row window and then over ``2d + 1`` rows, or a vertical change among the ``2d`` pairs
    of the centre column. numpy does the vertical passes on packed bits (8 pixels a byte).
    """
    rows = _window_any(_changes(codes, -1), -d, d - 1, -1)
    columns = _changes(codes, -2)
    if xp is np:
        width = codes.shape[-1]
        packed = np.packbits(np.stack([rows, columns]), axis=-1)
        mask = _window_any(packed[0], -d, d, -2) | _window_any(packed[1], -d, d - 1, -2)
        mask = np.unpackbits(mask, axis=-1, count=width).view(bool)
    else:
        mask = _window_any(rows, -d, d, -2) | _window_any(columns, -d, d - 1, -2)
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
    dtype = np.uint8 if K < 255 else np.int32
    g, p = _codes(label, K, dtype, np), _codes(prediction, K, dtype, np)
    _raise_bad(int(np.count_nonzero((g == K) & (label != ignore_index))))
    d = _width(label, width)
    row = np.where(_boundary_mask(g, d, np), g, K)  # the label's class where the pixel is in its G_d
    col = np.where(_boundary_mask(p, d, np) & (g != K), p, K)  # the predicted class where in its P_d
    pixels = label.shape[-2] * label.shape[-1]
    hist = np.stack([_pair_bincount(r, c, K + 1) for r, c in zip(row.reshape(-1, pixels), col.reshape(-1, pixels))])
    return _counts(hist.reshape(*label.shape[:-2], K + 1, K + 1), K)


def _pair_bincount(row: np.ndarray, col: np.ndarray, n: int) -> np.ndarray:
    """The ``(n * n,)`` int64 joint histogram of two 1-D arrays of values in ``[0, n)``, counted by runs.

    Boundary maps are coherent along rows (long runs of "neither" and of one class): one weighted
    count per run of equal pairs is cheaper than one increment per pixel, and no full-size array
    of joint keys is ever made.
    """
    change = np.empty(row.size, bool)
    change[:1] = True
    np.not_equal(row[1:], row[:-1], out=change[1:])
    change[1:] |= col[1:] != col[:-1]
    if np.count_nonzero(change) > row.size // 4:  # short runs: the plain count is cheaper
        return np.bincount(row.astype(np.intp) * n + col, minlength=n * n)
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=row.size)
    keys = row[starts].astype(np.intp) * n + col[starts]
    return np.bincount(keys, weights=lengths, minlength=n * n).astype(np.int64)  # exact below 2**53 pixels


def _run_bincount(keys: np.ndarray, bins: int) -> np.ndarray:
    """``np.bincount`` of a 1-D key array, int64, counted by runs of equal keys (see :func:`_pair_bincount`)."""
    change = np.empty(keys.size, bool)
    change[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=change[1:])
    if np.count_nonzero(change) > keys.size // 4:  # short runs: the plain count is cheaper
        return np.bincount(keys, minlength=bins)
    starts = np.flatnonzero(change)
    lengths = np.diff(starts, append=keys.size)
    return np.bincount(keys[starts], weights=lengths, minlength=bins).astype(np.int64)  # exact below 2**53


# ------------------------------------------------------------------- numpy, packed bits
def boundary_counts_given_confusion(label: np.ndarray, prediction: np.ndarray, confusion: np.ndarray, *,
                                    classes: np.ndarray | None = None,
                                    width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`boundary_counts` of one image whose confusion matrix is already counted: the same numbers, faster.

    Every pixel of a class lies in its ``G_d`` but those of the *interior*, whose window holds
    one value. So the counts are the confusion matrix's class totals less the interior's, and
    the interior is found on packed bits (64 pixels a word). An interior pixel's whole byte of 8
    pixels shares its value when ``d >= 7``, so the interior's class counts need one class per
    byte (the map sampled every 8th column) and a popcount, never a pass over the pixels. For
    ``d < 7`` this falls back to :func:`boundary_counts`.

    The maps may hold raw values (a data set's label ids) instead of class codes: ``classes``
    maps them to codes, and only the sampled bytes are looked up. That is exact because each
    class has one raw value: a window uniform in codes around a pixel of a class is uniform in
    raw values, and the windows of "no class" pixels are never counted.

    Args:
        label: the label's class codes in ``[0, K]`` (``K`` for ignored pixels), or raw values.
        prediction: the predicted class codes in ``[0, K]`` (``K`` for a void prediction), or raw
            values in the label's value space.
        confusion: the image's ``(K, K + 1)`` matrix (rows: label class over the labelled
            pixels; columns: predicted class, then void).
        classes: with raw maps, the ``(256,)`` table value -> code (``K``: no class), at most one
            value per class; None for maps of codes.
        width: ``d``; default :func:`boundary_width` of the image size.

    Returns:
        ``(intersection, union)``, int64 ``(K,)`` each.

    Shape:
        label, prediction ``(H, W)`` uint8; confusion ``(K, K + 1)``.
    """
    g, p = np.asarray(label), np.asarray(prediction)
    _check_shapes(g, p)
    matrix = np.asarray(confusion, np.int64)
    K = matrix.shape[0]
    if matrix.shape != (K, K + 1):
        raise ValueError(f"the confusion matrix must be (K, K + 1) with the void column; got {matrix.shape}")
    table = _class_table(classes, K)
    d = _width(g, width)
    if g.ndim != 2 or d < 7 or g.dtype != np.uint8 or p.dtype != np.uint8:
        label_codes, prediction_codes = (g, p) if classes is None else (table[g], table[p])
        return boundary_counts(label_codes, prediction_codes, K, ignore_index=K, width=d)
    w = g.shape[1]
    label_changes = _bit_words(_changes(g, -1))
    inner_g, inner_p = _interior_bits(g, d, label_changes), _interior_bits(p, d)
    g8, p8 = _byte_classes(g, table), _byte_classes(p, table)
    labelled = _labelled_bits(g, label_changes, g8, table, K)
    label_total, prediction_total = matrix.sum(1), matrix[:, :K].sum(0)
    label_d = label_total - _bits_per_class(inner_g, g8, w, K)
    prediction_d = prediction_total - _bits_per_class(inner_p & labelled, p8, w, K)
    # a pixel with g == p of class c is outside G_d or P_d when either map's interior holds it; its
    # class is the label's byte class where the label's interior touches the byte (the byte is then
    # uniform in the label), else the prediction's. A class there (not K) makes the pixel labelled.
    owner = np.where(_bytes(inner_g, w).ravel() != 0, g8, p8)
    equal = _bit_words(g == p)
    intersection = np.diagonal(matrix[:, :K]) - _bits_per_class((inner_g | inner_p) & equal, owner, w, K)
    return intersection, label_d + prediction_d - intersection


def _class_table(classes: np.ndarray | None, num_classes: int) -> np.ndarray:
    """The ``(256,)`` uint8 value -> code table (identity on codes when None); at most one value per class."""
    K = num_classes
    if classes is None:
        return np.minimum(np.arange(256), K).astype(np.uint8)
    table = np.asarray(classes)
    if table.shape != (256,) or np.any((table < 0) | (table > K)):
        raise ValueError(f"classes must be a (256,) table of codes in [0, {K}]")
    if not one_value_per_class(table, K):
        raise ValueError("classes maps two values to one class: count on class codes instead")
    return table.astype(np.uint8)


def one_value_per_class(table: np.ndarray, num_classes: int) -> bool:
    """Whether a value -> code table (codes in ``[0, K]``, ``K``: no class) gives each class at most one value:
    the condition for counting Boundary IoU on raw values (``boundary_counts_given_confusion(classes=)``)."""
    return bool(np.bincount(np.asarray(table), minlength=num_classes + 1)[:num_classes].max(initial=0) <= 1)


def _byte_classes(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``(H * ceil(W / 8),)`` uint8: the code of every 8th pixel of each row (the first of each byte of bits)."""
    return np.take(table, np.ascontiguousarray(values[:, ::8])).ravel()  # take: faster than indexing here


def _labelled_bits(label: np.ndarray, changes: np.ndarray, byte_class: np.ndarray, table: np.ndarray,
                   num_classes: int) -> np.ndarray:
    """:func:`_bit_words` of ``table[label] < K``, looking up only the bytes whose 8 pixels differ.

    A byte with no horizontal change inside (``changes``, the packed change map) is one value, its
    sampled ``byte_class``; the rest (near the label's edges, and a last partial byte) are looked up.
    """
    h, w = label.shape
    per_byte = -(byte_class < num_classes).view(np.uint8).reshape(h, -1)  # 0xFF or 0
    mixed = (_bytes(changes, w) & np.uint8(0x7F)) != 0  # bit k: column 8b + k differs from 8b + k + 1
    if w % 8:
        mixed[:, -1] = True  # its missing columns must read as unlabelled
    if mixed.any():
        rows, cols = np.divmod(np.flatnonzero(mixed), mixed.shape[1])
        columns = cols[:, None] * 8 + np.arange(8)
        pixels = label[rows[:, None], np.minimum(columns, w - 1)]
        per_byte[rows, cols] = np.packbits((table[pixels] < num_classes) & (columns < w), axis=-1,
                                           bitorder="little")[:, 0]
    return _words_of_bytes(per_byte)


def _bit_words(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool -> ``(H, ceil(W / 64))`` uint64: bit ``j`` of a row is column ``j`` (little-endian)."""
    return _words_of_bytes(np.packbits(mask, axis=-1, bitorder="little"))


def _words_of_bytes(packed: np.ndarray) -> np.ndarray:
    """``(H, B)`` uint8 bytes of bits -> ``(H, ceil(B / 8))`` uint64 words (zero bytes appended)."""
    missing = -packed.shape[-1] % 8
    if missing:
        packed = np.concatenate([packed, np.zeros(packed.shape[:-1] + (missing,), np.uint8)], axis=-1)
    return packed.view("<u8")


def _bytes(words: np.ndarray, width: int) -> np.ndarray:
    """The bytes of :func:`_bit_words` rows, ``ceil(W / 8)`` a row (one per 8 pixels): a strided view."""
    return words.view(np.uint8)[:, :-(-width // 8)]


def _bits_per_class(words: np.ndarray, byte_class: np.ndarray, width: int, num_classes: int) -> np.ndarray:
    """``(K,)`` int64: set bits counted by the class of their byte (class ``K``: not counted)."""
    ones = _popcount(_bytes(words, width)).ravel()  # the popcount's output is contiguous: no copy
    bins = num_classes + 1
    if bins * 9 <= 256:  # one uint8 key per byte, (class, popcount): an unweighted count is cheaper
        keys = byte_class * np.uint8(9) + ones  # long runs of one key: interiors are whole bytes of one class
        per_key = _run_bincount(keys, bins * 9).reshape(bins, 9)
        return (per_key @ np.arange(9))[:num_classes].astype(np.int64)
    return np.bincount(byte_class, weights=ones, minlength=bins)[:num_classes].astype(np.int64)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint8 (numpy's ``bitwise_count`` where it exists, else a table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _POPCOUNT_TABLE[x]


_POPCOUNT_TABLE = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _shift_bits(words: np.ndarray, k: int) -> np.ndarray:
    """Bit ``i`` of each word row becomes bit ``i + k`` of the input (0 beyond the row's ends)."""
    q, s = divmod(k, 64)
    n = words.shape[-1]
    out = np.zeros_like(words) if abs(q) >= n else np.empty_like(words)
    lo, hi = max(0, -q), min(n, n - q)  # output words whose source word ``w + q`` exists
    if lo < hi:
        out[:, :lo], out[:, hi:] = 0, 0
        if s:
            np.right_shift(words[:, lo + q:hi + q], np.uint64(s), out=out[:, lo:hi])
        else:
            out[:, lo:hi] = words[:, lo + q:hi + q]
    lo, hi = max(0, -q - 1), min(n, n - q - 1)  # and its neighbour ``w + q + 1``, for the carried bits
    if s and lo < hi:
        out[:, lo:hi] |= words[:, lo + q + 1:hi + q + 1] << np.uint64(64 - s)
    return out


def _window_any_bits(words: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """:func:`_window_any` along the bits of word rows: bit ``i`` = OR of bits ``i + lo .. i + hi``."""
    length = hi - lo + 1
    n = words.shape[-1]
    m = np.zeros(words.shape[:-1] + (n + 1,), words.dtype)  # a zero word after each row: the last carry
    m[:, :n] = words
    body, p = m[:, :n], 1
    while 2 * p <= length and p < 64:  # bit i |= bit i + p, carrying from the next word
        body |= (body >> np.uint64(p)) | (m[:, 1:] << np.uint64(64 - p))
        p *= 2
    while 2 * p <= length:  # whole words (overlapping operands: numpy buffers them)
        q = p // 64
        body[:, :n - q] |= body[:, q:]
        p *= 2
    out = _shift_bits(body, lo)
    out |= _shift_bits(body, lo + length - p)
    return out


def _interior_bits(codes: np.ndarray, d: int, changes: np.ndarray | None = None) -> np.ndarray:
    """The complement of :func:`_boundary_mask` as :func:`_bit_words`: pixels whose window is uniform.

    ``changes``: the packed horizontal change map of ``codes``, when already made.
    """
    if changes is None:
        changes = _bit_words(_changes(codes, -1))
    rows = _window_any_bits(changes, -d, d - 1)
    near = _window_any(rows, -d, d, -2) | _window_any(_bit_words(_changes(codes, -2)), -d, d - 1, -2)
    return ~near & _inner_region(*codes.shape, d)


@functools.lru_cache(maxsize=8)
def _inner_region(height: int, width: int, d: int) -> np.ndarray:
    """:func:`_bit_words` of the pixels at least ``d`` from the image border (read-only, cached)."""
    region = np.zeros((height, width), bool)
    region[d:height - d, d:width - d] = True
    words = _bit_words(region)
    words.flags.writeable = False
    return words


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
