"""Dataset registry: ``build_dataset(name, *, root=None, split="train", **options)``.

Every dataset gives ``ds[i] -> (image float32 (3, H, W) normalised, target int64 (H, W))`` and has
``name``, ``classes``, ``num_classes``, ``palette`` (uint8 (K, 3)), ``ignore_index`` (255),
``label(i)`` (raw class ids, uint8 (H, W), no transforms) and ``image(i)`` (uint8 RGB (H, W, 3));
the file datasets also give ``image_names()`` (file stems) and ``image_attributes()`` (per-image
attributes read off the names, e.g. CamVid's ``{"sequence": [...]}``).
Modules are imported on first use, so listing datasets stays cheap.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

import numpy as np

from fairseg_bench.errors import UserError


@dataclass(frozen=True)
class DatasetInfo:
    """What the CLI and docs show about a dataset, without building it."""

    name: str
    module: str
    cls: str
    needs_root: bool
    description: str

    def _module(self):
        return import_module(self.module)

    @property
    def classes(self) -> list[str]:
        from fairseg_bench.data.label_sets import CITYSCAPES_CLASSES, DATASET_CLASSES

        # without importing the dataset module (the synthetic one needs torch): the synthetic
        # streets use Cityscapes' 19 classes
        known = {**DATASET_CLASSES, "synthetic": CITYSCAPES_CLASSES}
        if self.name in known:
            return list(known[self.name])
        return list(getattr(self._module(), self.cls).classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def palette(self) -> np.ndarray:
        return getattr(self._module(), self.cls).palette

    @property
    def layout(self) -> str:
        """The expected folder layout (text), or a note for the generated dataset."""
        if not self.needs_root:
            return "generated in memory; no files"
        return getattr(self._module(), "LAYOUT", "")

    def check_root(self, root) -> str | None:
        """The problem with ``root`` as one line, or None if it looks valid (always None when no root is needed)."""
        if not self.needs_root:
            return None
        check: Callable = self._module().check_root
        return check(root)


DATASETS: dict[str, DatasetInfo] = {
    "synthetic": DatasetInfo("synthetic", "fairseg_bench.data.synthetic", "SyntheticStreets", False,
                             "procedural Cityscapes-like street scenes (the default benchmark)"),
    "cityscapes": DatasetInfo("cityscapes", "fairseg_bench.data.cityscapes", "CityscapesSegmentation", True,
                              "Cityscapes fine annotations, 19 trainIds"),
    "ade20k": DatasetInfo("ade20k", "fairseg_bench.data.ade20k", "ADE20KSegmentation", True,
                          "ADE20K SceneParsing (ADEChallengeData2016), 150 classes"),
    "voc": DatasetInfo("voc", "fairseg_bench.data.voc", "VOCSegmentationDataset", True,
                       "PASCAL VOC 2012 segmentation, 21 classes"),
    "camvid": DatasetInfo("camvid", "fairseg_bench.data.camvid", "CamVidSegmentation", True,
                          "CamVid street scenes, SegNet's 11 classes (void ignored)"),
}


def available_datasets() -> list[str]:
    """Registered dataset names."""
    return sorted(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry, or a UserError listing the choices."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(available_datasets())}")
    return DATASETS[name]


def build_dataset(name: str, *, root=None, split: str = "train", **options):
    """Build a dataset by name.

    Options: synthetic takes ``num_images``, ``size`` (H, W), ``seed``, ``transforms``; the real
    datasets take ``transforms`` or ``augment``, ``crop_size``, ``scale_range``, ``hflip``,
    ``color_jitter`` (train), ``resize`` (evaluation) and ``frame_size`` (H, W): every frame
    downscaled once and kept in memory, before any transform.
    """
    info = dataset_info(name)
    cls = getattr(info._module(), info.cls)
    if not info.needs_root:
        if root is not None:
            raise UserError(f"dataset {name!r} is generated and takes no data root (got {root})")
        return cls(split=split, **options)
    return cls(root=root, split=split, **options)


__all__ = ["DATASETS", "DatasetInfo", "available_datasets", "build_dataset", "dataset_info"]
