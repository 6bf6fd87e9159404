"""Online hard example mining CE, as HRNet's and mmsegmentation's ``OhemCrossEntropy``.

With ``q_i = p_{i,y_i}`` (no gradient) and ``s`` the valid ``q`` sorted ascending, the threshold
is ``thr = max(s[min(min_kept, n_valid - 1)], thresh)`` and the loss the mean CE over the valid
pixels with ``q_i < thr``. Not mmsegmentation's ``OHEMPixelSampler``, which divides by all pixels.

No sort: ``q_i = exp(-CE_i)`` comes from the per-pixel CE, and when more than ``min_kept`` valid
pixels lie below ``thresh`` then ``s[min_kept] < thresh`` and ``thr = thresh`` without knowing
``s[min_kept]``; otherwise one ``kthvalue`` (a selection) finds it.
"""
from __future__ import annotations

import torch
from torch import Tensor

from fairseg_bench.core.losses import _checked_cross_entropy, _SegmentationLoss

__all__ = ["ohem_cross_entropy", "ohem_threshold", "OhemCrossEntropyLoss"]


def _check_thresh(thresh: float) -> float:
    value = float(thresh)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"OHEM thresh must be in [0, 1], got {thresh!r}")
    return value


def _check_min_kept(min_kept: int) -> int:
    if isinstance(min_kept, bool) or int(min_kept) != min_kept or min_kept < 0:
        raise ValueError(f"OHEM min_kept must be an integer >= 0, got {min_kept!r}")
    return int(min_kept)


def ohem_threshold(q: Tensor, thresh: float, min_kept: int, n_valid: int | None = None) -> Tensor:
    """``max(s[min(min_kept, n - 1)], thresh)`` for ``s`` the first ``n`` of ``q`` sorted ascending.

    Args:
        q: the target probabilities; entries past the ``n_valid`` smallest (ignored pixels) must
            be ``>= 1``.
        n_valid: the number of valid entries ``n >= 1`` (default: all of ``q``).

    Shape:
        q ``(P,)`` -> scalar (same dtype as ``q``).
    """
    n = q.numel() if n_valid is None else n_valid
    k = min(min_kept, n - 1)
    if int(torch.count_nonzero(q < thresh)) > k:  # s[k] < thresh
        return torch.tensor(thresh, dtype=q.dtype, device=q.device)
    kth = torch.kthvalue(q, k + 1).values  # s[k]
    return kth.clamp(min=thresh)


def ohem_cross_entropy(logits: Tensor, target: Tensor, thresh: float = 0.7, min_kept: int = 100000,
                       ignore_index: int = 255) -> Tensor:
    """OHEM CE: the mean CE over the valid pixels whose target probability is below the threshold.

    Args:
        thresh: in ``[0, 1]``; pixels predicted with ``p_y >= thresh`` are dropped unless
            needed to keep ``min_kept``. ``thresh = 1, min_kept = 0`` keeps every pixel with
            ``p_y < 1`` (MCCE).
        min_kept: ``>= 0``, per batch: at least the ``min_kept`` least confident valid pixels are
            kept (all of them when fewer are valid).

    Returns:
        A scalar; 0 with a zero gradient when no pixel is kept.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        Shrivastava, Gupta, Girshick, "Training region-based object detectors with online hard
        example mining", CVPR 2016; the segmentation rule of HRNet (Wang et al., TPAMI 2020) and
        mmsegmentation's ``OhemCrossEntropy``.
    """
    thresh, min_kept = _check_thresh(thresh), _check_min_kept(min_kept)
    ce = _checked_cross_entropy(logits, target, ignore_index, "none")
    with torch.autocast(ce.device.type, enabled=False), torch.no_grad():
        valid = target != ignore_index
        n_valid = int(torch.count_nonzero(valid))
        # Ignored pixels get q = 2: above every threshold and sorted after every valid pixel, so
        # the k-th smallest of all q is the k-th smallest valid one (no compaction needed).
        q = torch.where(valid, torch.exp(-ce.detach()), 2.0).reshape(-1)
        keep = (q < ohem_threshold(q, thresh, min_kept, n_valid)).view_as(valid) if n_valid else valid
        kept = torch.count_nonzero(keep).clamp(min=1)
    return torch.where(keep, ce, torch.zeros_like(ce)).sum() / kept


class OhemCrossEntropyLoss(_SegmentationLoss):
    """OHEM CE (``ohem``) as a module: ``loss(logits, target) -> scalar``.

    Args:
        thresh: in ``[0, 1]`` (default 0.7).
        min_kept: ``>= 0`` pixels per batch (default 100000).
        ignore_index: the label that counts nowhere.

    Shape:
        logits ``(N, C, H, W)``, target ``(N, H, W)`` -> scalar.

    Reference:
        HRNet's / mmsegmentation's ``OhemCrossEntropy`` (see :func:`ohem_cross_entropy`).
    """

    def __init__(self, thresh: float = 0.7, min_kept: int = 100000, ignore_index: int = 255):
        super().__init__(ignore_index)
        self.thresh = _check_thresh(thresh)
        self.min_kept = _check_min_kept(min_kept)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return ohem_cross_entropy(logits, target, self.thresh, self.min_kept, self.ignore_index)

    def extra_repr(self) -> str:
        return f"thresh={self.thresh}, min_kept={self.min_kept}"

