"""Prediction folders: which prediction PNG belongs to which ground-truth label, and what its values mean.

A :class:`PairList` holds the matched files and two 256-entry lookup tables, raw PNG value ->
class id, one for the ground truth and one for the predictions. In both, ``-1`` marks a value
outside the label set (an error). In the ground-truth table ``IGNORE_INDEX`` (255) marks a pixel
that counts nowhere; in the prediction table it marks a *void* prediction: a pixel predicted as
no evaluated class (e.g. a Cityscapes labelId such as 0 "unlabeled", or ADE20K's 0 "other"). A
void prediction on a valid pixel is a false negative of the ground-truth class and a false
positive of none, exactly as cityscapesScripts counts it.

Conventions, per dataset (the layouts and label maps are the dataset modules' own):

- ``cityscapes``: ground truth ``ROOT/gtFine/SPLIT/CITY/*_gtFine_labelIds.png``; predictions found
  recursively in the folder as ``<city>_<seq>_<frame>*.png`` (cityscapesScripts' rule), holding
  labelIds, or trainIds (0-18, 255 = void) with ``ids="train"``;
- ``ade20k``: ``<stem>.png`` per validation annotation, values 1-150 (0 = void) as in the
  annotations, or 0-149 (255 = void) with ``reduce_zero_label`` (mmsegmentation's output);
- ``voc``: ``<id>.png`` per id of ``ImageSets/Segmentation/SPLIT.txt``, values 0-20 (255 = void);
- ``camvid``: ``<stem>.png`` per label listed in ``ROOT/SPLIT.txt``, values 0-10 (11 or 255 = void);
- generic: every PNG below a label folder, matched by stem, values ``0..K-1`` with one ignore
  value (void in predictions).

Palette PNGs are read as their indices; grey PNGs as their values.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fairseg_bench.data.base import IGNORE_INDEX, label_lut
from fairseg_bench.errors import UserError

__all__ = ["PairList", "match_predictions", "decode_label_png", "read_class_file", "PREDICTION_DATASETS"]

PREDICTION_DATASETS = ("cityscapes", "ade20k", "voc", "camvid")
_SHOW = 3  # file names shown in an error


@dataclass(frozen=True)
class PairList:
    """Matched (ground truth, prediction) files of one split, and how to read their values."""

    dataset: str
    split: str
    classes: list[str]
    palette: np.ndarray  # (K, 3) uint8
    names: list[str]  # one per pair: the ground truth's image name
    labels: list[Path]
    predictions: list[Path]
    label_lut: np.ndarray  # (256,) int16: raw value -> class, 255 ignore, -1 invalid
    prediction_lut: np.ndarray  # (256,) int16: raw value -> class, 255 void, -1 invalid
    unmatched: list[Path]  # prediction PNGs that belong to no ground-truth image

    def __len__(self) -> int:
        return len(self.labels)


# ----------------------------------------------------------------------------- decoding
def decode_label_png(path: Path, what: str = "label") -> np.ndarray:
    """A single-channel 8-bit PNG as uint8 ``(H, W)``: palette PNGs give their indices.

    RGB colour maps and 16-bit PNGs are refused with a one-line ``UserError`` saying what to do.
    """
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("L", "P"):
                return np.asarray(img)
    except OSError as exc:
        raise UserError(f"{path}: cannot read this {what} PNG ({exc})") from None
    if mode in ("RGB", "RGBA"):
        raise UserError(f"{path}: an {mode} colour image where class indices are expected; save the {what} as a "
                        "palette PNG (mode 'P', index = class id) or a greyscale PNG of class ids")
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        raise UserError(f"{path}: a 16-bit (or 32-bit) PNG (mode {mode}); class ids must be stored as 8-bit "
                        "greyscale or palette PNGs")
    raise UserError(f"{path}: PNG mode {mode} is not a single-channel 8-bit label image")


# ----------------------------------------------------------------------------- helpers
def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png") if p.is_file())


def _by_stem(files: list[Path], folder: Path, what: str) -> dict[str, Path]:
    index: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        index[f.stem].append(f)
    for stem, found in index.items():
        if len(found) > 1:
            shown = ", ".join(str(p.relative_to(folder)) for p in found[:_SHOW])
            raise UserError(f"{folder}: {len(found)} {what} files named {stem}.png ({shown}); keep one")
    return {stem: found[0] for stem, found in index.items()}


def _missing_error(missing: list[str], total: int, folder: Path, expected: str) -> UserError:
    shown = ", ".join(missing[:_SHOW]) + (", ..." if len(missing) > _SHOW else "")
    return UserError(f"{folder}: no prediction for {len(missing)} of {total} ground-truth images "
                     f"({shown}); expected {expected}")


def _pair_by_stem(gt: dict[str, Path], pred_dir: Path, expected: str):
    """Pairs by identical stem; ground truth without prediction is an error, the rest is unmatched."""
    preds = _by_stem(_pngs(pred_dir), pred_dir, "prediction")
    names = sorted(gt)
    missing = [n for n in names if n not in preds]
    if missing:
        raise _missing_error(missing, len(names), pred_dir, expected)
    unmatched = sorted(p for stem, p in preds.items() if stem not in gt)
    return names, [gt[n] for n in names], [preds[n] for n in names], unmatched


def _identity_lut(num_classes: int, ignore: int) -> np.ndarray:
    return label_lut({**{c: c for c in range(num_classes)}, ignore: IGNORE_INDEX})


def _check_folder(folder, what: str) -> Path:
    if folder is None:
        raise UserError(f"the {what} folder is required")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{what} folder {folder} does not exist")
    return folder


# ----------------------------------------------------------------------------- datasets
_CITYSCAPES_KEY = re.compile(r"^(.+?_\d{6}_\d{6})")


def _cityscapes(pred_dir: Path, root, split: str, ids: str, **_) -> PairList:
    from fairseg_bench.data import cityscapes as cs
    from fairseg_bench.data.base import require_dirs

    base = require_dirs(root, [f"gtFine/{split}"], cs.LAYOUT)
    labels = sorted((base / "gtFine" / split).glob("*/*_gtFine_labelIds.png"))
    if not labels:
        raise UserError(f"{base / 'gtFine' / split}: no *_gtFine_labelIds.png files; expected layout: {cs.LAYOUT}")
    gt = {p.name[: -len("_gtFine_labelIds.png")]: p for p in labels}
    preds: dict[str, list[Path]] = defaultdict(list)
    unmatched = []
    for p in _pngs(pred_dir):
        key = _CITYSCAPES_KEY.match(p.name)
        if key and key.group(1) in gt:
            preds[key.group(1)].append(p)
        else:
            unmatched.append(p)
    names = sorted(gt)
    for name in names:
        if len(preds[name]) > 1:
            shown = ", ".join(str(p.relative_to(pred_dir)) for p in preds[name][:_SHOW])
            raise UserError(f"{pred_dir}: {len(preds[name])} predictions match {name} ({shown}); keep one")
    missing = [n for n in names if not preds[n]]
    if missing:
        raise _missing_error(missing, len(names), pred_dir,
                             "one <city>_<seq>_<frame>*.png per image, anywhere below it")
    if ids == "train":
        pred_lut = _identity_lut(len(cs.CITYSCAPES_CLASSES), IGNORE_INDEX)
    else:
        pred_lut = cs.CityscapesSegmentation.LUT  # labelIds; the non-evaluated ones are void
    return PairList("cityscapes", split, list(cs.CITYSCAPES_CLASSES), cs.CITYSCAPES_PALETTE, names,
                    [gt[n] for n in names], [preds[n][0] for n in names], cs.CityscapesSegmentation.LUT,
                    pred_lut, unmatched)


def _ade20k(pred_dir: Path, root, split: str, reduce_zero_label: bool, **_) -> PairList:
    from fairseg_bench.data import ade20k
    from fairseg_bench.data.base import require_dirs

    if split not in ade20k.SPLIT_FOLDERS:
        raise UserError(f"unknown split {split!r} for ade20k; choose one of {list(ade20k.SPLIT_FOLDERS)}")
    folder = f"annotations/{ade20k.SPLIT_FOLDERS[split]}"
    base = require_dirs(ade20k.resolve_root(root), [folder], ade20k.LAYOUT)
    gt = _by_stem(sorted((base / folder).glob("*.png")), base / folder, "annotation")
    if not gt:
        raise UserError(f"{base / folder}: no annotation PNGs; expected layout: {ade20k.LAYOUT}")
    names, labels, preds, unmatched = _pair_by_stem(gt, pred_dir, "<annotation stem>.png per image")
    k = len(ade20k.ADE20K_CLASSES)
    pred_lut = _identity_lut(k, IGNORE_INDEX) if reduce_zero_label else ade20k.ADE20KSegmentation.LUT
    return PairList("ade20k", split, list(ade20k.ADE20K_CLASSES), ade20k.ADE20K_PALETTE, names, labels, preds,
                    ade20k.ADE20KSegmentation.LUT, pred_lut, unmatched)


def _voc(pred_dir: Path, root, split: str, **_) -> PairList:
    from fairseg_bench.data import voc

    if split not in voc.SPLITS:
        raise UserError(f"unknown split {split!r} for voc; choose one of {list(voc.SPLITS)}")
    base = voc.resolve_root(root) / "VOCdevkit" / "VOC2012"
    split_file = base / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_file.is_file():
        raise UserError(f"{split_file} is missing; expected layout: {voc.LAYOUT}")
    gt = {}
    for name in split_file.read_text().split():
        path = base / "SegmentationClass" / f"{name}.png"
        if not path.is_file():
            raise UserError(f"{path} is listed in {split_file.name} but missing; expected layout: {voc.LAYOUT}")
        gt[name] = path
    if not gt:
        raise UserError(f"{split_file} lists no images")
    names, labels, preds, unmatched = _pair_by_stem(gt, pred_dir, "<id>.png per image")
    return PairList("voc", split, list(voc.VOC_CLASSES), voc.VOC_PALETTE, names, labels, preds,
                    voc.VOCSegmentationDataset.LUT, voc.VOCSegmentationDataset.LUT, unmatched)


def _camvid(pred_dir: Path, root, split: str, **_) -> PairList:
    from fairseg_bench.data import camvid

    _, pairs = camvid.split_pairs(root, split)
    gt = {label.stem: label for _, label in pairs}
    names, labels, preds, unmatched = _pair_by_stem(gt, pred_dir, "<stem>.png per label of the split")
    return PairList("camvid", split, list(camvid.CAMVID_CLASSES), camvid.CAMVID_PALETTE, names, labels, preds,
                    camvid.CamVidSegmentation.LUT, camvid.PREDICTION_LUT, unmatched)


def read_class_file(path) -> list[str]:
    """One class name a line (blank lines skipped); at least one, at most 255, no duplicates."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the class list ({exc})") from None
    if not names:
        raise UserError(f"{path}: no class names (expected one a line)")
    if len(names) > 255:
        raise UserError(f"{path}: {len(names)} classes; 8-bit label PNGs hold at most 255 classes and an ignore value")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"{path}: class names repeated: {', '.join(dup[:_SHOW])}")
    return names


def _generic(pred_dir: Path, labels, classes, ignore_index: int, split: str, **_) -> PairList:
    from fairseg_bench.data.base import bitwise_palette

    label_dir = _check_folder(labels, "label")
    names_k = read_class_file(classes)
    if not 0 <= ignore_index <= 255 or ignore_index < len(names_k):
        raise UserError(f"--ignore-index {ignore_index} must lie in [{len(names_k)}, 255] "
                        f"(the {len(names_k)} classes use 0..{len(names_k) - 1})")
    gt = _by_stem(_pngs(label_dir), label_dir, "label")
    if not gt:
        raise UserError(f"{label_dir}: no label PNGs found")
    names, gt_files, preds, unmatched = _pair_by_stem(gt, pred_dir, "<label stem>.png per label")
    lut = _identity_lut(len(names_k), ignore_index)
    return PairList("custom", split, names_k, bitwise_palette(len(names_k)), names, gt_files, preds, lut, lut,
                    unmatched)


def match_predictions(predictions, *, dataset: str | None = None, root=None, split: str = "val",
                      ids: str = "label", reduce_zero_label: bool = False, labels=None, classes=None,
                      ignore_index: int = IGNORE_INDEX) -> PairList:
    """Match a prediction folder to a dataset's ground truth (or to a generic label folder)."""
    pred_dir = _check_folder(predictions, "prediction")
    if not _pngs(pred_dir):
        raise UserError(f"prediction folder {pred_dir} holds no PNG files")
    generic = labels is not None or classes is not None
    if generic:
        if dataset is not None or root is not None:
            raise UserError("give either --dataset/--root or --labels/--classes, not both")
        if labels is None or classes is None:
            raise UserError("a generic label folder needs both --labels GT_DIR and --classes FILE")
        return _generic(pred_dir, labels, classes, ignore_index, split)
    if dataset is None:
        raise UserError(f"give --dataset ({', '.join(PREDICTION_DATASETS)}) with --root, or --labels GT_DIR "
                        "--classes FILE for any other label folder")
    if dataset not in PREDICTION_DATASETS:
        raise UserError(f"--dataset {dataset!r} cannot be read from prediction folders; choose one of "
                        f"{', '.join(PREDICTION_DATASETS)}, or give --labels GT_DIR --classes FILE")
    if ids not in ("label", "train"):
        raise UserError(f"--ids {ids!r}: choose label or train")
    if ids == "train" and dataset != "cityscapes":
        raise UserError("--ids train applies to cityscapes only")
    if reduce_zero_label and dataset != "ade20k":
        raise UserError("--reduce-zero-label applies to ade20k only")
    build = {"cityscapes": _cityscapes, "ade20k": _ade20k, "voc": _voc, "camvid": _camvid}[dataset]
    return build(pred_dir, root, split, ids=ids, reduce_zero_label=reduce_zero_label)
