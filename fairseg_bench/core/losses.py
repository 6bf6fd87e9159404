"""The loss family: MCCE, weighted CE, Focal and the Tilted Cross-Entropy variants.

Functional losses come first; the ``nn.Module`` classes at the end only bind hyper-parameters
(and, for the online tilt, its running state). Every loss takes logits ``(N, C, H, W)`` and an
int64 target ``(N, H, W)`` whose ``ignore_index`` pixels count nowhere, and returns a scalar.

All of them start from one ``F.cross_entropy`` pass (per-pixel for the reweighted ones: the CE
is 0 at ignored pixels, with a zero gradient there) and reduce it with sums and per-row
``scatter_add`` into class bins: no per-class Python loop and no one-hot tensor, so that
forward+backward costs little more than ``F.cross_entropy`` itself (benchmarks/bench_losses.py).

Choices the paper leaves open (docs/definitions.md):

* Means are over valid (non-ignored) pixels. A batch with no valid pixel gives a loss of 0 with
  a zero gradient rather than NaN.
* Weighted CE: ``w_c = 1 / f_c`` (``f_c`` the class pixel frequency of the training set),
  normalised to mean 1 over the classes seen in training; classes with no training pixel get
  weight 0. The loss is ``sum_i w_{y_i} CE_i / sum_i w_{y_i}``, exactly ``F.cross_entropy`` with
  ``weight``.
* Focal: softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y``; ``alpha`` the inverse class
  frequency normalised to mean 1 by default (sum 1 as an option; it divides the loss scale by K),
  or all ones; the denominator is the number of valid pixels (not the sum of alpha).
* Tilted losses use :func:`fairseg_bench.core.tilt.tilted_mean` (log space, either sign of t,
  plain mean for ``|t| < 1e-6``). Per-image / per-class means are float32 (float64 for float64
  inputs) even under autocast. Class level: ``K_m`` counts the classes present in image m;
  images without a valid pixel are skipped (eq. 2 as well).
* Validation is cheap: shapes and dtypes on the host; the target range (values in ``[0, C)``
  or the ignore index) with one masked ``aminmax`` and one synchronisation on accelerators,
  and for free on CPU, where ``F.cross_entropy`` checks every target itself (its error is
  turned into a ``ValueError`` naming the bad value).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairseg_bench.core.tilt import log_ema_update, tilted_mean

__all__ = [
    "pixel_cross_entropy",
    "mcce",
    "weighted_cross_entropy",
    "inverse_frequency_weights",
    "focal_alpha",
    "focal_loss",
    "image_tilted_cross_entropy",
    "class_tilted_cross_entropy",
    "tilted_cross_entropy",
    "batch_class_means",
    "online_class_weights",
    "CrossEntropyLoss",
    "WeightedCrossEntropyLoss",
    "FocalLoss",
    "TiltedCrossEntropy",
    "OnlineTiltedCrossEntropy",
]

TILT_LEVELS = ("image", "class")
ALPHA_NORMALISATIONS = ("mean", "sum")


# ----------------------------------------------------------------------------------- checks


def check_inputs(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Raise ``ValueError`` naming the problem if logits/target are not a valid pair.

    Returns:
        The valid-pixel mask ``target != ignore_index``.

    Shape:
        logits ``(N, C, H, W)`` floating point; target ``(N, H, W)`` int64 -> mask ``(N, H, W)``.
    """
    _check_shapes(logits, target)
    valid = target != ignore_index
    check_target_range(target, logits.shape[1], ignore_index, valid)
    return valid


def _check_shapes(logits: Tensor, target: Tensor) -> None:
    """Shapes and dtypes, on the host (no device work)."""
    if not isinstance(logits, Tensor) or not isinstance(target, Tensor):
        raise ValueError(f"logits and target must be tensors, got {type(logits).__name__} and {type(target).__name__}")
    if logits.ndim != 4:
        raise ValueError(f"logits must be 4-D (N, C, H, W), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if target.dtype != torch.int64:
        raise ValueError(f"target must be int64 (torch.long), got {target.dtype}")
    n, c, h, w = logits.shape
    if tuple(target.shape) != (n, h, w):
        raise ValueError(f"target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}; "
                         f"expected {(n, h, w)}")
    if c < 1:
        raise ValueError("logits have no class channel (C = 0)")


def check_target_range(target: Tensor, num_classes: int, ignore_index: int = 255, valid: Tensor | None = None) -> None:
    """Raise ``ValueError`` naming the first bad value unless every target is in ``[0, C)`` or ignored.

    One masked ``aminmax`` and one device synchronisation.
    """
    if target.numel() == 0:
        return
    if valid is None:
        valid = target != ignore_index
    low, high = (int(v) for v in torch.aminmax(torch.where(valid, target, 0)))
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"target value {bad} is outside [0, {num_classes}) and is not the ignore index {ignore_index}")


def _check_tilt(t: float) -> float:
    """Return ``t`` as a float; any finite value is valid (negative t leans to the smallest)."""
    try:
        value = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"tilt t must be a finite number, got {t!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"tilt t must be a finite number, got {t!r}")
    return value


def _check_focal_gamma(gamma: float) -> float:
    value = float(gamma)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"focal gamma must be a finite number >= 0, got {gamma!r}")
    return value


def _check_ema_rate(gamma: float) -> float:
    value = float(gamma)
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"EMA rate gamma must be in (0, 1], got {gamma!r}")
    return value


def _check_class_vector(values, num_classes: int, what: str) -> None:
    if values.ndim != 1 or values.shape[0] != num_classes:
        raise ValueError(f"{what} must have shape ({num_classes},) for {num_classes} classes, "
                         f"got {tuple(values.shape)}")


# ------------------------------------------------------------------------------ per pixel


def _reduction_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else reduces in float32 (AMP-safe)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _full_precision(logits: Tensor) -> Tensor:
    """Half-precision logits are promoted, so every loss is float32 even under autocast."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _is_channels_last(logits: Tensor) -> bool:
    """True for ``(N, C, H, W)`` logits stored NHWC (a channels_last model's output), C > 1."""
    return (logits.dim() == 4 and logits.shape[1] > 1 and not logits.is_contiguous()
            and logits.is_contiguous(memory_format=torch.channels_last))


def _cross_entropy(
    logits: Tensor, target: Tensor, ignore_index: int, reduction: str, weight: Tensor | None = None
) -> Tensor:
    logits = _full_precision(logits)
    with torch.autocast(logits.device.type, enabled=False):
        if _is_channels_last(logits):
            # NHWC logits are a contiguous (pixels, C) matrix: the CE over its rows reads them in
            # place, where the (N, C, H, W) kernel would first copy them to NCHW (~5 % of a CPU step)
            n, c, h, w = logits.shape
            ce = F.cross_entropy(logits.permute(0, 2, 3, 1).reshape(-1, c), target.reshape(-1), weight=weight,
                                 ignore_index=ignore_index, reduction=reduction)
            return ce.view(n, h, w) if reduction == "none" else ce
        return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction)


def _checked_cross_entropy(
    logits: Tensor, target: Tensor, ignore_index: int, reduction: str, weight: Tensor | None = None
) -> Tensor:
    """``F.cross_entropy`` after the input checks.

    The target range check costs a pass and a host synchronisation, so on CPU it runs only
    when ``F.cross_entropy`` itself rejects a target (its CPU kernel checks every pixel); on
    other devices, where a bad target is a device-side assert, it runs before the call.
    Afterwards every target is in ``[0, C)`` or the ignore index.
    """
    _check_shapes(logits, target)
    if target.device.type != "cpu":
        check_target_range(target, logits.shape[1], ignore_index)
    try:
        return _cross_entropy(logits, target, ignore_index, reduction, weight)
    except (IndexError, RuntimeError):
        check_target_range(target, logits.shape[1], ignore_index)  # names the bad value
        raise


def pixel_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Per-pixel cross-entropy (float32 or float64), 0 with a zero gradient at ignored pixels.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> ``(N, H, W)``.
    """
    return _checked_cross_entropy(logits, target, ignore_index, "none")


def mcce(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Multi-class cross-entropy, eq. (1): the mean CE over the valid pixels of the batch.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.
    """
    total = _checked_cross_entropy(logits, target, ignore_index, "sum")
    return total / _valid_count(target, ignore_index)


def _valid_count(target: Tensor, ignore_index: int) -> Tensor:
    """Number of non-ignored pixels, at least 1 (an all-ignored batch then gives 0, not NaN).

    ``count_nonzero`` of the mask: a bool ``sum`` costs ~15x more on CPU.
    """
    return torch.count_nonzero(target != ignore_index).clamp(min=1)


# ----------------------------------------------------------------------------- weighted CE


def inverse_frequency_weights(class_pixel_counts) -> Tensor:
    """Inverse class pixel frequency, normalised to mean 1 over the classes seen in training.

    Classes with no training pixel get weight 0 (they cannot occur in a training target, and an
    infinite weight would swamp the normalisation).

    Shape:
        ``(K,)`` pixel counts -> ``(K,)`` float32 weights.
    """
    counts = torch.as_tensor(class_pixel_counts, dtype=torch.float64).reshape(-1)
    if counts.numel() == 0 or bool((counts < 0).any()) or not bool(torch.isfinite(counts).all()):
        raise ValueError(f"class pixel counts must be finite and non-negative, got {counts.tolist()}")
    seen = counts > 0
    if not bool(seen.any()):
        raise ValueError("class pixel counts are all zero: no class frequency to invert")
    inverse = torch.where(seen, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
    return (inverse / inverse[seen].mean()).float()


def weighted_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor, ignore_index: int = 255) -> Tensor:
    """Class-weighted CE: ``sum_i w_{y_i} CE_i / sum_i w_{y_i}`` over valid pixels.

    The same value as ``F.cross_entropy(..., weight=weight)``, but 0 instead of NaN for a batch
    with no valid pixel.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)``, weight ``(C,)`` -> scalar.
    """
    _check_shapes(logits, target)
    num_classes = logits.shape[1]
    _check_class_vector(weight, num_classes, "weight")
    weight = weight.to(device=logits.device, dtype=_full_precision(logits).dtype)
    total = _checked_cross_entropy(logits, target, ignore_index, "sum", weight)
    key, bins = _class_key(target, num_classes, ignore_index)
    counts = _pixel_counts(key.reshape(1, -1), bins)[0, :num_classes]
    mass = (counts * weight).sum().to(total.dtype)
    return total / torch.where(mass > 0, mass, torch.ones_like(mass))


# ----------------------------------------------------------------------------------- focal


def focal_alpha(class_pixel_counts, normalise: str = "mean") -> Tensor:
    """Focal's per-class alpha: inverse class pixel frequency, normalised to mean 1 (or sum 1).

    Sum-1 alphas scale the loss (and an SGD step) down by K; mean 1 keeps MCCE's scale.

    Shape:
        ``(K,)`` pixel counts -> ``(K,)`` float32.
    """
    if normalise not in ALPHA_NORMALISATIONS:
        raise ValueError(f"alpha normalisation must be one of {ALPHA_NORMALISATIONS}, got {normalise!r}")
    weights = inverse_frequency_weights(class_pixel_counts)
    return weights / weights.sum() if normalise == "sum" else weights


def focal_loss(
    logits: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: Tensor | None = None,
    ignore_index: int = 255,
) -> Tensor:
    """Softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y``, mean over valid pixels.

    Args:
        gamma: focusing parameter, ``>= 0``; ``gamma = 0`` and no alpha is MCCE.
        alpha: optional per-class weights ``(C,)`` (see :func:`focal_alpha`), a constant (no
            gradient flows to it); None means 1.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.
    """
    gamma = _check_focal_gamma(gamma)
    ce = _checked_cross_entropy(logits, target, ignore_index, "none")
    pixel_weight = None
    if alpha is not None:
        num_classes = logits.shape[1]
        _check_class_vector(alpha, num_classes, "alpha")
        pixel_weight = _per_pixel(alpha.to(device=ce.device, dtype=ce.dtype), target, ignore_index)
    with torch.autocast(ce.device.type, enabled=False):
        if gamma == 0:
            total = (ce * pixel_weight).sum() if pixel_weight is not None else ce.sum()
        else:
            total = _FocalSum.apply(ce, gamma, pixel_weight)
        return total / _valid_count(target, ignore_index)


def _per_pixel(class_values: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """``class_values[target]``, 0 at ignored pixels (``index_select`` from a small table: the
    fastest gather here, 4x advanced indexing of a clamped target on CPU).

    Shape:
        class_values ``(C,)``, target ``(N, H, W)`` -> ``(N, H, W)``.
    """
    num_classes = class_values.shape[0]
    key, bins = _class_key(target, num_classes, ignore_index)
    table = torch.zeros(bins, dtype=class_values.dtype, device=class_values.device)
    table[:num_classes] = class_values
    return table.index_select(0, key.reshape(-1)).view_as(key)


class _FocalSum(torch.autograd.Function):
    """``sum_i w_i (1 - p_i)^gamma CE_i`` with ``p_i = exp(-CE_i)``, for ``gamma > 0``.

    Written out instead of left to autograd so that it costs a few in-place passes over the
    per-pixel CE and the backward is one multiply by the derivative kept from the forward:
    ``d/dCE = q^gamma + gamma q^(gamma-1) p CE`` with ``q = 1 - p``. ``q = -expm1(-CE)`` keeps
    precision for confident pixels; below ``gamma = 1``, ``q^(gamma-1)`` is infinite where CE is
    exactly 0 (very confident pixels), so ``q`` is clamped away from 0 (the term and its true
    derivative both vanish there). First-order gradients only.
    """

    @staticmethod
    def forward(ctx, ce: Tensor, gamma: float, pixel_weight: Tensor | None) -> Tensor:
        q = torch.neg(ce).expm1_().neg_()  # 1 - p
        if gamma < 1:
            q.clamp_(min=torch.finfo(q.dtype).tiny)
        term = q.pow(gamma).mul_(ce)
        if pixel_weight is not None:
            term.mul_(pixel_weight)
        total = term.sum()
        if ctx.needs_input_grad[0]:
            # gamma q^(gamma-1) (p CE + q / gamma), the factor gamma applied in backward
            derivative = torch.rsub(q, 1).mul_(ce).add_(q, alpha=1 / gamma)
            if gamma != 1:
                derivative.mul_(q if gamma == 2 else q.pow_(gamma - 1))
            if pixel_weight is not None:
                derivative.mul_(pixel_weight)
            ctx.save_for_backward(derivative)
            ctx.gamma = gamma
        return total

    @staticmethod
    def backward(ctx, grad: Tensor):
        (derivative,) = ctx.saved_tensors
        return derivative * (grad * ctx.gamma), None, None


def _writable(saved: Tensor) -> Tensor:
    """A saved tensor that the backward may overwrite with the gradient: itself (float32 and
    lower), or a copy for float64, where gradcheck runs the backward repeatedly on a retained graph.

    In float32 a second backward through a retained graph is refused by autograd's version
    check of the saved tensor ("modified by an inplace operation").
    """
    return saved.clone() if saved.dtype == torch.float64 else saved


# ------------------------------------------------------------------------------------- TCE


def _safe_rows(present: Tensor) -> tuple[Tensor, Tensor]:
    """Mask for ``tilted_mean`` that never leaves a row empty, and which rows had an entry.

    An all-false row would give NaN, and NaN poisons the backward pass even when the row is
    masked out afterwards. Such rows are computed over all their (zero) entries instead and
    then dropped by the caller with the returned ``has_any``.
    """
    has_any = present.any(-1, keepdim=True)
    return present | ~has_any, has_any.squeeze(-1)


def _mean_over_rows(row_values: Tensor, has_any: Tensor) -> Tensor:
    kept = has_any.to(row_values.dtype)
    return (row_values * kept).sum() / kept.sum().clamp(min=1)


def image_tilted_cross_entropy(logits: Tensor, target: Tensor, t: float, ignore_index: int = 255) -> Tensor:
    """Image-level TCE, eq. (2): ``(1/t) log((1/M) sum_m exp(t L_m))``.

    ``L_m`` is the mean CE over the valid pixels of image m; images without one are skipped.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.
    """
    t = _check_tilt(t)
    ce = _checked_cross_entropy(logits, target, ignore_index, "none")
    dtype = _reduction_dtype(ce.dtype)
    with torch.autocast(ce.device.type, enabled=False):
        # int32 sum of the bool mask per image: ~5x faster than an int64 bool sum on CPU
        counts = (target != ignore_index).reshape(target.shape[0], -1).sum(1, dtype=torch.int32)
        image_loss = ce.to(dtype).sum((1, 2)) / counts.clamp(min=1).to(dtype)
        present = counts > 0
        mask, has_any = _safe_rows(present)
        tilted = tilted_mean(image_loss, t, dim=0, mask=mask)
        return tilted * has_any.to(dtype)


def _pixel_counts(key: Tensor, bins: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Occurrences of each bin in every row of ``key``, as floats (exact: float64 when a row
    could hold 2**24 pixels or more). A scatter of an expanded 1 is cheaper than ``bincount``.

    Shape:
        key ``(rows, P)`` int64 in ``[0, bins)`` -> ``(rows, bins)``.
    """
    if key.shape[1] >= 2**24:
        dtype = torch.float64
    ones = torch.ones(1, 1, dtype=dtype, device=key.device).expand_as(key)
    return torch.zeros(key.shape[0], bins, dtype=dtype, device=key.device).scatter_add(1, key, ones)


def _class_key(target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, int]:
    """Bin index of every pixel for per-class reductions, and the number of bins.

    Targets hold ``[0, C)`` or the ignore index (checked by then). With an ignore index a
    little above the classes (255) the target itself is the key, over ``ignore + 1`` bins,
    which saves a pass and a temporary; otherwise ignored pixels are moved to an extra bin C.
    Only bins ``[0, C)`` are used afterwards.
    """
    if num_classes <= ignore_index < 4096:
        return target, ignore_index + 1
    return torch.where(target != ignore_index, target, num_classes), num_classes + 1


def _image_class_sums(ce: Tensor, target: Tensor, num_classes: int, ignore_index: int, per_image: bool):
    """CE sums and pixel counts per (image, class) — or per class over the whole batch.

    Two ``scatter_add`` over the rows (images, or one row for the batch) into class bins
    (:func:`_class_key`); bins past C (the ignored pixels) are dropped. Counts are exact floats.

    Shape:
        ce, target ``(N, H, W)`` -> sums, counts ``(N, C)`` (``per_image``) or ``(C,)``.
    """
    rows = target.shape[0] if per_image else 1
    key, bins = _class_key(target, num_classes, ignore_index)
    key = key.reshape(rows, -1)
    dtype = _reduction_dtype(ce.dtype)
    sums = torch.zeros(rows, bins, dtype=dtype, device=ce.device)
    sums = sums.scatter_add(1, key, ce.reshape(rows, -1).to(dtype))
    counts = _pixel_counts(key, bins, dtype)
    sums, counts = sums[:, :num_classes], counts[:, :num_classes]
    return (sums, counts) if per_image else (sums[0], counts[0])


def class_tilted_cross_entropy(logits: Tensor, target: Tensor, t: float, ignore_index: int = 255) -> Tensor:
    """Class-level TCE, eq. (3): per image ``(1/t) log((1/K_m) sum_c exp(t L_{m,c}))``, averaged.

    ``L_{m,c}`` is the mean CE over the pixels of class c in image m, ``K_m`` the number of
    classes present in image m; images without a valid pixel are skipped.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.
    """
    t = _check_tilt(t)
    ce = _checked_cross_entropy(logits, target, ignore_index, "none")
    with torch.autocast(ce.device.type, enabled=False):
        sums, counts = _image_class_sums(ce, target, logits.shape[1], ignore_index, per_image=True)
        class_loss = sums / counts.clamp(min=1)
        mask, has_any = _safe_rows(counts > 0)
        per_image = tilted_mean(class_loss, t, dim=1, mask=mask)
        return _mean_over_rows(per_image, has_any)


def tilted_cross_entropy(
    logits: Tensor, target: Tensor, t: float, level: str = "image", ignore_index: int = 255
) -> Tensor:
    """Tilted CE at ``level`` ``"image"`` (eq. 2) or ``"class"`` (eq. 3).

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.
    """
    if level == "image":
        return image_tilted_cross_entropy(logits, target, t, ignore_index)
    if level == "class":
        return class_tilted_cross_entropy(logits, target, t, ignore_index)
    raise ValueError(f"tilt level must be one of {TILT_LEVELS}, got {level!r}")


# ------------------------------------------------------------------------------ online TCE


def batch_class_means(logits: Tensor, target: Tensor, ignore_index: int = 255) -> tuple[Tensor, Tensor]:
    """``R_c``, the mean CE over the class-c pixels of the whole batch, and the pixel counts.

    Classes absent from the batch get ``R_c = 0`` and count 0.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> ``(C,)`` float, ``(C,)`` int64.
    """
    ce = _checked_cross_entropy(logits, target, ignore_index, "none")
    with torch.autocast(ce.device.type, enabled=False):
        sums, counts = _image_class_sums(ce, target, logits.shape[1], ignore_index, per_image=False)
        return (sums / counts.clamp(min=1)).to(sums.dtype), counts


def online_class_weights(log_ema: Tensor, present: Tensor) -> Tensor:
    """``w = softmax(log L~)`` over the present classes (0 elsewhere); rows sum to 1.

    Shape:
        log_ema ``(C,)``, present ``(C,)`` bool -> ``(C,)``; all zeros when nothing is present.
    """
    masked = torch.where(present, log_ema, torch.full_like(log_ema, -math.inf))
    weights = torch.softmax(masked, dim=0)
    return torch.where(present, weights, torch.zeros_like(weights))


def _all_reduce_sum(tensor: Tensor) -> Tensor:
    """Sum over ranks when torch.distributed is initialised (else unchanged)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor


# --------------------------------------------------------------------------------- modules


class _SegmentationLoss(nn.Module):
    """Holds ``ignore_index``; subclasses implement ``forward(logits, target)``.

    ``channels_last_logits``: True where the loss reads the logits only through the per-pixel
    CE, which takes a channels_last model's NHWC logits in place; the training loop hands every
    other loss NCHW logits (their class-dimension reductions are slower on NHWC on a CPU).
    """

    channels_last_logits = False

    def __init__(self, ignore_index: int = 255):
        super().__init__()
        self.ignore_index = int(ignore_index)


class CrossEntropyLoss(_SegmentationLoss):
    """MCCE, eq. (1), as a module: ``loss(logits, target) -> scalar``.

    Args:
        ignore_index: the label that counts nowhere.
        class_stats: also keep, after each call, the batch's per-class CE sums and pixel counts
            (detached, ``(C,)`` each) in ``.class_stats``, reduced from the same per-pixel CE (no
            further pass over the logits). Stochastic TCE with ``estimate=class`` reads them.
    """

    channels_last_logits = True

    def __init__(self, ignore_index: int = 255, class_stats: bool = False):
        super().__init__(ignore_index)
        self.track_class_stats = bool(class_stats)
        self.class_stats: tuple[Tensor, Tensor] | None = None

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if not self.track_class_stats:
            return mcce(logits, target, self.ignore_index)
        ce = _checked_cross_entropy(logits, target, self.ignore_index, "none")
        with torch.no_grad(), torch.autocast(ce.device.type, enabled=False):
            sums, counts = _image_class_sums(ce.detach(), target, logits.shape[1], self.ignore_index, per_image=False)
            self.class_stats = (sums, counts)
            valid = counts.sum().clamp(min=1)
        return ce.sum() / valid.to(ce.dtype)

    def extra_repr(self) -> str:
        return "class_stats=True" if self.track_class_stats else ""


class WeightedCrossEntropyLoss(_SegmentationLoss):
    """Class-weighted CE with fixed weights (e.g. :func:`inverse_frequency_weights`)."""

    channels_last_logits = True

    weight: Tensor  # buffers, declared for type checkers

    def __init__(self, weight: Sequence[float] | Tensor, ignore_index: int = 255):
        super().__init__(ignore_index)
        weight = torch.as_tensor(weight, dtype=torch.float32)
        if weight.ndim != 1 or not bool(torch.isfinite(weight).all()) or bool((weight < 0).any()):
            raise ValueError(f"weight must be a 1-D vector of finite non-negative numbers, got {weight.tolist()}")
        self.register_buffer("weight", weight)

    @classmethod
    def from_class_pixel_counts(cls, class_pixel_counts, ignore_index: int = 255) -> WeightedCrossEntropyLoss:
        """Inverse-frequency weights, mean 1 over the classes seen in training."""
        return cls(inverse_frequency_weights(class_pixel_counts), ignore_index)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return weighted_cross_entropy(logits, target, self.weight, self.ignore_index)


class FocalLoss(_SegmentationLoss):
    """Softmax focal loss with focusing ``gamma`` and optional per-class ``alpha``.

    Args:
        gamma: ``>= 0`` (default 2, the paper's).
        alpha: None (all ones) or a ``(C,)`` vector used as given (see :func:`focal_alpha`).
    """

    channels_last_logits = True

    alpha: Tensor | None

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | Tensor | None = None, ignore_index: int = 255):
        super().__init__(ignore_index)
        self.gamma = _check_focal_gamma(gamma)
        if alpha is not None:
            alpha = torch.as_tensor(alpha, dtype=torch.float32)
            if alpha.ndim != 1 or not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()):
                raise ValueError(f"alpha must be a 1-D vector of finite non-negative numbers, got {alpha.tolist()}")
        self.register_buffer("alpha", alpha)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.ignore_index)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={'None' if self.alpha is None else 'per-class'}"


class TiltedCrossEntropy(_SegmentationLoss):
    """Tilted CE (eq. 2 at ``level="image"``, eq. 3 at ``level="class"``) with tilt ``t``.

    Any finite ``t``: ``t > 0`` emphasises the worst images/classes, ``t < 0`` the best,
    ``t = 0`` is the plain mean (MCCE over images, or the class-balanced mean per image).
    """

    channels_last_logits = True

    def __init__(self, t: float = 1.0, level: str = "image", ignore_index: int = 255):
        super().__init__(ignore_index)
        if level not in TILT_LEVELS:
            raise ValueError(f"tilt level must be one of {TILT_LEVELS}, got {level!r}")
        self.t = _check_tilt(t)
        self.level = level

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return tilted_cross_entropy(logits, target, self.t, self.level, self.ignore_index)

    def extra_repr(self) -> str:
        return f"t={self.t}, level={self.level!r}"


class OnlineTiltedCrossEntropy(_SegmentationLoss):
    """Class-level tilt with an EMA over batches (``tce-online``, docs/definitions.md).

    The loss is ``sum_c w_c R_c`` over the classes present in the batch, ``R_c`` the mean CE of
    the batch's class-c pixels and ``w = softmax`` (over those classes) of ``log L~_c``, a
    log-space EMA of ``exp(t R_c)`` — Algorithm 1's line 7 applied per class, so the weights are
    ``L~_c / sum_l L~_l`` as in the sampler. The weights are detached: the gradient is the
    weighted sum of per-class gradients, as TERM's stochastic solver.

    Resolutions:
        * a class's estimate starts at its first observation ``t R_c`` (no zero/one init);
        * only classes present in a batch are updated; the update uses the current batch, so
          its weights already include it;
        * in ``train()`` mode the state updates; in ``eval()`` it is only read;
        * under torch.distributed the (detached) class sums and counts are all-reduced before
          the update, so every rank keeps the same state; the loss uses the local batch;
        * the state (``log_ema``, ``seen``) is in buffers and so in ``state_dict``.

    Args:
        num_classes: K.
        t: the tilt, any finite number (0 gives class-balanced CE over the present classes).
        gamma: EMA rate in (0, 1]; default 0.1 (about ten batches of memory).
    """

    channels_last_logits = True

    log_ema: Tensor
    seen: Tensor

    def __init__(self, num_classes: int, t: float = 1.0, gamma: float = 0.1, ignore_index: int = 255):
        super().__init__(ignore_index)
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.t = _check_tilt(t)
        self.gamma = _check_ema_rate(gamma)
        self.register_buffer("log_ema", torch.zeros(self.num_classes, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(self.num_classes, dtype=torch.bool))

    @property
    def weights(self) -> Tensor:
        """Current class weights over the classes seen so far (a ``(C,)`` float64 copy)."""
        return online_class_weights(self.log_ema, self.seen)

    @torch.no_grad()
    def update(self, class_sums: Tensor, class_counts: Tensor) -> None:
        """Fold one batch's per-class CE sums and pixel counts into the EMA."""
        both = _all_reduce_sum(torch.stack([class_sums.to(torch.float64), class_counts.to(torch.float64)]))
        present = both[1] > 0
        log_value = self.t * both[0] / both[1].clamp(min=1)
        updated = log_ema_update(self.log_ema, log_value, self.gamma)
        fresh = present & ~self.seen
        self.log_ema.copy_(torch.where(fresh, log_value, torch.where(present, updated, self.log_ema)))
        self.seen |= present

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.ndim == 4 and logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes, the loss was built for {self.num_classes}")
        class_loss, counts = batch_class_means(logits, target, self.ignore_index)
        if self.training:
            self.update(class_loss.detach() * counts, counts)
        # In eval mode a class never seen in training is weighted by its current tilted loss.
        log_ema = torch.where(self.seen, self.log_ema, self.t * class_loss.detach().to(self.log_ema.dtype))
        weights = online_class_weights(log_ema, counts > 0).to(class_loss.dtype)
        return (weights * class_loss).sum()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, t={self.t}, gamma={self.gamma}"
