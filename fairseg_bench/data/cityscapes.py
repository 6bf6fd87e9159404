"""Cityscapes (fine annotations) on torchvision's layout: labelIds mapped to the 19 trainIds."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fairseg_bench.data.base import FileSegmentationDataset, label_lut, require_dirs
from fairseg_bench.data.label_sets import CITYSCAPES_CLASSES, LABEL_ID_TO_TRAIN_ID
from fairseg_bench.errors import UserError

CITYSCAPES_PALETTE = np.array([
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
    (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
], np.uint8)

_MAPPING = {label_id: LABEL_ID_TO_TRAIN_ID.get(label_id, 255) for label_id in range(34)}

LAYOUT = ("ROOT/leftImg8bit/{train,val}/CITY/*_leftImg8bit.png and "
          "ROOT/gtFine/{train,val}/CITY/*_gtFine_labelIds.png (torchvision.datasets.Cityscapes)")
SPLITS = ("train", "val", "test")


def check_root(root) -> str | None:
    """A one-line description of what is wrong with ``root``, or None when it looks valid."""
    try:
        require_dirs(root, ["leftImg8bit/train", "leftImg8bit/val", "gtFine/train", "gtFine/val"], LAYOUT)
    except UserError as exc:
        return str(exc)
    return None


class CityscapesSegmentation(FileSegmentationDataset):
    """Cityscapes fine annotations, 19 classes; files listed by ``torchvision.datasets.Cityscapes``."""

    name = "cityscapes"
    classes = list(CITYSCAPES_CLASSES)
    palette = CITYSCAPES_PALETTE
    LUT = label_lut(_MAPPING)

    @classmethod
    def name_attributes(cls, name: str) -> dict[str, str]:
        """The city an image was taken in: its name up to the first ``_`` (``aachen_000000_000019``)."""
        return {"city": name.split("_", 1)[0]}

    def __init__(self, root=None, split: str = "train", transforms=None, **options):
        from torchvision.datasets import Cityscapes

        if split not in SPLITS:
            raise UserError(f"unknown split {split!r} for cityscapes; choose one of {list(SPLITS)}")
        root = require_dirs(root, [f"leftImg8bit/{split}", f"gtFine/{split}"], LAYOUT)
        try:
            listing = Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
        except (RuntimeError, OSError) as exc:
            raise UserError(f"cannot read Cityscapes at {root}: {exc}; expected layout: {LAYOUT}") from exc
        pairs = sorted(zip(listing.images, (t[0] for t in listing.targets)))
        for image, label in pairs:
            if not Path(label).is_file():
                raise UserError(f"{label} is missing (label of {Path(image).name}); expected layout: {LAYOUT}")
        super().__init__(root, split, [p[0] for p in pairs], [p[1] for p in pairs], transforms, **options)
