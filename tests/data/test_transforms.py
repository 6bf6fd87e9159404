"""Paired transforms keep image and mask aligned, never interpolate masks, pad crops with ignore."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fairseg_bench.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize_image,
    eval_transforms,
    normalize_image,
    train_transforms,
)

H, W, BLOCK = 96, 128, 16


def coordinate_pair():
    """Image channels R = x, G = y (linear ramps); mask = a class id derived from (x // 16, y // 16)."""
    yy, xx = np.mgrid[0:H, 0:W]
    image = np.stack([xx, yy * 2, np.zeros_like(xx)], axis=-1).astype(np.uint8)  # G = 2y keeps precision
    mask = ((xx // BLOCK) + 8 * (yy // BLOCK)) % 250
    return image, mask.astype(np.uint8)


def decode_coordinates(image: torch.Tensor):
    rgb = denormalize_image(image).astype(np.float64)
    return rgb[..., 0], rgb[..., 1] / 2


@pytest.mark.parametrize("seed", range(6))
def test_random_scale_crop_flip_keep_image_and_mask_aligned(seed):
    torch.manual_seed(seed)
    transform = train_transforms((64, 80), scale_range=(0.5, 2.0), hflip=True, color_jitter=0)
    image, mask = coordinate_pair()
    out_image, out_mask = transform(image, mask)
    assert out_image.shape == (3, 64, 80) and out_image.dtype == torch.float32
    assert out_mask.shape == (64, 80) and out_mask.dtype == torch.int64
    x, y = decode_coordinates(out_image)
    target = out_mask.numpy()
    valid = target != 255
    # Away from block edges (and from the interpolation's reach), the class under each output pixel
    # must be the class of the source coordinates that the image says this pixel came from.
    interior = valid & (np.abs(((x + 0.5) % BLOCK) - BLOCK / 2) < BLOCK / 2 - 2.5) \
        & (np.abs(((y + 0.5) % BLOCK) - BLOCK / 2) < BLOCK / 2 - 2.5)
    assert interior.sum() > 200
    expected = ((np.floor(x[interior]) // BLOCK) + 8 * (np.floor(y[interior]) // BLOCK)) % 250
    assert (target[interior] == expected).all()


def test_flip_reverses_both():
    torch.manual_seed(0)
    transform = train_transforms(None, scale_range=None, hflip=True, color_jitter=0)
    image, mask = coordinate_pair()
    flips = 0
    for _ in range(8):
        out_image, out_mask = transform(image, mask)
        x, _ = decode_coordinates(out_image)
        flipped = x[0, 0] > x[0, -1]
        flips += flipped
        expected = mask[:, ::-1] if flipped else mask
        assert (out_mask.numpy() == expected).all()
    assert 0 < flips < 8


@pytest.mark.parametrize("scale", [(0.37, 0.37), (1.7, 1.7), (0.5, 2.0)])
def test_masks_only_nearest_interpolated(scale):
    torch.manual_seed(1)
    _, mask = coordinate_pair()
    two_values = np.where(mask % 2 == 0, 3, 9).astype(np.uint8)  # bilinear would create 4..8
    image = np.zeros((H, W, 3), np.uint8)
    out_image, out_mask = train_transforms((50, 50), scale_range=scale, hflip=False, color_jitter=0)(image, two_values)
    assert set(out_mask.unique().tolist()) <= {3, 9, 255}
    _, resized = eval_transforms(resize=(37, 41))(image, two_values)
    assert resized.shape == (37, 41) and set(resized.unique().tolist()) <= {3, 9}


def test_crop_larger_than_image_pads_mask_with_ignore_and_image_with_zero():
    torch.manual_seed(0)
    image = np.full((10, 12, 3), 200, np.uint8)
    mask = np.full((10, 12), 4, np.uint8)
    out_image, out_mask = train_transforms((16, 20), scale_range=None, hflip=False, color_jitter=0)(image, mask)
    assert out_mask.shape == (16, 20)
    assert (out_mask == 255).sum() == 16 * 20 - 10 * 12 and (out_mask == 4).sum() == 10 * 12
    raw = torch.from_numpy(denormalize_image(out_image).astype(np.int64))
    assert (raw[out_mask == 255] == 0).all() and (raw[out_mask == 4] == 200).all()


def test_photometric_jitter_touches_image_only():
    torch.manual_seed(3)
    image, mask = coordinate_pair()
    jittered_image, jittered_mask = train_transforms(None, scale_range=None, hflip=False, color_jitter=0.4)(image, mask)
    plain_image, plain_mask = eval_transforms()(image, mask)
    assert torch.equal(jittered_mask, plain_mask) and torch.equal(plain_mask, torch.from_numpy(mask).long())
    assert not torch.allclose(jittered_image, plain_image)


def test_normalize_matches_imagenet_formula_and_inverts():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = normalize_image(torch.from_numpy(raw).permute(2, 0, 1))
    expected = (raw.astype(np.float64) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert (denormalize_image(out) == raw).all()
    eval_image, _ = eval_transforms()(raw, np.zeros((5, 7), np.uint8))
    np.testing.assert_allclose(eval_image.numpy(), out.numpy(), atol=1e-6)
