"""Paired image/mask transforms on torchvision transforms v2.

The image travels as ``tv_tensors.Image`` and the label as ``tv_tensors.Mask``, so every geometric
transform moves both identically and torchvision resizes masks with nearest-neighbour only (it
coerces any other interpolation to NEAREST for masks); photometric transforms touch the image
alone. Crops pad the image with 0 and the mask with the ignore index.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2._utils import query_size

from fairseg_bench.data.normalize import (  # noqa: F401 - re-exported: the transforms' public names
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize_image,
    normalize_image,
)


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale_range`` (relative to the input's own size).

    Images are resized bilinearly (with antialiasing), masks with nearest-neighbour.
    """

    def __init__(self, scale_range: Sequence[float] = (0.5, 2.0)):
        super().__init__()
        low, high = float(scale_range[0]), float(scale_range[1])
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        self.scale_range = (low, high)

    def make_params(self, flat_inputs):
        height, width = query_size(flat_inputs)
        factor = float(torch.empty(()).uniform_(*self.scale_range))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.Mask):
            return F.resize(inpt, params["size"], interpolation=InterpolationMode.NEAREST)
        return F.resize(inpt, params["size"], interpolation=InterpolationMode.BILINEAR, antialias=True)


class PairedTransform:
    """Applies a v2 pipeline to ``(uint8 RGB (H, W, 3), class ids (H, W))`` numpy arrays.

    Returns ``(image float32 (3, H', W') normalised, target int64 (H', W'))``.
    """

    def __init__(self, geometric: Sequence[v2.Transform] = (), photometric: Sequence[v2.Transform] = ()):
        self.pipeline = v2.Compose([
            *geometric, *photometric,
            v2.ToDtype(torch.float32, scale=True),  # images only; masks pass through
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def __call__(self, image: np.ndarray, label: np.ndarray):
        image_t = tv_tensors.Image(torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1))
        mask_t = tv_tensors.Mask(torch.from_numpy(np.require(label, requirements=["C", "W"])))
        image_t, mask_t = self.pipeline(image_t, mask_t)
        return image_t.as_subclass(torch.Tensor), mask_t.as_subclass(torch.Tensor).long()

    def __repr__(self) -> str:
        return f"PairedTransform({self.pipeline})"


def train_transforms(crop_size: Sequence[int] | None, *, scale_range: Sequence[float] | None = (0.5, 2.0),
                     hflip: bool = True, color_jitter: float = 0.2, ignore_index: int = 255) -> PairedTransform:
    """The training augmentation: random scale, crop with ignore fill, flip, photometric jitter."""
    geometric = []
    if scale_range is not None:
        geometric.append(RandomScale(scale_range))
    if crop_size is not None:
        geometric.append(v2.RandomCrop(tuple(int(s) for s in crop_size), pad_if_needed=True,
                                       fill={tv_tensors.Image: 0, tv_tensors.Mask: ignore_index}))
    if hflip:
        geometric.append(v2.RandomHorizontalFlip(0.5))
    photometric = []
    if color_jitter:
        photometric.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    return PairedTransform(geometric, photometric)


def eval_transforms(resize: Sequence[int] | None = None) -> PairedTransform:
    """Evaluation: normalise only, or resize to a fixed ``(H, W)`` first (masks nearest)."""
    geometric = [v2.Resize(tuple(int(s) for s in resize), antialias=True)] if resize is not None else []
    return PairedTransform(geometric)
