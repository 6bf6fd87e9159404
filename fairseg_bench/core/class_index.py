"""The class index: per-image pixel counts of every class, the sets ``D_c`` and class frequencies.

Algorithm 1 (line 1) divides the training set into ``D_c``, the images that contain class c;
Focal and inverse-frequency weighted CE need the class pixel frequencies. Both come from one
``(num_images, num_classes)`` count matrix, built once (the data layer scans and caches it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class ClassIndex:
    """Per-image class pixel counts.

    Attributes:
        pixel_counts: int64 array of shape ``(num_images, num_classes)``; entry ``[i, c]`` is
            the number of pixels of class c in training image i (ignored pixels not counted).
    """

    pixel_counts: np.ndarray

    def __post_init__(self) -> None:
        counts = np.asarray(self.pixel_counts)
        if counts.ndim != 2:
            raise ValueError(f"pixel_counts must be 2-D (num_images, num_classes), got shape {counts.shape}")
        if counts.size and counts.min() < 0:
            raise ValueError("pixel_counts must be non-negative")
        object.__setattr__(self, "pixel_counts", counts.astype(np.int64, copy=False))

    @classmethod
    def from_labels(cls, labels: Iterable, num_classes: int, ignore_index: int = 255) -> ClassIndex:
        """Build from label maps (arrays or tensors of class ids, ``ignore_index`` skipped).

        A value outside ``[0, num_classes)`` other than ``ignore_index`` is an error.
        """
        rows = [label_pixel_counts(label, num_classes, ignore_index) for label in labels]
        return cls(np.stack(rows) if rows else np.zeros((0, num_classes), np.int64))

    @property
    def num_images(self) -> int:
        return self.pixel_counts.shape[0]

    @property
    def num_classes(self) -> int:
        return self.pixel_counts.shape[1]

    def class_pixel_counts(self) -> np.ndarray:
        """Total pixels per class over the training set. Shape ``(K,)``."""
        return self.pixel_counts.sum(0)

    def class_image_counts(self, min_pixels: int = 1) -> np.ndarray:
        """Number of images holding at least ``min_pixels`` of each class. Shape ``(K,)`` int64."""
        return (self.pixel_counts >= min_pixels).sum(0)

    def class_frequencies(self) -> np.ndarray:
        """Pixel share of each class among all valid pixels (sums to 1). Shape ``(K,)``."""
        totals = self.class_pixel_counts().astype(np.float64)
        return totals / max(totals.sum(), 1.0)

    def image_share(self, min_pixels: int = 1) -> np.ndarray:
        """Fraction of images holding at least ``min_pixels`` of each class. Shape ``(K,)``."""
        return (self.pixel_counts >= min_pixels).mean(0) if self.num_images else np.zeros(self.num_classes)

    def images_with(self, class_id: int, min_pixels: int = 1) -> np.ndarray:
        """``D_c``: sorted indices of the images holding at least ``min_pixels`` of the class."""
        return np.flatnonzero(self.pixel_counts[:, class_id] >= min_pixels)


def label_pixel_counts(label: ArrayLike, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """Pixel count of each class in one label map. Shape ``(H, W)`` -> ``(K,)`` int64."""
    flat = np.asarray(label).reshape(-1).astype(np.int64, copy=False)
    flat = flat[flat != ignore_index]
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        bad = flat[(flat < 0) | (flat >= num_classes)][0]
        raise ValueError(f"label value {bad} is outside [0, {num_classes}) and is not the ignore index {ignore_index}")
    return np.bincount(flat, minlength=num_classes)
