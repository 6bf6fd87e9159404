"""The synthetic benchmark: determinism, item format, the documented class profile, its structure."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from fairseg_bench.data import build_dataset
from fairseg_bench.data.cityscapes import CITYSCAPES_CLASSES
from fairseg_bench.data.synthetic import CLASS_PROFILE_RANGES, SyntheticStreets
from fairseg_bench.errors import UserError

C = {name: i for i, name in enumerate(CITYSCAPES_CLASSES)}


@pytest.fixture(scope="module")
def profile_set():
    """300 train images (the profile test's sample) and their labels."""
    ds = build_dataset("synthetic", split="train", num_images=300, seed=0)
    return ds, np.stack([ds.label(i) for i in range(len(ds))])


def test_same_seed_gives_identical_bytes_in_any_order():
    a = build_dataset("synthetic", split="train", num_images=20, seed=7)
    b = build_dataset("synthetic", split="train", num_images=20, seed=7)
    for i in (13, 0, 19):  # b generates them in another order than a
        assert a.image(i).tobytes() == b.image(i).tobytes()
    for i in range(20):
        assert a.image(i).tobytes() == b.image(i).tobytes() and a.label(i).tobytes() == b.label(i).tobytes()
    x1, y1 = a[5]
    x2, y2 = SyntheticStreets(split="train", num_images=20, seed=7, memoize=False)[5]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_drawn_once_shared_through_the_cache_and_redrawn_when_it_does_not_fit(tmp_path, monkeypatch):
    """draw_all: forked workers give the bytes drawn one by one; a second process reads the cache (it
    draws nothing); a cache of other settings, or a broken one, is redrawn and replaced."""
    from fairseg_bench.data import synthetic

    monkeypatch.setattr(synthetic, "_PARALLEL_DRAW_MIN", 8)
    alone = build_dataset("synthetic", split="val", num_images=24, size=[32, 64], seed=5)
    first = build_dataset("synthetic", split="val", num_images=24, size=[32, 64], seed=5)
    first.draw_all(cache_dir=tmp_path, workers=2)
    (cache,) = tmp_path.glob("scenes-val-*.npz")
    for i in range(24):
        assert first.image(i).tobytes() == alone.image(i).tobytes()
        assert first.label(i).tobytes() == alone.label(i).tobytes()
    assert not first.image(3).flags.writeable

    drawn = []
    monkeypatch.setattr(synthetic, "render_scene", lambda *a, **k: drawn.append(1) or alone._scene(0))
    second = build_dataset("synthetic", split="val", num_images=24, size=[32, 64], seed=5)
    second.draw_all(cache_dir=tmp_path, workers=1)
    assert not drawn and second.label(17).tobytes() == alone.label(17).tobytes()

    other = build_dataset("synthetic", split="val", num_images=24, size=[32, 64], seed=6)
    other.draw_all(cache_dir=tmp_path, workers=1)  # another seed: its own file, drawn
    assert len(drawn) == 24 and len(list(tmp_path.glob("scenes-val-*.npz"))) == 2
    cache.write_bytes(cache.read_bytes()[:1000])  # truncated
    monkeypatch.undo()
    again = build_dataset("synthetic", split="val", num_images=24, size=[32, 64], seed=5)
    again.draw_all(cache_dir=tmp_path, workers=1)
    assert again.image(9).tobytes() == alone.image(9).tobytes() and cache.stat().st_size > 1000
    with np.load(cache) as data:  # right key and shapes, labels of another dtype: redrawn too
        np.savez(cache, images=data["images"], labels=data["labels"].astype(np.int16), key=data["key"])
    wide = build_dataset("synthetic", split="val", num_images=24, size=[32, 64], seed=5)
    wide.draw_all(cache_dir=tmp_path, workers=1)
    assert wide.label(4).dtype == np.uint8 and wide.label(4).tobytes() == alone.label(4).tobytes()
    with np.load(cache) as data:
        assert data["labels"].dtype == np.uint8


def test_seeds_and_splits_differ():
    base = build_dataset("synthetic", split="train", num_images=4, seed=0)
    other_seed = build_dataset("synthetic", split="train", num_images=4, seed=1)
    val = build_dataset("synthetic", split="val", num_images=4, seed=0)
    for i in range(4):
        assert base.image(i).tobytes() != other_seed.image(i).tobytes()
        assert base.label(i).tobytes() != val.label(i).tobytes()
    assert base.image(0).tobytes() != base.image(1).tobytes()


def test_item_format_and_ignore_hood():
    ds = build_dataset("synthetic", split="val", num_images=3)
    image, target = ds[2]
    assert image.dtype == torch.float32 and image.shape == (3, 64, 128)
    assert target.dtype == torch.int64 and target.shape == (64, 128)
    values = set(target.unique().tolist())
    assert values <= set(range(19)) | {255}
    assert (target[-1] == 255).all() and (target[:32] != 255).all()  # hood band at the bottom only
    assert ds.image(2).shape == (64, 128, 3) and ds.image(2).dtype == np.uint8
    assert ds.num_classes == 19 and ds.classes == CITYSCAPES_CLASSES and ds.palette.shape == (19, 3)
    assert len(build_dataset("synthetic", split="train")) == 1000


def test_other_sizes_and_bad_options():
    ds = build_dataset("synthetic", split="train", num_images=2, size=(96, 160))
    assert ds.image(0).shape == (96, 160, 3) and ds[1][1].shape == (96, 160)
    with pytest.raises(UserError, match="split"):
        build_dataset("synthetic", split="test2")
    with pytest.raises(UserError, match="size"):
        build_dataset("synthetic", size=(8, 8))
    with pytest.raises(IndexError):
        ds.label(2)


def test_class_profile_within_documented_ranges(profile_set):
    _, labels = profile_set
    valid = labels != 255
    pixel_share = np.bincount(labels[valid], minlength=19) / valid.sum()
    image_share = np.array([(labels == c).any(axis=(1, 2)).mean() for c in range(19)])
    for name, ((p_low, p_high), (i_low, i_high)) in CLASS_PROFILE_RANGES.items():
        c = C[name]
        assert p_low <= pixel_share[c] <= p_high, f"{name} pixel share {pixel_share[c]:.4f}"
        assert i_low <= image_share[c] <= i_high, f"{name} image share {image_share[c]:.3f}"
    assert set(CLASS_PROFILE_RANGES) == set(CITYSCAPES_CLASSES)


def test_both_kinds_of_rarity(profile_set):
    _, labels = profile_set
    present = np.stack([(labels == c).any(axis=(1, 2)) for c in range(19)], 1)
    area = np.stack([(labels == c).sum(axis=(1, 2)) for c in range(19)], 1) / labels[0].size
    for name in ("truck", "bus", "train"):  # image-rare but large where present
        c = C[name]
        assert present[:, c].mean() < 0.15 and np.median(area[present[:, c], c]) > 0.12, name
    for name in ("pole", "traffic light", "traffic sign", "bicycle"):  # frequent but tiny
        c = C[name]
        assert present[:, c].mean() > 0.3 and np.median(area[present[:, c], c]) < 0.012, name


def test_poles_are_one_or_two_pixels_wide(profile_set):
    _, labels = profile_set
    widths = (labels == C["pole"]).sum(axis=2)  # pole pixels per row
    components = [ndimage.label(labels[i] == C["pole"])[1] for i in range(40)]
    assert sum(components) > 40
    assert np.percentile(widths[widths > 0], 90) <= 4  # a row crosses at most a few 1-px poles


def test_every_rider_sits_on_a_two_wheeler(profile_set):
    _, labels = profile_set
    checked = 0
    for label in labels:
        riders, n = ndimage.label(label == C["rider"])
        for k in range(1, n + 1):
            ys, xs = np.nonzero(riders == k)
            below = label[ys.max() + 1: ys.max() + 8, max(xs.min() - 3, 0): xs.max() + 4]
            assert np.isin(below, [C["bicycle"], C["motorcycle"]]).any() or ys.max() >= 60
            checked += 1
    assert checked > 30


def test_confusable_pairs_have_close_colours(profile_set):
    ds, labels = profile_set
    gaps = {"wall/building": [], "terrain/vegetation": [], "car/building": []}
    pairs = {"wall/building": ("wall", "building"), "terrain/vegetation": ("terrain", "vegetation"),
             "car/building": ("car", "building")}
    for i in range(120):
        image = ds.image(i).astype(np.float64)
        for key, (a, b) in pairs.items():
            ma, mb = labels[i] == C[a], labels[i] == C[b]
            if ma.sum() > 20 and mb.sum() > 20:
                gaps[key].append(np.linalg.norm(image[ma].mean(0) - image[mb].mean(0)))
    assert np.median(gaps["wall/building"]) < 40 and np.median(gaps["terrain/vegetation"]) < 60
    assert np.median(gaps["car/building"]) > np.median(gaps["wall/building"])
