"""Real-dataset loaders on miniature trees in the official layouts; the registry; the datasets CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from support.fake_datasets import write_ade20k, write_cityscapes, write_voc
from torchvision.datasets import Cityscapes

from fairseg_bench.cli.datasets import datasets as datasets_cli
from fairseg_bench.data import DATASETS, available_datasets, build_dataset
from fairseg_bench.data.ade20k import ADE20K_CLASSES
from fairseg_bench.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from fairseg_bench.data.index import build_class_index
from fairseg_bench.data.voc import VOC_CLASSES
from fairseg_bench.errors import UserError


def all_label_ids_map() -> np.ndarray:
    """A 6×6 labelIds map holding every Cityscapes labelId 0..33 (and two extra road pixels)."""
    return np.concatenate([np.arange(34), [7, 7]]).reshape(6, 6).astype(np.uint8)


@pytest.fixture
def cityscapes_root(tmp_path):
    rng = np.random.default_rng(0)
    labels = {
        "train": {"aachen": [all_label_ids_map(), rng.choice([7, 8, 11, 26], (6, 6)).astype(np.uint8)],
                  "bremen": [np.full((6, 6), 24, np.uint8)]},
        "val": {"frankfurt": [all_label_ids_map()]},
    }
    return write_cityscapes(tmp_path / "cityscapes", labels)


# ---------------------------------------------------------------- Cityscapes

def test_cityscapes_label_mapping_matches_torchvision_table_for_every_label_id(cityscapes_root):
    ds = build_dataset("cityscapes", root=cityscapes_root, split="val")
    label = ds.label(0)
    raw = all_label_ids_map()
    checked = 0
    for cls in Cityscapes.classes:
        if cls.id < 0:  # license plate: not stored in labelIds images
            continue
        expected = cls.train_id if 0 <= cls.train_id < 255 and not cls.ignore_in_eval else 255
        got = np.unique(label[raw == cls.id])
        assert got.tolist() == [expected], f"labelId {cls.id} ({cls.name})"
        if expected != 255:
            assert CITYSCAPES_CLASSES[expected] == cls.name
            assert tuple(CITYSCAPES_PALETTE[expected]) == cls.color
        checked += 1
    assert checked == 34
    assert ds.classes == CITYSCAPES_CLASSES and ds.num_classes == 19 and ds.ignore_index == 255


def test_cityscapes_files_sorted_and_items_shaped(cityscapes_root):
    ds = build_dataset("cityscapes", root=cityscapes_root, split="train", augment=False)
    assert len(ds) == 3
    assert [p.split("/")[-2] for p in ds.images] == ["aachen", "aachen", "bremen"]
    image, target = ds[2]
    assert image.dtype == torch.float32 and image.shape == (3, 6, 6)
    assert target.dtype == torch.int64 and target.shape == (6, 6)
    assert (target == 11).all()  # labelId 24 (person) -> trainId 11
    assert ds.image(2).dtype == np.uint8 and ds.image(2).shape == (6, 6, 3)
    assert ds.palette.shape == (19, 3) and ds.palette.dtype == np.uint8


def test_cityscapes_train_crop_pads_target_with_ignore(cityscapes_root):
    torch.manual_seed(0)
    ds = build_dataset("cityscapes", root=cityscapes_root, split="train", crop_size=(8, 10), scale_range=None,
                       hflip=False, color_jitter=0)
    _, target = ds[2]
    assert target.shape == (8, 10)
    assert (target == 255).sum() == 8 * 10 - 6 * 6  # the padding
    assert set(target.unique().tolist()) == {11, 255}


def test_cityscapes_missing_root_names_layout(tmp_path):
    with pytest.raises(UserError, match="leftImg8bit.*gtFine"):
        build_dataset("cityscapes", root=tmp_path / "nowhere", split="train")
    with pytest.raises(UserError, match="expected layout"):
        build_dataset("cityscapes", root=None, split="train")


def test_cityscapes_half_present_root_names_missing_folder(cityscapes_root):
    import shutil

    shutil.rmtree(cityscapes_root / "gtFine" / "train")
    with pytest.raises(UserError, match="gtFine/train is missing; expected layout"):
        build_dataset("cityscapes", root=cityscapes_root, split="train")
    assert "gtFine/train" in DATASETS["cityscapes"].check_root(cityscapes_root)


def test_cityscapes_image_without_label_is_an_error(cityscapes_root):
    next((cityscapes_root / "gtFine" / "train" / "bremen").glob("*.png")).unlink()
    with pytest.raises(UserError, match="bremen_000000_000019_gtFine_labelIds.png is missing"):
        build_dataset("cityscapes", root=cityscapes_root, split="train")


def test_cityscapes_label_value_outside_label_ids_is_an_error(tmp_path):
    root = write_cityscapes(tmp_path / "cs", {"train": {"ulm": [np.full((4, 4), 40, np.uint8)]}})
    ds = build_dataset("cityscapes", root=root, split="train")
    with pytest.raises(UserError, match=r"label values \[40\] are not in the cityscapes label set"):
        ds.label(0)
    with pytest.raises(UserError, match="40"):
        build_class_index(ds)


def test_cityscapes_class_index_counts_by_brute_force(cityscapes_root):
    ds = build_dataset("cityscapes", root=cityscapes_root, split="train")
    index = build_class_index(ds)
    assert index.pixel_counts.shape == (3, 19)
    raw0 = all_label_ids_map()
    train_ids = [cls.train_id for cls in Cityscapes.classes if 0 <= cls.id and 0 <= cls.train_id < 255]
    # image 0 holds every labelId once (road twice more): each trainId once, road 3 times
    expected0 = np.ones(19, np.int64)
    expected0[0] = 3
    assert len(train_ids) == 19 and (index.pixel_counts[0] == expected0).all()
    assert index.pixel_counts[0].sum() == (np.isin(raw0, [c.id for c in Cityscapes.classes
                                                          if 0 <= c.train_id < 255])).sum()
    assert (index.pixel_counts[2] == np.eye(19, dtype=np.int64)[11] * 36).all()


# ---------------------------------------------------------------- ADE20K

@pytest.fixture
def ade_root(tmp_path):
    every = np.arange(151, dtype=np.uint8)
    labels = {"training": [np.concatenate([every, [0, 0, 0, 0, 0]]).reshape(12, 13), np.full((5, 7), 13, np.uint8)],
              "validation": [np.full((4, 4), 1, np.uint8)]}
    return write_ade20k(tmp_path / "ade", labels)


@pytest.mark.parametrize("nested", [False, True])
def test_ade20k_zero_is_ignore_and_others_shift_down(ade_root, nested):
    root = ade_root / "ADEChallengeData2016" if nested else ade_root
    ds = build_dataset("ade20k", root=root, split="train", augment=False)
    assert len(ds) == 2 and ds.num_classes == 150 and len(ADE20K_CLASSES) == 150
    raw = ds.raw_label(0)
    label = ds.label(0)
    assert (label[raw == 0] == 255).all()
    assert (label[raw > 0] == raw[raw > 0] - 1).all()
    assert ADE20K_CLASSES[label[raw == 13][0]] == "person"  # objectInfo150 is 1-based: 13 person, 14 earth
    assert ADE20K_CLASSES[label[raw == 14][0]] == "earth"
    assert (ds[1][1] == 12).all()
    assert build_dataset("ade20k", root=root, split="val").label(0).tolist() == [[0] * 4] * 4
    assert ds.palette.shape == (150, 3) and len({tuple(c) for c in ds.palette}) == 150


def test_ade20k_missing_and_bad_values(ade_root, tmp_path):
    with pytest.raises(UserError, match="ADEChallengeData2016/images"):
        build_dataset("ade20k", root=tmp_path / "empty_dir_that_is_missing", split="train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="images/training is missing; expected layout"):
        build_dataset("ade20k", root=tmp_path / "empty", split="train")
    bad = write_ade20k(tmp_path / "bad", {"training": [np.full((3, 3), 151, np.uint8)]})
    with pytest.raises(UserError, match=r"\[151\] are not in the ade20k label set"):
        build_dataset("ade20k", root=bad, split="train").label(0)
    (ade_root / "ADEChallengeData2016" / "annotations" / "training" / "ADE_train_00000001.png").unlink()
    with pytest.raises(UserError, match="ADE_train_00000001.png is missing"):
        build_dataset("ade20k", root=ade_root, split="train")


# ---------------------------------------------------------------- VOC

@pytest.fixture
def voc_root(tmp_path):
    every = np.concatenate([np.arange(21), [255, 255, 255, 0]]).astype(np.uint8).reshape(5, 5)
    return write_voc(tmp_path / "voc", {"train": [every, np.full((4, 6), 15, np.uint8)],
                                        "val": [np.full((3, 3), 7, np.uint8)]})


def test_voc_palette_indices_are_classes_and_255_is_ignored(voc_root):
    ds = build_dataset("voc", root=voc_root, split="train", augment=False)
    assert len(ds) == 2 and ds.num_classes == 21 and ds.classes[15] == "person"
    label = ds.label(0)
    assert label.reshape(-1).tolist() == list(range(21)) + [255, 255, 255, 0]
    assert (ds[1][1] == 15).all()
    assert tuple(ds.palette[1]) == (128, 0, 0) and tuple(ds.palette[15]) == (192, 128, 128)  # VOC colour map
    index = build_class_index(ds)
    assert index.pixel_counts[0].tolist() == [2] + [1] * 20
    assert len(VOC_CLASSES) == 21


@pytest.mark.parametrize("suffix", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_voc_root_may_point_inside_the_devkit(voc_root, suffix):
    ds = build_dataset("voc", root=voc_root / suffix if suffix else voc_root, split="val")
    assert len(ds) == 1 and (ds.label(0) == 7).all()


def test_voc_missing_split_file_bad_values_and_listed_missing_file(voc_root, tmp_path):
    with pytest.raises(UserError, match="VOCdevkit/VOC2012 is missing; expected layout"):
        build_dataset("voc", root=tmp_path, split="train")
    base = voc_root / "VOCdevkit" / "VOC2012"
    (base / "ImageSets" / "Segmentation" / "val.txt").unlink()
    assert "val.txt is missing" in DATASETS["voc"].check_root(voc_root)
    with pytest.raises(UserError, match="val.txt is missing"):
        build_dataset("voc", root=voc_root, split="val")
    bad = write_voc(tmp_path / "bad", {"train": [np.full((3, 3), 30, np.uint8)]})
    with pytest.raises(UserError, match=r"\[30\] are not in the voc label set"):
        build_dataset("voc", root=bad, split="train").label(0)
    (base / "SegmentationClass" / "2007_train_0001.png").unlink()
    with pytest.raises(UserError, match="2007_train_0001.png is listed in train.txt but missing"):
        build_dataset("voc", root=voc_root, split="train")


def test_rgb_label_png_is_an_error(voc_root):
    path = voc_root / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "2007_train_0000.png"
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(path)
    with pytest.raises(UserError, match="single-channel"):
        build_dataset("voc", root=voc_root, split="train").label(0)


# ---------------------------------------------------------------- registry and CLI

def test_registry_lists_choices_on_unknown_name():
    assert available_datasets() == ["ade20k", "camvid", "cityscapes", "synthetic", "voc"]
    with pytest.raises(UserError, match="choose one of ade20k, camvid, cityscapes, synthetic, voc"):
        build_dataset("kitti")
    with pytest.raises(UserError, match="takes no data root"):
        build_dataset("synthetic", root="/data")
    assert {n: DATASETS[n].num_classes for n in available_datasets()} == {
        "ade20k": 150, "camvid": 11, "cityscapes": 19, "synthetic": 19, "voc": 21}


def test_check_root_valid_trees(cityscapes_root, ade_root, voc_root, tmp_path):
    assert DATASETS["cityscapes"].check_root(cityscapes_root) is None
    assert DATASETS["ade20k"].check_root(ade_root) is None
    assert DATASETS["voc"].check_root(voc_root) is None
    assert DATASETS["synthetic"].check_root(None) is None
    assert "does not exist" in DATASETS["voc"].check_root(tmp_path / "missing")


@pytest.mark.parametrize("option", ["--data-root", "--root"])  # --root: the same option, as in evaluate
def test_cli_lists_datasets_and_root_validity(cityscapes_root, option):
    result = CliRunner().invoke(datasets_cli, [option, str(cityscapes_root)])
    assert result.exit_code == 0, result.output
    assert "cityscapes    19 classes" in result.output and "ade20k       150 classes" in result.output
    lines = result.output.splitlines()
    validity = {lines[i - 2].split()[0]: lines[i] for i, line in enumerate(lines) if "--data-root" in line}
    assert validity["cityscapes"].endswith("valid") and "invalid" in validity["voc"]


def test_cli_index_builds_cache_and_prints_shares(cityscapes_root, tmp_path):
    cache = tmp_path / "cache"
    args = ["index", "--dataset", "cityscapes", "--data-root", str(cityscapes_root), "--cache", str(cache)]
    result = CliRunner().invoke(datasets_cli, args)
    assert result.exit_code == 0, result.output
    assert len(list(cache.glob("class_index-cityscapes-train-*.npz"))) == 1
    rows = {line[:13].strip(): line.split()[-2:] for line in result.output.splitlines()[2:]}
    # person: 1 pixel in image 0, 36 in image 2, of 36 * 3 - 1 - 15 ignored... computed from the index
    ds = build_dataset("cityscapes", root=cityscapes_root, split="train")
    counts = np.stack([np.bincount(ds.label(i)[ds.label(i) != 255], minlength=19) for i in range(3)])
    person_pixel = counts[:, 11].sum() / counts.sum() * 100
    assert float(rows["person"][0]) == pytest.approx(person_pixel, abs=1e-3)
    assert float(rows["person"][1]) == pytest.approx(100 * 2 / 3, abs=0.05)
