"""The class-index builder: exact counts, parallel = serial, cached by a hash, rebuilt on change."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from support.fake_datasets import write_cityscapes

import fairseg_bench.data.index as index_module
from fairseg_bench.data import build_dataset
from fairseg_bench.data.index import build_class_index, cache_key, cache_path
from fairseg_bench.errors import UserError


def brute_force_counts(dataset) -> np.ndarray:
    rows = []
    for i in range(len(dataset)):
        label = dataset.label(i).astype(np.int64)
        rows.append([(label == c).sum() for c in range(dataset.num_classes)])
    return np.array(rows, np.int64)


@pytest.fixture(scope="module")
def small_synthetic():
    return build_dataset("synthetic", split="train", num_images=24, seed=3)


def test_counts_match_brute_force_and_workers_agree(small_synthetic):
    serial = build_class_index(small_synthetic)
    assert serial.pixel_counts.shape == (24, 19)
    assert (serial.pixel_counts == brute_force_counts(small_synthetic)).all()
    parallel = build_class_index(build_dataset("synthetic", split="train", num_images=24, seed=3), workers=2)
    assert (parallel.pixel_counts == serial.pixel_counts).all()
    # ignored hood pixels are counted nowhere
    hood = sum(int((small_synthetic.label(i) == 255).sum()) for i in range(24))
    assert serial.pixel_counts.sum() + hood == 24 * 64 * 128


def test_cache_is_written_then_reused(small_synthetic, tmp_path, monkeypatch):
    first = build_class_index(small_synthetic, cache_dir=tmp_path)
    path = cache_path(small_synthetic, tmp_path)
    assert path.is_file() and path.name.startswith("class_index-synthetic-train-")

    def must_not_recount(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(index_module, "count_pixels", must_not_recount)
    again = build_class_index(small_synthetic, cache_dir=tmp_path)
    assert (again.pixel_counts == first.pixel_counts).all()


def test_key_changes_with_settings(small_synthetic):
    keys = {cache_key(small_synthetic)}
    for options in ({"seed": 4}, {"num_images": 25}, {"size": (64, 96)}):
        settings = {"split": "train", "num_images": 24, "seed": 3, **options}
        keys.add(cache_key(build_dataset("synthetic", **settings)))
    keys.add(cache_key(build_dataset("synthetic", split="val", num_images=24, seed=3)))
    assert len(keys) == 5
    assert cache_key(build_dataset("synthetic", split="train", num_images=24, seed=3)) == cache_key(small_synthetic)


def test_corrupt_cache_is_rebuilt(small_synthetic, tmp_path):
    path = cache_path(small_synthetic, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an npz")
    index = build_class_index(small_synthetic, cache_dir=tmp_path)
    assert (index.pixel_counts == brute_force_counts(small_synthetic)).all()
    assert np.load(path)["pixel_counts"].shape == (24, 19)
    path.write_bytes(path.read_bytes()[:-40])  # truncated: a zip without its end record
    index = build_class_index(small_synthetic, cache_dir=tmp_path)
    assert (index.pixel_counts == brute_force_counts(small_synthetic)).all()


def test_file_dataset_rebuilt_when_a_label_changes(tmp_path):
    labels = [np.full((4, 5), 7, np.uint8), np.full((4, 5), 26, np.uint8)]  # road, car
    root = write_cityscapes(tmp_path / "cs", {"train": {"ulm": labels}})
    cache = tmp_path / "cache"
    before = build_class_index(build_dataset("cityscapes", root=root, split="train"), cache_dir=cache)
    assert before.pixel_counts[:, [0, 13]].tolist() == [[20, 0], [0, 20]]

    label_file = sorted((root / "gtFine" / "train" / "ulm").glob("*.png"))[1]
    changed = np.full((4, 5), 26, np.uint8)
    changed[0, :3] = 24  # three person pixels
    Image.fromarray(changed).save(label_file)
    stat = label_file.stat()
    os.utime(label_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    after = build_class_index(build_dataset("cityscapes", root=root, split="train"), cache_dir=cache)
    assert after.pixel_counts[1, [11, 13]].tolist() == [3, 17]
    assert len(list(cache.glob("*.npz"))) == 2


def test_label_outside_class_set_is_a_user_error(tmp_path):
    root = write_cityscapes(tmp_path / "cs", {"train": {"ulm": [np.full((3, 3), 99, np.uint8)]}})
    with pytest.raises(UserError, match="99"):
        build_class_index(build_dataset("cityscapes", root=root, split="train"), cache_dir=tmp_path / "c", workers=1)
    assert not list(tmp_path.glob("c/*.npz"))  # nothing cached for a bad dataset
