"""PASCAL VOC 2012 segmentation on torchvision's layout: 21 classes, 255 (object borders) ignored."""
from __future__ import annotations

from pathlib import Path

from fairseg_bench.data.base import FileSegmentationDataset, bitwise_palette, label_lut, require_dirs
from fairseg_bench.data.label_sets import VOC_CLASSES
from fairseg_bench.errors import UserError

VOC_PALETTE = bitwise_palette(len(VOC_CLASSES))
_MAPPING = {**{c: c for c in range(len(VOC_CLASSES))}, 255: 255}
LAYOUT = ("ROOT/VOCdevkit/VOC2012/{JPEGImages/*.jpg, SegmentationClass/*.png, "
          "ImageSets/Segmentation/{train,val}.txt} (torchvision.datasets.VOCSegmentation)")
SPLITS = ("train", "val", "trainval")


def resolve_root(root) -> Path:
    """Accept the folder holding VOCdevkit, VOCdevkit itself, or VOCdevkit/VOC2012."""
    root = require_dirs(root, [], LAYOUT)
    if (root / "VOCdevkit" / "VOC2012").is_dir():
        return root
    if (root / "VOC2012").is_dir():
        return root.parent
    if root.name == "VOC2012" and root.parent.name == "VOCdevkit":
        return root.parent.parent
    raise UserError(f"{root / 'VOCdevkit' / 'VOC2012'} is missing; expected layout: {LAYOUT}")


def check_root(root) -> str | None:
    """A one-line description of what is wrong with ``root``, or None when it looks valid."""
    try:
        base = resolve_root(root) / "VOCdevkit" / "VOC2012"
        require_dirs(base, ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"], LAYOUT)
        for split in ("train", "val"):
            if not (base / "ImageSets" / "Segmentation" / f"{split}.txt").is_file():
                return f"{base / 'ImageSets' / 'Segmentation' / f'{split}.txt'} is missing; expected layout: {LAYOUT}"
    except UserError as exc:
        return str(exc)
    return None


class VOCSegmentationDataset(FileSegmentationDataset):
    """VOC 2012 segmentation; files listed by ``torchvision.datasets.VOCSegmentation``."""

    name = "voc"
    classes = list(VOC_CLASSES)
    palette = VOC_PALETTE
    LUT = label_lut(_MAPPING)

    def __init__(self, root=None, split: str = "train", transforms=None, **options):
        from torchvision.datasets import VOCSegmentation

        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for voc; choose one of {list(SPLITS)}")
        root = resolve_root(root)
        base = root / "VOCdevkit" / "VOC2012"
        require_dirs(base, ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"], LAYOUT)
        split_file = base / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            raise UserError(f"{split_file} is missing; expected layout: {LAYOUT}")
        try:
            listing = VOCSegmentation(str(root), year="2012", image_set=split, download=False)
        except (RuntimeError, OSError) as exc:
            raise UserError(f"cannot read VOC at {root}: {exc}; expected layout: {LAYOUT}") from exc
        for image, mask in zip(listing.images, listing.masks):
            for path in (image, mask):
                if not Path(path).is_file():
                    raise UserError(f"{path} is listed in {split_file.name} but missing; expected layout: {LAYOUT}")
        super().__init__(root, split, list(listing.images), list(listing.masks), transforms, **options)
