"""The confusion matrix: the only metric state; every number is a pure reduction of it.

Rows are ground truth, columns prediction. Pixels whose label is the ignore index count nowhere.

How the counting works (and why it is fast and exact):

* Every ground-truth value ``v`` in a window ``[lo - 1, hi + 1]`` (``lo = min(0, ignore_index)``,
  ``hi = max(255, K - 1, ignore_index)``) owns one *row* of a histogram of ``R = hi - lo + 3``
  rows by ``K`` columns; values outside the window are clamped onto the two edge rows. A uint8
  label map needs no clamping (0..255 always lies inside). The confusion matrix is the ``K`` rows
  of the classes; the ignore row is dropped; any count in another row is a ground-truth value
  outside ``[0, K)``. So ignored pixels need no boolean mask, and bad labels are found on the
  histogram itself, not by a ``min``/``max`` over the map (a host synchronisation on CUDA).
* The bin of a pixel is ``lane * R*K + row(gt) * K + pred``, built in the narrowest integer type
  that holds it (int16 for K up to ~127, else int32) with one fused multiply-add per pixel, then
  counted by ``torch.bincount``. On CPU the ``lane`` (the column index modulo 4) spreads
  neighbouring pixels over 4 interleaved sub-histograms: segmentation maps are spatially
  coherent, and incrementing the same counter twice in a row stalls on the previous store.
  Integer counting is exact, so results are bit-identical with or without
  ``torch.use_deterministic_algorithms(True)`` and cost the same.
* On CUDA ``torch.bincount`` reads the input's maximum back to the host; the count there is a
  ``scatter_add_`` into a fixed-size histogram instead, so an update never synchronises.
  Errors found on CUDA (bad labels, bad predictions) are therefore raised by ``compute()``;
  on CPU they are raised by the ``update()`` that saw them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import numpy as np
    from torch.distributed import ProcessGroup

__all__ = ["ConfusionMatrix", "confusion_matrix"]

_LANES = 4  # interleaved sub-histograms on CPU
_IGNORE_SPAN = 1024  # how far outside [0, max(K, 256)] an ignore index may lie


def _int_dtype_for(max_value: int) -> torch.dtype:
    """The narrowest signed integer type holding ``[0, max_value]``."""
    if max_value <= torch.iinfo(torch.int16).max:
        return torch.int16
    if max_value <= torch.iinfo(torch.int32).max:
        return torch.int32
    return torch.int64


def _describe_values(values: list[int], lo: int, hi: int) -> str:
    """Bad ground-truth rows as text; the two edge rows stand for 'below lo' / 'above hi'."""
    parts = []
    for v in values[:5]:
        if v < lo:
            parts.append(f"a value below {lo}")
        elif v > hi:
            parts.append(f"a value above {hi}")
        else:
            parts.append(str(v))
    more = f" (and {len(values) - 5} more)" if len(values) > 5 else ""
    return ", ".join(parts) + more


class ConfusionMatrix:
    """Streaming confusion matrix over a dataset, on CPU or CUDA.

    Args:
        num_classes: ``K``, the number of classes (predictions and labels in ``[0, K)``).
        ignore_index: label value that counts nowhere (default 255).
        device: device of the state; by default that of the first update.
        per_image: also keep TP/FP/FN per image and class (for the bootstrap); images are the
            first dimension of a target with 3 or more dimensions, a 2-D target is one image.
        ignore_out_of_range: ignore ground-truth values outside ``[0, K)`` instead of raising.
        validate: check that class-index predictions lie in ``[0, K)`` (one min/max pass over
            the predictions, no host synchronisation on CUDA). Predictions from logits are
            always valid and never checked. With ``validate=False`` an out-of-range prediction
            is counted in a wrong cell (or fails inside ``bincount``).

    Shape:
        - update: ``preds`` ``(N, ...)`` integer class indices, or logits ``(N, K, ...)``
          (argmax over dim 1); ``target`` ``(N, ...)`` any integer dtype (uint8 is fastest).
        - compute: ``(K, K)`` int64, rows ground truth, columns prediction.

    Example:
        >>> cm = ConfusionMatrix(19)
        >>> for logits, target in batches:  # doctest: +SKIP
        ...     cm.update(logits, target)
        >>> per_class_iou(cm.compute())  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        device: torch.device | str | None = None,
        per_image: bool = False,
        *,
        ignore_out_of_range: bool = False,
        validate: bool = True,
    ) -> None:
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = K = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.per_image = bool(per_image)
        self.ignore_out_of_range = bool(ignore_out_of_range)
        self.validate = bool(validate)
        self.device = None if device is None else torch.device(device)
        if not -_IGNORE_SPAN <= self.ignore_index <= max(K, 256) + _IGNORE_SPAN:
            # the histogram has one row per value between the ignore index and the classes
            raise ValueError(f"ignore_index {ignore_index} is too far from the class range; use e.g. 255 or -1")
        # Histogram rows cover the ground-truth values [lo - 1, hi + 1]; see the module docstring.
        self._lo = min(0, self.ignore_index)
        self._hi = max(255, K - 1, self.ignore_index)
        self._rows = self._hi - self._lo + 3
        self._row_offset = 1 - self._lo  # row of value v is v + _row_offset
        self._bins = self._rows * K
        self._row_is_bad = self._bad_row_mask()
        self._lane_cache: dict = {}
        self.reset()

    # ----------------------------------------------------------------------------- state
    def reset(self) -> None:
        """Forget everything counted so far."""
        self._hist: torch.Tensor | None = None  # (R, K) int64 on self.device
        self._pred_min: torch.Tensor | None = None  # running min/max of class-index predictions (0-d)
        self._pred_max: torch.Tensor | None = None
        self._images: list[torch.Tensor] = []  # per image: (3, K) int64 tp, fp, fn

    def _bad_row_mask(self) -> torch.Tensor:
        """(R,) bool: rows whose ground-truth value is neither a class nor the ignore index."""
        bad = torch.ones(self._rows, dtype=torch.bool)
        bad[self._row_offset : self._row_offset + self.num_classes] = False
        bad[self.ignore_index + self._row_offset] = False
        return bad

    @staticmethod
    def _sync_free(device: torch.device) -> bool:
        """Whether updates on ``device`` must avoid reading values back to the host (not CPU).

        Then counting uses ``scatter_add_`` and every check waits for ``compute()``.
        """
        return device.type != "cpu"

    def _ensure_state(self, device: torch.device) -> torch.Tensor:
        """The histogram, created on first use; returns it."""
        if self.device is None:
            self.device = device
        if self._hist is None:
            # a normal tensor even when the first update runs under torch.inference_mode(), so
            # that later updates outside it may still add to it in place
            with torch.inference_mode(False):
                self._hist = torch.zeros(self._rows, self.num_classes, dtype=torch.int64, device=self.device)
        return self._hist

    # ---------------------------------------------------------------------------- update
    @torch.no_grad()
    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch.

        Args:
            preds: class indices with the shape of ``target``, or logits/probabilities with an
                extra class dimension at dim 1 (floating point: argmax over dim 1).
            target: ground-truth labels, any integer dtype.
        """
        preds, target, from_logits = self._as_class_indices(preds, target)
        if target.numel() == 0:
            return
        counts = self._ensure_state(target.device)
        if self.validate and not from_logits:
            self._check_predictions(preds)
        if self.per_image and target.dim() >= 3:
            hists = [self._histogram(p, t) for p, t in zip(preds, target)]
        else:
            hists = [self._histogram(preds, target)]
        for hist in hists:
            self._check_labels(hist)
            hist = hist.to(self.device)
            if self.per_image:
                self._images.append(self._tp_fp_fn(self._valid_block(hist)))
            counts += hist  # in place: counts is self._hist

    def _as_class_indices(self, preds: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Validate shapes and dtypes; turn logits into class indices (and say so)."""
        preds, target = torch.as_tensor(preds), torch.as_tensor(target)
        from_logits = preds.dtype.is_floating_point
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise ValueError(f"target must hold integer class labels, got dtype {target.dtype}")
        if preds.dtype.is_floating_point:
            if preds.dim() != target.dim() + 1 or preds.shape[:1] + preds.shape[2:] != target.shape:
                raise ValueError(
                    f"logits of shape {tuple(preds.shape)} do not match target {tuple(target.shape)}"
                    " (expected (N, K, ...) for a target (N, ...))"
                )
            if preds.shape[1] != self.num_classes:
                raise ValueError(f"logits have {preds.shape[1]} classes at dim 1, expected {self.num_classes}")
            preds = preds.argmax(dim=1)  # in range by construction: never checked
        elif preds.dtype == torch.bool or preds.dtype.is_complex:
            raise ValueError(f"predictions must be class indices or logits, got dtype {preds.dtype}")
        elif preds.shape != target.shape:
            raise ValueError(f"predictions of shape {tuple(preds.shape)} do not match target {tuple(target.shape)}")
        if preds.device != target.device:
            raise ValueError(f"predictions on {preds.device} but target on {target.device}")
        return preds, target, from_logits

    def _check_predictions(self, preds: torch.Tensor) -> None:
        """Range check of class-index predictions: eager on CPU, deferred to compute() on CUDA."""
        lo, hi = torch.aminmax(preds)
        if not self._sync_free(preds.device):
            self._raise_for_predictions(int(lo), int(hi))
            return
        lo, hi = lo.to(self.device, torch.int64), hi.to(self.device, torch.int64)
        self._pred_min = lo if self._pred_min is None else torch.minimum(self._pred_min, lo)
        self._pred_max = hi if self._pred_max is None else torch.maximum(self._pred_max, hi)

    def _raise_for_predictions(self, lo: int, hi: int) -> None:
        if lo < 0 or hi >= self.num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"prediction value {bad} is outside [0, {self.num_classes})")

    def _lane_offsets(self, width: int, dtype: torch.dtype, device: torch.device, lanes: int) -> torch.Tensor:
        """(width,) bin offsets: the sub-histogram of each column plus the ground-truth row shift."""
        key = (width, dtype, device, lanes)
        if key not in self._lane_cache:
            lane = torch.arange(width, device=device) % lanes
            offsets = lane * self._bins + self._row_offset * self.num_classes
            self._lane_cache[key] = offsets.to(dtype)
        return self._lane_cache[key]

    def _index_layout(self, on_cpu: bool) -> tuple[int, torch.dtype]:
        """Number of interleaved sub-histograms and the bin-index dtype.

        Fewer lanes in int16 beat more lanes in int32: the index is written and read once more
        than the histogram is touched.
        """
        lanes = _LANES if on_cpu else 1
        int16_max = torch.iinfo(torch.int16).max
        if self._bins - 1 <= int16_max:
            while lanes * self._bins - 1 > int16_max:
                lanes //= 2
        return lanes, _int_dtype_for(lanes * self._bins - 1)

    def _histogram(self, preds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(R, K) int64 counts of (ground-truth row, prediction) pairs of one map or batch.

        Shape:
            preds, target: the same shape; returns ``(R, K)``.
        """
        K, device = self.num_classes, target.device
        on_cpu = not self._sync_free(device)
        lanes, dtype = self._index_layout(on_cpu)
        target = self._narrow_target(target, dtype)
        if preds.dtype not in (torch.uint8, dtype):
            preds = preds.to(dtype)  # a separate cast is faster than a mixed-dtype add
        width = target.shape[-1] if target.dim() else 1
        target2d, preds2d = target.reshape(-1, width), preds.reshape(-1, width)
        offsets = self._lane_offsets(width, dtype, device, lanes)
        # bin = lane*R*K + (gt + row_offset)*K + pred: one fused multiply-add into the narrow type.
        index = torch.add(offsets, target2d, alpha=K)
        index.add_(preds2d)
        index = index.view(-1)
        n_bins = lanes * self._bins
        if on_cpu:
            counts = torch.bincount(index, minlength=n_bins)
        else:
            # No host sync: bincount would read index.max() back; clamping keeps a bad
            # prediction (reported by compute()) from indexing outside the histogram.
            counts = torch.zeros(n_bins, dtype=torch.int64, device=device)
            index = index.long().clamp_(0, n_bins - 1)
            counts.scatter_add_(0, index, torch.ones_like(index))
        return counts.view(lanes, self._rows, K).sum(0)

    def _narrow_target(self, target: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Ground truth in the index dtype, values outside the row window clamped onto its edges.

        uint8 always lies inside the window. Wider types are clamped (on CPU only when their
        min/max, free to read there, says so), since a plain cast would wrap e.g. 65536 to 0.
        """
        if target.dtype == torch.uint8:
            return target
        lo, hi = self._lo - 1, self._hi + 1
        if not self._sync_free(target.device):
            t_min, t_max = torch.aminmax(target)
            if lo <= int(t_min) and int(t_max) <= hi:
                return target.to(dtype)
        return target.clamp(lo, hi).to(dtype)

    def _check_labels(self, hist: torch.Tensor) -> None:
        """Bad ground truth shows as counts in rows that are neither a class nor ignored."""
        if self.ignore_out_of_range or self._sync_free(hist.device):
            return  # on CUDA, compute() checks the accumulated histogram
        self._raise_for_labels(hist)

    def _raise_for_labels(self, hist: torch.Tensor) -> None:
        row_counts = hist.sum(1).cpu()
        bad_rows = torch.nonzero((row_counts > 0) & self._row_is_bad).flatten().tolist()
        if bad_rows:
            values = [r - self._row_offset for r in bad_rows]
            raise ValueError(
                f"ground-truth value {_describe_values(values, self._lo, self._hi)} is outside "
                f"[0, {self.num_classes}) and is not the ignore index {self.ignore_index}"
                " (pass ignore_out_of_range=True to ignore such pixels)"
            )

    def _valid_block(self, hist: torch.Tensor) -> torch.Tensor:
        """The (K, K) block of class rows; the ignore row and bad rows are left out."""
        start = self._row_offset
        cm = hist[start : start + self.num_classes]
        if 0 <= self.ignore_index < self.num_classes:
            cm = cm.clone()
            cm[self.ignore_index] = 0  # pixels labelled with the ignore index count nowhere
        return cm

    @staticmethod
    def _tp_fp_fn(cm: torch.Tensor) -> torch.Tensor:
        """(3, K) int64: true positives, false positives, false negatives per class."""
        tp = cm.diagonal()
        return torch.stack([tp, cm.sum(0) - tp, cm.sum(1) - tp])

    # --------------------------------------------------------------------------- results
    def compute(self) -> torch.Tensor:
        """The (K, K) int64 confusion matrix (rows ground truth, columns prediction).

        Raises:
            ValueError: a ground-truth value outside ``[0, K)`` that is not the ignore index
                (unless ``ignore_out_of_range``), or a prediction outside ``[0, K)``, seen by
                an update on CUDA (CPU updates raise at once).
        """
        if self._hist is None:
            device = self.device or torch.device("cpu")
            return torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64, device=device)
        if self._pred_min is not None and self._pred_max is not None:
            self._raise_for_predictions(int(self._pred_min), int(self._pred_max))
        if not self.ignore_out_of_range:
            self._raise_for_labels(self._hist)
        return self._valid_block(self._hist).clone()

    def per_image_stats(self) -> dict[str, np.ndarray]:
        """Per-image ``{"tp", "fp", "fn"}``, each a numpy int64 array ``(N_images, K)``."""
        if not self.per_image:
            raise ValueError("per-image statistics need ConfusionMatrix(..., per_image=True)")
        if self._pred_min is not None and self._pred_max is not None:
            self._raise_for_predictions(int(self._pred_min), int(self._pred_max))
        if self._hist is not None and not self.ignore_out_of_range:
            self._raise_for_labels(self._hist)
        if self._images:
            stats = torch.stack(self._images).cpu().numpy()
        else:
            import numpy as np

            stats = np.zeros((0, 3, self.num_classes), dtype=np.int64)
        return {"tp": stats[:, 0].copy(), "fp": stats[:, 1].copy(), "fn": stats[:, 2].copy()}

    # ------------------------------------------------------------------------ combining
    def _layout(self) -> tuple:
        return (self.num_classes, self.ignore_index, self.per_image, self.ignore_out_of_range)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (same classes and ignore index) into this one; returns self."""
        if not isinstance(other, ConfusionMatrix) or other._layout() != self._layout():
            raise ValueError("can only merge a ConfusionMatrix with the same num_classes, ignore_index and per_image")
        if other._hist is None:
            return self
        counts = self._ensure_state(other._hist.device)
        counts += other._hist.to(self.device)
        for name, pick in (("_pred_min", torch.minimum), ("_pred_max", torch.maximum)):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is not None:
                theirs = theirs.to(self.device)
                setattr(self, name, theirs if mine is None else pick(mine, theirs))
        self._images.extend(t.to(self.device) for t in other._images)
        return self

    def all_reduce(self, group: ProcessGroup | None = None) -> ConfusionMatrix:
        """Sum the counts of every rank of ``torch.distributed`` (a no-op when not initialised).

        Call it once, after the last update: every rank then holds the dataset-wide matrix.
        Per-image statistics are gathered in rank order. Returns self.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        device = self.device or torch.device("cpu")
        dist.all_reduce(self._ensure_state(device), op=dist.ReduceOp.SUM, group=group)
        big = torch.iinfo(torch.int64).max
        lo = self._pred_min if self._pred_min is not None else torch.tensor(big, device=self.device)
        hi = self._pred_max if self._pred_max is not None else torch.tensor(-big, device=self.device)
        lo, hi = lo.clone().reshape(1), hi.clone().reshape(1)
        dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
        if int(lo) != big:  # somebody checked class-index predictions on a GPU
            self._pred_min, self._pred_max = lo[0], hi[0]
        if self.per_image:
            gathered: list[Any] = [None] * dist.get_world_size(group)
            dist.all_gather_object(gathered, [t.cpu() for t in self._images], group=group)
            self._images = [t.to(self.device) for rank_images in gathered for t in rank_images]
        return self

    def __repr__(self) -> str:
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"device={self.device})")


def confusion_matrix(
    preds: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int = 255,
    *,
    ignore_out_of_range: bool = False,
    validate: bool = True,
) -> torch.Tensor:
    """Confusion matrix of one set of predictions.

    Args:
        preds: class indices shaped like ``target``, or logits ``(N, K, ...)``.
        target: integer labels; ``ignore_index`` counts nowhere.
        num_classes: ``K``.
        ignore_index: label value to ignore (default 255).
        ignore_out_of_range: ignore other labels outside ``[0, K)`` instead of raising.
        validate: check predictions lie in ``[0, K)``.

    Returns:
        ``(K, K)`` int64 tensor on the inputs' device, rows ground truth, columns prediction.

    Shape:
        - preds: ``(*)`` or ``(N, K, *)``; target: ``(*)`` / ``(N, *)``; output ``(K, K)``.
    """
    cm = ConfusionMatrix(
        num_classes, ignore_index, ignore_out_of_range=ignore_out_of_range, validate=validate
    )
    cm.update(preds, target)
    if cm._hist is None:
        cm._ensure_state(torch.as_tensor(target).device)
    return cm.compute()
