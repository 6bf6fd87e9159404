"""Re-weighted cross-entropy from training-set class statistics: class-balanced and logit-adjusted.

* Class-balanced CE (Cui et al., CVPR 2019): ``sum_i w_{y_i} CE_i / n_valid`` with
  ``w_c ∝ (1 - beta) / (1 - beta^{n_c})``, the inverse "effective number" of samples of class c,
  normalised to mean 1 over the classes with ``n_c > 0`` (others get 0). The denominator is the
  number of valid pixels, as for MCCE and Focal (not ``sum_i w_{y_i}``, which would undo the
  re-weighting between batches). One ``F.cross_entropy(weight=w, reduction="sum")``.
* Logit-adjusted CE (Menon et al., ICLR 2021): ``CE(z + tau log pi)`` with ``pi`` the class pixel
  frequency of the training set; only the training loss changes, predictions use the raw
  logits. Written out as an ``autograd.Function`` (one log-softmax of the shifted logits forward;
  backward, the gradient written into it in place), which costs no more than ``F.cross_entropy``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from fairseg_bench.core.losses import (
    _check_class_vector,
    _check_shapes,
    _checked_cross_entropy,
    _full_precision,
    _SegmentationLoss,
    _valid_count,
    _writable,
    check_target_range,
)

__all__ = [
    "class_balanced_weights",
    "class_balanced_cross_entropy",
    "logit_adjustment",
    "logit_adjusted_cross_entropy",
    "ClassBalancedCrossEntropyLoss",
    "LogitAdjustedCrossEntropyLoss",
]

FREQUENCY_FLOOR = 1e-12
"""``pi_c`` of a class with no training pixel (its ``log pi_c`` must stay finite)."""


def _check_counts(counts, what: str) -> Tensor:
    counts = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
    if counts.numel() == 0 or not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError(f"{what} must be finite and non-negative, got {counts.tolist()}")
    if not bool((counts > 0).any()):
        raise ValueError(f"{what} are all zero")
    return counts


def class_balanced_weights(class_counts, beta: float = 0.999) -> Tensor:
    """Class-balanced weights ``(1 - beta) / (1 - beta^{n_c})``, normalised to mean 1 over ``n_c > 0``.

    ``beta = 0`` gives 1 for every class seen (MCCE); as ``beta -> 1`` the weights tend to
    ``1 / n_c`` (inverse frequency). Classes with ``n_c = 0`` get weight 0.

    Args:
        class_counts: ``n_c``, training images holding class c or its pixel count.
        beta: in ``[0, 1)``.

    Shape:
        ``(K,)`` -> ``(K,)`` float32.

    Reference:
        Cui, Jia, Lin, Song, Belongie, "Class-balanced loss based on effective number of
        samples", CVPR 2019.
    """
    beta = float(beta)
    if not 0.0 <= beta < 1.0:  # also rejects NaN
        raise ValueError(f"class-balanced beta must be in [0, 1), got {beta!r}")
    counts = _check_counts(class_counts, "class counts")
    seen = counts > 0
    # 1 - beta^n = -expm1(n log beta): exact for beta close to 1 and large n; beta = 0 gives 1.
    effective = -torch.expm1(counts * math.log(beta)) if beta > 0 else torch.ones_like(counts)
    weights = torch.where(seen, (1.0 - beta) / torch.where(seen, effective, torch.ones_like(effective)),
                          torch.zeros_like(counts))
    return (weights / weights[seen].mean()).float()


def class_balanced_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor, ignore_index: int = 255) -> Tensor:
    """``sum_i w_{y_i} CE_i / n_valid`` over the valid pixels (0 when none is valid).

    Args:
        weight: ``(C,)`` class weights, e.g. :func:`class_balanced_weights`.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)``, weight ``(C,)`` -> scalar.

    Reference:
        Cui et al., CVPR 2019.
    """
    _check_shapes(logits, target)
    _check_class_vector(weight, logits.shape[1], "weight")
    weight = weight.to(device=logits.device, dtype=_full_precision(logits).dtype)
    total = _checked_cross_entropy(logits, target, ignore_index, "sum", weight)
    return total / _valid_count(target, ignore_index)


def logit_adjustment(class_pixel_counts, tau: float = 1.0) -> Tensor:
    """The additive adjustment ``tau log pi_c``, ``pi`` the class pixel frequency (floor 1e-12).

    Shape:
        ``(K,)`` -> ``(K,)`` float32.

    Reference:
        Menon et al., "Long-tail learning via logit adjustment", ICLR 2021.
    """
    tau = _check_tau(tau)
    counts = _check_counts(class_pixel_counts, "class pixel counts")
    frequency = (counts / counts.sum()).clamp(min=FREQUENCY_FLOOR)
    return (tau * frequency.log()).float()


def _check_tau(tau: float) -> float:
    value = float(tau)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"logit-adjustment tau must be a finite number >= 0, got {tau!r}")
    return value


class _ShiftedCrossEntropy(torch.autograd.Function):
    """``sum_i CE(z_i + b)_i / n_valid``; the gradient ``(softmax(z + b) - g) / n`` is written into the
    saved log-probabilities in place (so the backward runs once: no ``retain_graph``)."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, bias: Tensor, ignore_index: int):
        valid = target != ignore_index
        safe = torch.where(valid, target, 0).unsqueeze(1)
        log_probs = torch.log_softmax(logits + bias.reshape(1, -1, 1, 1), 1)
        n_valid = torch.count_nonzero(valid).clamp(min=1).to(log_probs.dtype)
        at_target = log_probs.gather(1, safe).squeeze(1)
        loss = -torch.where(valid, at_target, torch.zeros_like(at_target)).sum() / n_valid
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(log_probs, safe, valid, n_valid)
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        log_probs, safe, valid, n_valid = ctx.saved_tensors
        log_probs = _writable(log_probs)
        scale = (grad / n_valid) * valid.unsqueeze(1).to(log_probs.dtype)
        grad_logits = log_probs.exp_().mul_(scale)
        grad_logits.scatter_add_(1, safe, scale.neg())
        return grad_logits, None, None, None


def logit_adjusted_cross_entropy(logits: Tensor, target: Tensor, adjustment: Tensor, ignore_index: int = 255) -> Tensor:
    """``CE(z + tau log pi)``, the mean over the valid pixels (0 when none is valid).

    Args:
        adjustment: ``(C,)`` the additive ``tau log pi`` (:func:`logit_adjustment`); a constant.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)``, adjustment ``(C,)`` -> scalar.

    Reference:
        Menon, Jayasumana, Rawat, Jain, Veit, Kumar, "Long-tail learning via logit
        adjustment", ICLR 2021.
    """
    _check_shapes(logits, target)
    _check_class_vector(adjustment, logits.shape[1], "adjustment")
    check_target_range(target, logits.shape[1], ignore_index)
    logits = _full_precision(logits)
    with torch.autocast(logits.device.type, enabled=False):
        bias = adjustment.to(device=logits.device, dtype=logits.dtype)
        return _ShiftedCrossEntropy.apply(logits, target, bias, ignore_index)


def _vector(values, what: str) -> Tensor:
    values = torch.as_tensor(values, dtype=torch.float32)
    if values.ndim != 1 or not bool(torch.isfinite(values).all()):
        raise ValueError(f"{what} must be a 1-D vector of finite numbers, got {values.tolist()}")
    return values


class ClassBalancedCrossEntropyLoss(_SegmentationLoss):
    """Class-balanced CE (``cb``) with fixed weights (see :func:`class_balanced_weights`).

    Args:
        weight: ``(C,)`` non-negative class weights.
        ignore_index: the label that counts nowhere.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Cui et al., CVPR 2019.
    """

    weight: Tensor  # buffer, declared for type checkers

    def __init__(self, weight: Sequence[float] | Tensor, ignore_index: int = 255):
        super().__init__(ignore_index)
        weight = _vector(weight, "weight")
        if bool((weight < 0).any()):
            raise ValueError(f"weight must be non-negative, got {weight.tolist()}")
        self.register_buffer("weight", weight)

    @classmethod
    def from_class_counts(cls, class_counts, beta: float = 0.999, ignore_index: int = 255):
        """Weights from the training images (or pixels) holding each class."""
        return cls(class_balanced_weights(class_counts, beta), ignore_index)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return class_balanced_cross_entropy(logits, target, self.weight, self.ignore_index)


class LogitAdjustedCrossEntropyLoss(_SegmentationLoss):
    """Logit-adjusted CE (``la``): ``CE(z + tau log pi)``; predictions keep the raw logits.

    Args:
        adjustment: ``(C,)`` the additive ``tau log pi`` (see :func:`logit_adjustment`).
        ignore_index: the label that counts nowhere.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Menon et al., ICLR 2021.
    """

    adjustment: Tensor  # buffer, declared for type checkers

    def __init__(self, adjustment: Sequence[float] | Tensor, ignore_index: int = 255):
        super().__init__(ignore_index)
        self.register_buffer("adjustment", _vector(adjustment, "adjustment"))

    @classmethod
    def from_class_pixel_counts(cls, class_pixel_counts, tau: float = 1.0, ignore_index: int = 255):
        """The adjustment from the training set's class pixel counts."""
        return cls(logit_adjustment(class_pixel_counts, tau), ignore_index)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return logit_adjusted_cross_entropy(logits, target, self.adjustment, self.ignore_index)
