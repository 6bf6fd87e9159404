"""Image normalisation with ImageNet statistics, on torch alone.

Apart from the transforms so that the synthetic data set, which needs only this, does not import
torchvision (whose import pulls in ``torch._dynamo``: seconds of every run process's start-up).
"""
from __future__ import annotations

import numpy as np
import torch

# ImageNet statistics: the pretrained backbones expect them, and one convention keeps the
# synthetic and real datasets interchangeable.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 RGB to normalised float32.

    Shape:
        image: ``(3, H, W)`` uint8 -> ``(3, H, W)`` float32.
    """
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (image.float() / 255.0 - mean) / std


def denormalize_image(image: torch.Tensor) -> np.ndarray:
    """The inverse of ``normalize_image``, for figures: ``(3, H, W)`` float -> ``(H, W, 3)`` uint8."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.detach().cpu().float() * std + mean).clamp(0, 1) * 255.0
    return rgb.round().byte().permute(1, 2, 0).numpy()
