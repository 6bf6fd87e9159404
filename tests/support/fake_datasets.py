"""Miniature dataset trees in the exact official layouts, with a few tiny PNG/JPEG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _rgb(rng, h, w):
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def write_cityscapes(root: Path, labels_by_split: dict[str, dict[str, list[np.ndarray]]], seed: int = 0) -> Path:
    """``labels_by_split[split][city]`` = list of labelId maps (uint8 (H, W))."""
    rng = np.random.default_rng(seed)
    for split, cities in labels_by_split.items():
        for city, labels in cities.items():
            for k, label in enumerate(labels):
                stem = f"{city}_{k:06d}_000019"
                img_dir = root / "leftImg8bit" / split / city
                gt_dir = root / "gtFine" / split / city
                img_dir.mkdir(parents=True, exist_ok=True)
                gt_dir.mkdir(parents=True, exist_ok=True)
                _rgb(rng, *label.shape).save(img_dir / f"{stem}_leftImg8bit.png")
                Image.fromarray(label.astype(np.uint8)).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    return root


def write_ade20k(root: Path, labels_by_split: dict[str, list[np.ndarray]], seed: int = 0) -> Path:
    """``labels_by_split["training"|"validation"]`` = list of annotation maps (0 = other, 1..150)."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    for folder, labels in labels_by_split.items():
        prefix = "train" if folder == "training" else "val"
        (base / "images" / folder).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / folder).mkdir(parents=True, exist_ok=True)
        for k, label in enumerate(labels):
            stem = f"ADE_{prefix}_{k + 1:08d}"
            _rgb(rng, *label.shape).save(base / "images" / folder / f"{stem}.jpg")
            Image.fromarray(label.astype(np.uint8)).save(base / "annotations" / folder / f"{stem}.png")
    return root


def write_voc(root: Path, labels_by_split: dict[str, list[np.ndarray]], seed: int = 0) -> Path:
    """``labels_by_split["train"|"val"]`` = list of class maps (0..20, 255 borders), saved as palette PNGs."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    palette = np.zeros((256, 3), np.uint8)
    palette[:, 0] = np.arange(256)
    for split, labels in labels_by_split.items():
        names = []
        for k, label in enumerate(labels):
            name = f"2007_{split}_{k:04d}"
            names.append(name)
            _rgb(rng, *label.shape).save(base / "JPEGImages" / f"{name}.jpg")
            png = Image.frombytes("P", label.shape[::-1], label.astype(np.uint8).tobytes())
            png.putpalette(palette.reshape(-1).tolist())
            png.save(base / "SegmentationClass" / f"{name}.png")
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def write_camvid(root: Path, labels_by_split: dict[str, list[tuple[str, np.ndarray]]], seed: int = 0) -> Path:
    """``labels_by_split["train"|"val"|"test"]`` = list of (stem, label map 0..11), listed in that order.

    SegNet's layout: ``SPLIT/`` and ``SPLITannot/`` PNGs, ``SPLIT.txt`` with ``/SegNet/CamVid/`` paths.
    """
    rng = np.random.default_rng(seed)
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
    for split, items in labels_by_split.items():
        lines = []
        for stem, label in items:
            _rgb(rng, *label.shape).save(root / split / f"{stem}.png")
            Image.fromarray(label.astype(np.uint8)).save(root / f"{split}annot" / f"{stem}.png")
            lines.append(f"/SegNet/CamVid/{split}/{stem}.png /SegNet/CamVid/{split}annot/{stem}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root
