"""What the real datasets share: file pairs on disk, a label lookup table, paired transforms."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fairseg_bench.errors import UserError

IGNORE_INDEX = 255


def label_lut(mapping: dict[int, int]) -> np.ndarray:
    """A 256-entry lookup table raw value -> class id; values not in ``mapping`` map to -1 (invalid)."""
    lut = np.full(256, -1, np.int16)
    for raw, cls in mapping.items():
        lut[raw] = cls
    return lut


def bitwise_palette(num_colours: int) -> np.ndarray:
    """The PASCAL VOC colour map (bits of the index spread over R, G, B). Shape ``(num_colours, 3)``."""
    palette = np.zeros((num_colours, 3), np.uint8)
    for index in range(num_colours):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


def default_transforms(split: str, *, augment: bool | None = None, crop_size=None, scale_range=(0.5, 2.0),
                       hflip: bool = True, color_jitter: float = 0.2, resize=None, ignore_index: int = IGNORE_INDEX):
    """Training augmentation on the train split (unless ``augment=False``), normalisation otherwise."""
    # torchvision loads here, not at import: prediction folders read labels without it
    from fairseg_bench.data.transforms import eval_transforms, train_transforms

    if augment is None:
        augment = split == "train"
    if augment:
        return train_transforms(crop_size, scale_range=scale_range, hflip=hflip, color_jitter=color_jitter,
                                ignore_index=ignore_index)
    return eval_transforms(resize)


class FileSegmentationDataset:  # a map-style dataset: DataLoader and Subset need only __getitem__/__len__
    """Image/label file pairs; labels mapped to class ids through a 256-entry lookup table.

    Subclasses set ``name``, ``classes``, ``palette`` and ``LUT`` and fill ``images``/``labels``;
    they may read attributes off image names (``name_attributes``). With ``frame_size=(H, W)``
    every frame is decoded once, downscaled (image bilinear with antialiasing, label nearest) and
    kept in memory: ``image``/``label`` and the transforms then see the small frame. With
    ``full_size_labels=True`` as well (evaluation), only the image is downscaled: the model sees the
    small frame, its logits are upsampled to the label (``engine.evaluate``), and the metrics count
    the label file's own pixels, as ``evaluate --predictions`` does.
    """

    name = ""
    classes: list[str] = []
    palette = np.zeros((0, 3), np.uint8)
    ignore_index = IGNORE_INDEX
    LUT = np.full(256, -1, np.int16)

    def __init__(self, root, split: str, images: list[str], labels: list[str], transforms=None, frame_size=None,
                 full_size_labels: bool = False, **options):
        if not images:
            raise UserError(f"{self.name}: no images found for split {split!r} under {root}")
        self.root, self.split = Path(root), split
        self.images, self.labels = list(images), list(labels)
        self.frame_size = self._checked_frame_size(frame_size)
        if not isinstance(full_size_labels, bool):
            raise UserError(f"full_size_labels {full_size_labels!r}: expected true or false")
        self.full_size_labels = full_size_labels and self.frame_size is not None
        self._frames: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # index -> (image, raw label), frame_size only
        self.transforms = transforms if transforms is not None else default_transforms(split, **options)

    @staticmethod
    def _checked_frame_size(frame_size) -> tuple[int, int] | None:
        if frame_size is None:
            return None
        try:  # a string would unpack into its characters
            height, width = (int(v) for v in frame_size) if not isinstance(frame_size, str) else (0, 0)
        except (TypeError, ValueError):
            height = width = 0
        if height < 1 or width < 1:
            raise UserError(f"frame_size {frame_size!r}: expected [height, width], two positive integers")
        return height, width

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.images)

    def image_names(self) -> list[str]:
        """The image file stems, in dataset order."""
        return [Path(path).stem for path in self.images]

    @classmethod
    def name_attributes(cls, name: str) -> dict[str, str]:
        """Attributes read off one image name (e.g. a sequence or a city); none by default."""
        return {}

    def image_attributes(self) -> dict[str, list[str]]:
        """Per-image attributes by name, each a list in dataset order (e.g. ``{"sequence": [...]}``); {} if none."""
        rows = [self.name_attributes(name) for name in self.image_names()]
        return {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}

    def image(self, index: int) -> np.ndarray:
        """Raw RGB, uint8 (H, W, 3); ``frame_size`` when set."""
        if self.frame_size is not None:
            return self._frame(index)[0]
        return self._decode_image(index)

    def raw_label(self, index: int) -> np.ndarray:
        """The label file's values as stored (before mapping), uint8 (H, W); ``frame_size`` when set
        (unless ``full_size_labels``)."""
        if self.frame_size is not None and not self.full_size_labels:
            return self._frame(index)[1]
        return self._decode_label(index)

    def _frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image and raw label at ``frame_size``, decoded on first use and then kept."""
        frame = self._frames.get(index)
        if frame is None:
            image, raw = self._decode_image(index), self._decode_label(index)
            self._check_sizes(index, image, raw)  # before resizing hides a mismatch
            height, width = self.frame_size
            image = np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))  # antialiased
            raw = np.asarray(Image.fromarray(raw).resize((width, height), Image.NEAREST))
            frame = self._frames[index] = (image, raw)
        return frame

    def _decode_image(self, index: int) -> np.ndarray:
        with Image.open(self.images[index]) as img:
            return np.asarray(img.convert("RGB"))

    def _decode_label(self, index: int) -> np.ndarray:
        with Image.open(self.labels[index]) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                raise UserError(f"{self.labels[index]}: expected a single-channel label PNG, got mode {img.mode}")
            raw = np.asarray(img)
        if raw.max(initial=0) > 255:
            raise UserError(
                f"{self.labels[index]}: label value {int(raw.max())} does not fit the {self.name} label set")
        return raw.astype(np.uint8, copy=False)

    def label(self, index: int) -> np.ndarray:
        """Class ids (255 = ignore), uint8 (H, W); a value outside the label set is an error."""
        mapped = self.LUT[self.raw_label(index)]
        if mapped.min(initial=0) < 0:
            bad = sorted({int(v) for v in np.unique(self.raw_label(index)[mapped < 0])})
            raise UserError(f"{self.labels[index]}: label values {bad[:5]} are not in the {self.name} label set")
        return mapped.astype(np.uint8)

    def fingerprint(self) -> dict:
        """File list with sizes and modification times: the class-index cache key."""
        files = []
        for path in self.labels:
            stat = Path(path).stat()
            files.append([str(Path(path).relative_to(self.root)), stat.st_size, stat.st_mtime_ns])
        key = {"root": str(self.root.resolve()), "split": self.split, "files": files}
        if self.frame_size is not None:  # downscaled labels count other pixels
            key["frame_size"] = list(self.frame_size)
        return key

    def _check_sizes(self, index: int, image: np.ndarray, label: np.ndarray) -> None:
        if image.shape[:2] != label.shape:  # else the transforms fail with a message naming no file
            raise UserError(f"{self.images[index]}: image size {image.shape[1]}x{image.shape[0]} differs from its "
                            f"label {Path(self.labels[index]).name} ({label.shape[1]}x{label.shape[0]})")

    def __getitem__(self, index: int):
        image, label = self.image(index), self.label(index)
        if not self.full_size_labels:  # (else the frame is smaller than its label by design)
            self._check_sizes(index, image, label)
        image, target = self.transforms(image, label)
        return image, target


def require_dirs(root, relative_dirs, layout: str) -> Path:
    """The root as a Path, or a one-line UserError naming the first missing folder and the layout."""
    if root is None:
        raise UserError(f"a data root is required (--data-root); expected layout: {layout}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"data root {root} does not exist; expected layout: {layout}")
    for rel in relative_dirs:
        if not (root / rel).is_dir():
            raise UserError(f"{root / rel} is missing; expected layout: {layout}")
    return root
