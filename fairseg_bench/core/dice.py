"""Soft Dice and Dice + cross-entropy over the classes present among the valid pixels.

``D_c = 2 sum_i p_{i,c} g_{i,c} / (sum_i p_{i,c} + sum_i g_{i,c})`` over the valid pixels of the
batch; the Dice loss is ``1 - mean_c D_c`` over the classes present in the batch's valid target
pixels, with no smoothing term (absent classes are left out instead, docs/definitions.md).
Dice-CE is ``MCCE + weight * Dice``.

Both are one fused ``autograd.Function`` (:class:`_DiceCrossEntropy`): the forward takes one
softmax (the CE term is ``-log p_{i,y_i}`` of it), reads the per-class sums ``sum_i p_{i,c}``
over the valid pixels with one matrix product with the mask and ``sum_i p_{i,y_i}`` with a
``scatter_add`` of the target probabilities; the backward writes the whole gradient into the
saved probabilities, in place:

    dL/dz_{i,k} = p_{i,k} (beta_k + w_ce / n - r_i) + g_{i,k} (a_k p_{i,k} - w_ce / n)   (valid i),

with ``a_c``, ``beta_c`` per-class constants and ``r_i = a_{y_i} p_{i,y_i} + sum_c beta_c p_{i,c}``
(one matrix product). Left to autograd the same loss costs a softmax, a masked sum and their
backward on top of ``F.cross_entropy`` (about twice its time).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from fairseg_bench.core.losses import (
    _check_shapes,
    _class_key,
    _full_precision,
    _SegmentationLoss,
    _writable,
    check_target_range,
)

__all__ = ["dice_loss", "dice_cross_entropy", "DiceLoss", "DiceCrossEntropyLoss"]


def _check_weight(weight: float) -> float:
    value = float(weight)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"Dice weight must be a finite number >= 0, got {weight!r}")
    return value


def _log_target_probability(logits: Tensor, p_target: Tensor, safe: Tensor) -> Tensor:
    """``log p_{i,y_i}`` from the softmax, exact also where ``p_{i,y_i}`` underflows.

    ``log`` of the probability is as accurate as a log-softmax while ``p`` is a normal number;
    the (rare) pixels below 1e-30 (1e-300 in float64) are recomputed as
    ``z_y - logsumexp(z)`` from their logits.

    Shape:
        logits ``(N, C, H, W)``, p_target ``(N, H, W)``, safe ``(N, 1, H, W)`` -> ``(N, H, W)``.
    """
    log_p = p_target.log()
    tiny = p_target < (1e-300 if p_target.dtype == torch.float64 else 1e-30)
    if bool(tiny.any()):
        columns = logits.detach().movedim(1, -1)[tiny]  # (k, C)
        at_target = columns.gather(1, safe.squeeze(1)[tiny].unsqueeze(1)).squeeze(1)
        log_p[tiny] = at_target - torch.logsumexp(columns, 1)
    return log_p


class _DiceCrossEntropy(torch.autograd.Function):
    """``ce_weight * MCCE + dice_weight * (1 - mean_c D_c)``, forward and backward written out.

    The probabilities are the only ``(N, C, H, W)`` tensor it allocates; the backward turns them
    into the gradient in place (so it runs once: no ``retain_graph`` in float32, no double
    backward). Fresh memory is what costs on CPU (a page fault per 4 KiB): a log-softmax into a
    new tensor takes 3-4x the time of the same one in place.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, ignore_index: int, dice_weight: float, ce_weight: float):
        n, c = logits.shape[:2]
        valid = target != ignore_index
        safe = torch.where(valid, target, 0).unsqueeze(1)  # (N, 1, H, W)
        probs = torch.softmax(logits, 1)
        p_target = probs.gather(1, safe).squeeze(1)  # (N, H, W)
        n_valid = torch.count_nonzero(valid).clamp(min=1).to(probs.dtype)
        ce = probs.new_zeros(())
        if ce_weight:
            log_p = _log_target_probability(logits, p_target, safe)
            ce = -torch.where(valid, log_p, torch.zeros_like(log_p)).sum() / n_valid
        # Per-class sums over the valid pixels: a product with the mask, one read of the probabilities.
        mask = valid.to(probs.dtype)
        # (mask^T p, not p mask: the same product, 5x faster as a CPU gemv)
        prob_sum = torch.matmul(mask.reshape(n, 1, -1), probs.reshape(n, c, -1).transpose(1, 2))
        prob_sum = prob_sum.sum(0).reshape(c).double()
        key, bins = _class_key(target, c, ignore_index)
        key = key.reshape(-1)
        zeros = torch.zeros(bins, dtype=torch.float64, device=probs.device)
        inter = zeros.scatter_add(0, key, p_target.reshape(-1).to(torch.float64))[:c]
        count = zeros.scatter_add(0, key, torch.ones(1, dtype=torch.float64, device=probs.device).expand_as(key))[:c]
        present = count > 0
        num_present = present.sum().clamp(min=1).double()
        denom = torch.where(present, prob_sum + count, torch.ones_like(count))
        dice_c = torch.where(present, 2 * inter / denom, torch.zeros_like(inter))
        dice = torch.where(present.any(), 1 - dice_c.sum() / num_present, torch.zeros_like(num_present))
        loss = ce_weight * ce + dice_weight * dice.to(ce.dtype)
        if ctx.needs_input_grad[0]:
            # dL/dp_{i,c} = a_c g_{i,c} + beta_c (dice part), for present classes
            scale = dice_weight * 2 / num_present
            a = torch.where(present, -scale / denom, torch.zeros_like(denom)).to(probs.dtype)
            beta = torch.where(present, scale * inter / denom**2, torch.zeros_like(denom)).to(probs.dtype)
            ctx.save_for_backward(probs, safe, mask, p_target, a, beta, n_valid)
            ctx.ce_weight = ce_weight
        return loss

    @staticmethod
    def backward(ctx, grad: Tensor):
        probs, safe, mask, p_target, a, beta, n_valid = ctx.saved_tensors
        probs = _writable(probs)
        c = probs.shape[1]
        ce_scale = ctx.ce_weight / n_valid
        a_target = a.index_select(0, safe.reshape(-1)).view_as(p_target)
        # r_i = a_{y_i} p_{i,y_i} + sum_c beta_c p_{i,c}, then -m_i r_i (m the valid mask, times grad)
        r = torch.matmul(beta.reshape(1, 1, c), probs.reshape(probs.shape[0], c, -1)).view_as(p_target)
        mask = mask * grad
        r = r.addcmul_(a_target, p_target).mul_(mask).neg_()
        coefficient = beta + ce_scale
        # dL/dz_{i,k} = m_i p_{i,k} (beta_k + w_ce / n - r_i) + m_i g_{i,k} (a_k p_{i,k} - w_ce / n), in
        # place, one channel at a time (a broadcast over all channels would allocate a full-size tensor)
        factor = torch.empty_like(r)
        for k in range(c):
            probs[:, k].mul_(torch.addcmul(r, mask, coefficient[k], out=factor))
        at_target = (a_target * p_target - ce_scale).mul_(mask)
        probs.scatter_add_(1, safe, at_target.unsqueeze(1))
        return probs, None, None, None, None


def dice_cross_entropy(logits: Tensor, target: Tensor, weight: float = 1.0, ignore_index: int = 255,
                       ce_weight: float = 1.0) -> Tensor:
    """Dice-CE: ``MCCE + weight * Dice`` (``ce_weight`` scales the MCCE term; 0 gives Dice alone).

    Args:
        weight: ``>= 0``, the weight of the Dice term; 0 gives MCCE.
        ce_weight: ``>= 0``, the weight of the MCCE term.

    Returns:
        A scalar; a batch without a valid pixel gives 0 with a zero gradient.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Milletari, Navab, Ahmadi, "V-Net", 3DV 2016 (soft Dice); Isensee et al., "nnU-Net",
        Nature Methods 2021 (Dice + CE).
    """
    weight, ce_weight = _check_weight(weight), _check_weight(ce_weight)
    _check_shapes(logits, target)
    check_target_range(target, logits.shape[1], ignore_index)
    logits = _full_precision(logits)
    with torch.autocast(logits.device.type, enabled=False):
        return _DiceCrossEntropy.apply(logits.contiguous(), target, ignore_index, weight, ce_weight)


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Soft Dice loss ``1 - mean_c D_c`` over the classes present among the valid pixels.

    Returns:
        A scalar in ``[0, 1]``; 0 (with a zero gradient) when no pixel is valid.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Milletari, Navab, Ahmadi, "V-Net: fully convolutional neural networks for volumetric
        medical image segmentation", 3DV 2016.
    """
    return dice_cross_entropy(logits, target, 1.0, ignore_index, ce_weight=0.0)


class DiceLoss(_SegmentationLoss):
    """Soft Dice (``dice``) as a module: ``loss(logits, target) -> scalar``.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Milletari et al., 3DV 2016 (see :func:`dice_loss`).
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_loss(logits, target, self.ignore_index)


class DiceCrossEntropyLoss(_SegmentationLoss):
    """Dice-CE (``dice-ce``): ``MCCE + weight * Dice``.

    Args:
        weight: ``>= 0`` (default 1), the weight of the Dice term.
        ignore_index: the label that counts nowhere.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Isensee et al., Nature Methods 2021 (see :func:`dice_cross_entropy`).
    """

    def __init__(self, weight: float = 1.0, ignore_index: int = 255):
        super().__init__(ignore_index)
        self.weight = _check_weight(weight)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return dice_cross_entropy(logits, target, self.weight, self.ignore_index)

    def extra_repr(self) -> str:
        return f"weight={self.weight}"
