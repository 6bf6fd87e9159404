"""ADE20K (SceneParsing, ADEChallengeData2016): 150 classes, label 0 ("other") ignored."""
from __future__ import annotations

from pathlib import Path

from fairseg_bench.data.base import FileSegmentationDataset, bitwise_palette, label_lut, require_dirs
from fairseg_bench.data.label_sets import ADE20K_CLASSES
from fairseg_bench.errors import UserError

# A generated palette (VOC's bitwise colour map, skipping black) rather than a hand-copied table.
ADE20K_PALETTE = bitwise_palette(len(ADE20K_CLASSES) + 1)[1:]

_MAPPING = {0: 255, **{raw: raw - 1 for raw in range(1, len(ADE20K_CLASSES) + 1)}}
LAYOUT = ("ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg and "
          "ROOT/ADEChallengeData2016/annotations/{training,validation}/*.png (ROOT may also be the "
          "ADEChallengeData2016 folder itself)")
SPLIT_FOLDERS = {"train": "training", "val": "validation"}


def resolve_root(root) -> Path:
    """Accept the folder holding ADEChallengeData2016 or that folder itself."""
    root = require_dirs(root, [], LAYOUT)
    return root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root


def check_root(root) -> str | None:
    """A one-line description of what is wrong with ``root``, or None when it looks valid."""
    try:
        base = resolve_root(root)
        require_dirs(base, [f"{kind}/{folder}" for kind in ("images", "annotations")
                            for folder in SPLIT_FOLDERS.values()], LAYOUT)
    except UserError as exc:
        return str(exc)
    return None


class ADE20KSegmentation(FileSegmentationDataset):
    """ADE20K SceneParsing: images/*.jpg with annotations/*.png of the same stem."""

    name = "ade20k"
    classes = list(ADE20K_CLASSES)
    palette = ADE20K_PALETTE
    LUT = label_lut(_MAPPING)

    def __init__(self, root=None, split: str = "train", transforms=None, **options):
        if split not in SPLIT_FOLDERS:
            raise UserError(f"unknown split {split!r} for ade20k; choose one of {list(SPLIT_FOLDERS)}")
        folder = SPLIT_FOLDERS[split]
        base = resolve_root(root)
        require_dirs(base, [f"images/{folder}", f"annotations/{folder}"], LAYOUT)
        images = sorted((base / "images" / folder).glob("*.jpg"))
        labels = [base / "annotations" / folder / f"{image.stem}.png" for image in images]
        for image, label in zip(images, labels):
            if not label.is_file():
                raise UserError(f"{label} is missing (annotation of {image.name}); expected layout: {LAYOUT}")
        super().__init__(base, split, [str(p) for p in images], [str(p) for p in labels], transforms, **options)
