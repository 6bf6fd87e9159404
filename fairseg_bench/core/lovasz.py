"""Lovász-softmax (Berman, Rannen Triki, Blaschko, CVPR 2018): a surrogate that optimises IoU directly.

For each class c present among the valid target pixels, the errors ``e_i = |g_{i,c} - p_{i,c}|``
are sorted in decreasing order and dotted with the gradient of the Lovász extension of the
Jaccard loss; the loss is the mean over the present classes (docs/definitions.md).

The Lovász gradient is computed in closed form from the running counts of foreground (``a_j``)
and background (``b_j``) pixels in the sorted order instead of as differences of ``J_j``: for a
foreground pixel at sorted position j it is ``1 / (G + b_j)``, for a background pixel
``(G - a_j) / ((G + b_j - 1)(G + b_j))``. Both equal ``J_j - J_{j-1}`` exactly, without the
cancellation of a float32 difference of two numbers close to each other.

All present classes (or all present (image, class) pairs) are sorted in one ``torch.sort`` of
packed integer keys (row, error), rather than one sort per class in a Python loop. Ignored pixels get the
error 0 (they sort last, and an error of 0 contributes nothing and moves no count before it),
which keeps the rows rectangular at the same value.
"""
from __future__ import annotations

import torch
from torch import Tensor

from fairseg_bench.core.losses import _full_precision, _SegmentationLoss, check_inputs

__all__ = ["lovasz_softmax", "lovasz_grad", "LovaszSoftmaxLoss"]


def lovasz_grad(fg_sorted: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """The gradient of the Lovász extension of the Jaccard loss, for each row of sorted labels.

    Args:
        fg_sorted: bool ``(R, P)``, the foreground labels in decreasing order of error; every
            row holds at least one foreground pixel.
        dtype: of the result (float64 is used anyway when a row could hold 2**24 pixels, so
            that the running counts stay exact).

    Returns:
        ``(R, P)`` ``J_j - J_{j-1}`` with ``J_j = 1 - (G - a_j) / (G + b_j)``, ``J_{-1} = 0``.

    Shape:
        ``(R, P)`` -> ``(R, P)``.
    """
    if fg_sorted.shape[1] >= 2**24:
        dtype = torch.float64
    a = fg_sorted.cumsum(1, dtype=dtype)  # foreground up to and including j
    total = a[:, -1:]
    position = torch.arange(1, fg_sorted.shape[1] + 1, dtype=dtype, device=fg_sorted.device)
    union = (position - a).add_(total)  # G + b_j
    background = (total - a).div_((union - 1).clamp_(min=1).mul_(union))
    return torch.where(fg_sorted, union.reciprocal_(), background)


def _descending_order(errors: Tensor) -> Tensor:
    """Flat indices that sort every row of ``errors`` (values in ``[0, 1]``) in decreasing order.

    One 1-D sort of int64 keys ``row * 2**32 + (2**31 - 1 - bits(e))`` (the bits of a
    non-negative float32 order as integers do): rows stay apart, each in decreasing order of error, and an integer
    sort is a radix sort on CPU (about 2x a batched float sort) and on CUDA.

    Shape:
        ``(R, P)`` -> ``(R * P,)`` int64 into ``errors.reshape(-1)``, row after row.
    """
    rows, width = errors.shape
    if errors.dtype == torch.float64:  # (checks and references) a float sort, no rounding of the keys
        offsets = torch.arange(0, rows * width, width, device=errors.device).view(rows, 1)
        return (torch.sort(errors, dim=1, descending=True).indices + offsets).reshape(-1)
    bits = errors.float().view(torch.int32).to(torch.int64)
    keys = torch.arange(rows, device=errors.device).mul_(2**32).view(rows, 1) + (2**31 - 1 - bits)
    return torch.sort(keys.reshape(-1)).indices


def _class_rows(probs: Tensor, target: Tensor, valid: Tensor, per_image: bool):
    """The probability rows to sort, their target rows and class ids.

    Pooled: one row per class present in the batch, over all ``N*H*W`` pixels. Per image: one
    row per (image, class) pair present, over that image's ``H*W`` pixels.

    Shape:
        probs ``(N, C, H, W)`` -> rows ``(R, P)``, their targets ``(R, P)`` (the ignored pixels
        hold C; pooled, one target row expanded), classes ``(R,)``, row image ``(R,)`` (all 0
        when pooled).
    """
    n, c = probs.shape[:2]
    rows_of = n if per_image else 1
    flat_target = torch.where(valid, target, c).reshape(rows_of, -1)
    counts = torch.zeros(rows_of, c + 1, dtype=torch.int64, device=target.device)
    counts.scatter_add_(1, flat_target, torch.ones_like(flat_target))
    image, klass = torch.nonzero(counts[:, :c] > 0, as_tuple=True)
    if per_image:
        return probs.reshape(n, c, -1)[image, klass], flat_target[image], klass, image
    rows = probs.transpose(0, 1)[klass].reshape(len(klass), probs[:, 0].numel())
    return rows, flat_target.expand(len(klass), -1), klass, image


def lovasz_softmax(logits: Tensor, target: Tensor, per_image: bool = False, ignore_index: int = 255) -> Tensor:
    """Lovász-softmax loss over the classes present among the valid pixels.

    Args:
        logits: raw scores; the softmax is taken over the class dimension.
        target: class ids, ``ignore_index`` pixels count nowhere.
        per_image: False (default) pools every pixel of the batch per class; True computes the
            loss per image (over the classes present in it) and averages over the images that
            hold a valid pixel.
        ignore_index: the label that counts nowhere.

    Returns:
        A scalar in ``[0, 1]``; 0 (with a zero gradient) when no pixel is valid.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: a tractable surrogate for the
        optimization of the intersection-over-union measure in neural networks", CVPR 2018.
    """
    valid = check_inputs(logits, target, ignore_index)
    logits = _full_precision(logits)
    with torch.autocast(logits.device.type, enabled=False):
        probs = torch.softmax(logits, 1)
        rows, row_target, klass, image = _class_rows(probs, target, valid, per_image)
        if rows.shape[0] == 0:
            return probs.sum() * 0.0
        fg = row_target == klass[:, None]
        errors = (rows - fg.to(rows.dtype)).abs()
        if not bool(valid.all()):
            errors = errors * (row_target != logits.shape[1]).to(rows.dtype)
        order = _descending_order(errors.detach())
        weight = lovasz_grad(fg.reshape(-1)[order].view_as(fg), errors.dtype)
        # sum_j e_(j) w_j = sum_i e_i w_rank(i): the weights go back to the pixels (constants)
        weight = torch.empty_like(weight).reshape(-1).scatter_(0, order, weight.reshape(-1)).view_as(errors)
        row_loss = torch.bmm(errors.unsqueeze(1), weight.unsqueeze(2)).view(-1)
        if not per_image:
            return row_loss.mean()
        num_images = logits.shape[0]
        image_sum = torch.zeros(num_images, dtype=row_loss.dtype, device=row_loss.device).index_add(0, image, row_loss)
        image_classes = torch.bincount(image, minlength=num_images)
        held = image_classes > 0
        return (image_sum[held] / image_classes[held]).mean()


class LovaszSoftmaxLoss(_SegmentationLoss):
    """Lovász-softmax (``lovasz``) as a module: ``loss(logits, target) -> scalar``.

    Args:
        per_image: average per-image losses instead of pooling the batch (default False).
        ignore_index: the label that counts nowhere.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Berman et al., CVPR 2018 (see :func:`lovasz_softmax`).
    """

    def __init__(self, per_image: bool = False, ignore_index: int = 255):
        super().__init__(ignore_index)
        if not isinstance(per_image, bool):
            raise ValueError(f"per_image must be True or False, got {per_image!r}")
        self.per_image = per_image

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return lovasz_softmax(logits, target, self.per_image, self.ignore_index)

    def extra_repr(self) -> str:
        return f"per_image={self.per_image}"
