"""Boundary IoU counts against a brute-force reference written from the definition (Cheng et al.)."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from fairseg_bench.core.boundary import (
    BoundaryIoU,
    boundary_counts,
    boundary_counts_given_confusion,
    boundary_counts_torch,
    boundary_iou,
    boundary_width,
)

IGNORE = 255


def erode_reference(mask: np.ndarray, d: int) -> np.ndarray:
    """``d`` erosions by a 3x3 square, float64, the border zero-padded (outside = background)."""
    m = mask.astype(np.float64)
    h, w = m.shape
    for _ in range(d):
        padded = np.pad(m, 1)
        m = np.min([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return m


def reference_counts(label, pred, k, d):
    """Per class: ``G_d = G - erode(G, d)``, likewise ``P_d``, ignored pixels removed; (K,) float64 each."""
    valid = label != IGNORE
    inter, union = np.zeros(k), np.zeros(k)
    for c in range(k):
        g, p = (label == c).astype(np.float64), (pred == c).astype(np.float64)
        g_d = (g - erode_reference(g, d)) * valid
        p_d = (p - erode_reference(p, d)) * valid
        inter[c], union[c] = (g_d * p_d).sum(), np.maximum(g_d, p_d).sum()
    return inter, union


def blocky(rng, shape, k, block):
    """Spatially coherent labels: random ``block``-pixel squares, cropped to ``shape``."""
    h, w = shape
    coarse = rng.integers(0, k, (-(-h // block), -(-w // block)))
    return np.kron(coarse, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)


def random_pair(rng, shape=(37, 53), k=5, block=4):
    label = blocky(rng, shape, k, block)
    label[rng.random(shape) < 0.05] = IGNORE
    pred = np.where(rng.random(shape) < 0.2, rng.integers(0, k, shape), label).astype(np.uint8)
    pred[label == IGNORE] = rng.integers(0, k, int((label == IGNORE).sum()))
    return label, pred


def structured_pair():
    """Class 1 touches the border, class 2 is a 1-px pole, class 3 is empty, a band is ignored."""
    label = np.zeros((40, 60), np.uint8)
    label[:12, :25] = 1  # corner region: the border is contour
    label[5:35, 40] = 2  # a 1-px-wide pole
    label[30:, :8] = IGNORE
    pred = np.zeros_like(label)
    pred[:10, :27] = 1
    pred[6:33, 40:42] = 2  # a 2-px pole, slightly short
    pred[32:, 5:9] = 4  # a prediction on ignored and valid pixels
    return label, pred


def assert_matches_reference(label, pred, k, d):
    inter, union = boundary_counts(label, pred, k, width=d)
    ref_inter, ref_union = reference_counts(label, pred, k, d)
    np.testing.assert_array_equal(inter, ref_inter)
    np.testing.assert_array_equal(union, ref_union)
    assert inter.dtype == union.dtype == np.int64 and inter.shape == (k,)


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 30])
@pytest.mark.parametrize("seed", range(4))
def test_random_maps_match_reference(seed, d):
    rng = np.random.default_rng(seed)
    label, pred = random_pair(rng, k=5, block=int(rng.integers(1, 9)))
    assert_matches_reference(label, pred, 5, d)


@pytest.mark.parametrize("d", [1, 2, 4, 7])
def test_structured_map_matches_reference(d):
    label, pred = structured_pair()
    assert_matches_reference(label, pred, 6, d)
    inter, union = boundary_counts(label, pred, 6, width=d)
    assert union[3] == 0 and np.isnan(boundary_iou(inter, union)[3])  # empty class: NaN, not 0 or 1
    assert union[5] == 0


def test_pole_is_all_boundary_and_border_is_contour():
    label = np.zeros((20, 20), np.uint8)
    label[:, 10] = 1  # a pole from border to border
    inter, union = boundary_counts(label, label, 2, width=3)
    assert inter[1] == union[1] == 20  # every pole pixel is boundary
    interior = (14 - 7) * 14  # background columns 3-6 and 14-16, rows 3-16: beyond d of pole and border
    assert inter[0] == 20 * 20 - 20 - interior
    whole = np.ones((20, 20), np.uint8)
    inter, union = boundary_counts(whole, whole, 2, width=2)
    assert inter[1] == 20 * 20 - 16 * 16  # only the band within d of the border


def test_ignored_pixels_count_nowhere_but_are_background():
    label = np.ones((12, 12), np.uint8)
    label[4:8, 4:8] = IGNORE
    pred = np.ones_like(label)
    inter, union = boundary_counts(label, pred, 2, width=1)
    # the prediction has no boundary around the hole, the label does: 1-px ring around the hole
    ring = 6 * 6 - 4 * 4
    border = 12 * 12 - 10 * 10
    assert union[1] == border + ring and inter[1] == border


def test_void_predictions_belong_to_no_class():
    rng = np.random.default_rng(7)
    label, pred = random_pair(rng, k=4)
    pred[rng.random(pred.shape) < 0.1] = 200
    assert_matches_reference(label, pred, 4, 3)


def codes_and_confusion(label, pred, k):
    """Class codes in ``[0, K]`` (``K``: ignored label / void prediction) and the ``(K, K + 1)`` matrix."""
    g = np.where(label < k, label, k).astype(np.uint8)
    p = np.where(pred < k, pred, k).astype(np.uint8)
    valid = g < k
    matrix = np.bincount(g[valid].astype(np.int64) * (k + 1) + p[valid], minlength=k * (k + 1))
    return g, p, matrix.reshape(k, k + 1)


@pytest.mark.parametrize("d", [3, 7, 8, 13, 30])  # below 7 the packed path hands over to the pixel path
@pytest.mark.parametrize("seed", range(6))
def test_packed_bits_path_matches_reference(seed, d):
    rng = np.random.default_rng(100 + seed)
    shape = tuple(int(n) for n in rng.integers(20, 150, 2))  # widths that are not a multiple of 8 or 64
    label, pred = random_pair(rng, shape=shape, k=5, block=int(rng.integers(1, 12)))
    pred[rng.random(shape) < 0.03] = 200  # void predictions
    inter, union = boundary_counts_given_confusion(*codes_and_confusion(label, pred, 5), width=d)
    ref_inter, ref_union = reference_counts(label, np.where(pred < 5, pred, 5), 5, d)
    np.testing.assert_array_equal(inter, ref_inter)
    np.testing.assert_array_equal(union, ref_union)
    assert inter.dtype == union.dtype == np.int64


@pytest.mark.parametrize("d", [7, 9, 12])
def test_packed_bits_path_structured_pole_and_border(d):
    label, pred = structured_pair()  # a class on the border, a 1-px pole, an ignored band
    inter, union = boundary_counts_given_confusion(*codes_and_confusion(label, pred, 6), width=d)
    ref_inter, ref_union = reference_counts(label, pred, 6, d)
    np.testing.assert_array_equal(inter, ref_inter)
    np.testing.assert_array_equal(union, ref_union)


RAW_IGNORED = (0, 1, 2, 9, 14, 200, 255)  # several raw values of "no class", as Cityscapes' labelIds


def raw_values_of(codes, k, rng):
    """Raw maps for class codes: class c -> value 3 * c + 30, "no class" -> any of RAW_IGNORED; and the table."""
    table = np.full(256, k, np.uint8)
    table[3 * np.arange(k) + 30] = np.arange(k)
    raw = (3 * codes.astype(np.int64) + 30).astype(np.uint8)
    none = codes == k
    raw[none] = rng.choice(RAW_IGNORED, int(none.sum()))
    return raw, table


@pytest.mark.parametrize("d", [7, 11, 30])
@pytest.mark.parametrize("seed", range(5))
def test_packed_bits_path_on_raw_values_matches_reference(seed, d):
    rng = np.random.default_rng(300 + seed)
    shape = tuple(int(n) for n in rng.integers(20, 150, 2))
    label, pred = random_pair(rng, shape=shape, k=5, block=int(rng.integers(1, 12)))
    pred[rng.random(shape) < 0.03] = 200
    g, p, matrix = codes_and_confusion(label, pred, 5)
    (raw_g, table), (raw_p, _) = raw_values_of(g, 5, rng), raw_values_of(p, 5, rng)
    inter, union = boundary_counts_given_confusion(raw_g, raw_p, matrix, classes=table, width=d)
    ref_inter, ref_union = reference_counts(label, np.where(pred < 5, pred, 5), 5, d)
    np.testing.assert_array_equal(inter, ref_inter)
    np.testing.assert_array_equal(union, ref_union)


@pytest.mark.parametrize("d", [64, 130])  # windows of whole 64-bit words
def test_packed_bits_path_with_wide_windows_equals_the_pixel_path(d):
    rng = np.random.default_rng(d)
    label = np.zeros((300, 709), np.uint8)
    label[:, 350:] = 1  # two halves wide enough to keep an interior
    label[100:200, 620:690] = 2
    pred = np.roll(label, (5, 9), axis=(0, 1))
    pred[rng.random(pred.shape) < 0.001] = 3
    g, p, matrix = codes_and_confusion(label, pred, 4)
    fast = boundary_counts_given_confusion(g, p, matrix, width=d)
    slow = boundary_counts(label, pred, 4, width=d)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    assert 0 < fast[0][0] < matrix[0, 0]  # some matched pixels of class 0 are interior


def test_raw_values_need_one_value_per_class():
    g = np.zeros((16, 16), np.uint8)
    table = np.full(256, 2, np.uint8)
    table[[0, 1]] = 0  # two values of class 0: a uniform raw window is then not the class's interior
    with pytest.raises(ValueError, match="two values to one class"):
        boundary_counts_given_confusion(g, g, np.zeros((2, 3), np.int64), classes=table, width=7)


def test_packed_bits_path_at_cityscapes_size_equals_the_pixel_path():
    rng = np.random.default_rng(3)
    label, pred = random_pair(rng, shape=(1024, 2048), k=19, block=64)
    g, p, matrix = codes_and_confusion(label, pred, 19)
    fast = boundary_counts_given_confusion(g, p, matrix)  # d = 46
    slow = boundary_counts(label, pred, 19)
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
    with pytest.raises(ValueError, match="void column"):
        boundary_counts_given_confusion(g, p, matrix[:, :19])


def test_default_width_and_batch_shape():
    assert boundary_width(1024, 2048) == 46 and boundary_width(5, 5) == 1
    rng = np.random.default_rng(3)
    pairs = [random_pair(rng, shape=(50, 70)) for _ in range(3)]
    labels, preds = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    inter, union = boundary_counts(labels, preds, 5)
    assert inter.shape == union.shape == (3, 5)
    for i, (label, pred) in enumerate(pairs):
        ref_inter, ref_union = reference_counts(label, pred, 5, boundary_width(50, 70))
        np.testing.assert_array_equal(inter[i], ref_inter)
        np.testing.assert_array_equal(union[i], ref_union)


def test_int_dtypes_and_many_classes():
    rng = np.random.default_rng(11)
    label = np.kron(rng.integers(0, 300, (10, 14)), np.ones((3, 3), np.int64))[:30, :40]  # K > 254: wider codes
    label[label == IGNORE] = 0  # 255 stays the ignore index of the reference
    pred = np.where(rng.random(label.shape) < 0.3, rng.integers(-3, 310, label.shape), label)
    assert_matches_reference(label, pred, 300, 2)


def test_bad_labels_and_shapes_raise():
    label = np.zeros((10, 10), np.uint8)
    label[0, 0] = 7
    with pytest.raises(ValueError, match="outside"):
        boundary_counts(label, label, 3)
    with pytest.raises(ValueError, match="shape"):
        boundary_counts(label, label[:5], 3)
    with pytest.raises(ValueError, match="outside"):
        boundary_counts_torch(torch.from_numpy(label), torch.from_numpy(label), 3)
    with pytest.raises(ValueError, match="at least 1"):
        boundary_counts(label, label, 9, width=0)


def test_scatter_count_equals_bincount():
    from fairseg_bench.core.boundary import _scatter_count  # the CUDA path's count, run on CPU here

    keys = torch.from_numpy(np.random.default_rng(0).integers(0, 50, 1000).astype(np.int32))
    assert torch.equal(_scatter_count(keys, 60), torch.bincount(keys, minlength=60))


def torch_devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", torch_devices())
def test_torch_equals_numpy(device):
    rng = np.random.default_rng(5)
    pairs = [random_pair(rng, shape=(64, 96), k=7, block=int(b)) for b in (1, 4, 9)]
    labels, preds = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    expected = boundary_counts(labels, preds, 7)
    got = boundary_counts_torch(torch.from_numpy(labels).to(device), torch.from_numpy(preds).long().to(device), 7)
    for a, b in zip(got, expected):
        assert a.device.type == device and a.dtype == torch.int64
        np.testing.assert_array_equal(a.cpu().numpy(), b)


@pytest.mark.parametrize("device", torch_devices())
def test_streaming_accumulates_like_the_sum(device):
    rng = np.random.default_rng(9)
    pairs = [random_pair(rng, shape=(40, 40), k=4) for _ in range(4)]
    labels, preds = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    inter, union = boundary_counts(labels, preds, 4)
    for as_input in (np.asarray, lambda x: torch.from_numpy(x).to(device)):
        metric = BoundaryIoU(4)
        per_image = [metric.update(as_input(labels[i:i + 2]), as_input(preds[i:i + 2])) for i in (0, 2)]
        np.testing.assert_array_equal(metric.counts()[0], inter.sum(0))
        np.testing.assert_array_equal(metric.counts()[1], union.sum(0))
        np.testing.assert_allclose(metric.compute(), boundary_iou(inter.sum(0), union.sum(0)))
        first = per_image[0][0]
        np.testing.assert_array_equal(first.cpu().numpy() if hasattr(first, "cpu") else first, inter[:2])
    assert np.isnan(BoundaryIoU(3).compute()).all()


def test_streaming_raises_bad_labels_at_compute():
    metric = BoundaryIoU(2)
    label = torch.zeros(1, 8, 8, dtype=torch.uint8)
    label[0, 0, 0] = 9
    metric.update(label, torch.zeros_like(label))
    with pytest.raises(ValueError, match="outside"):
        metric.compute()


def test_numpy_path_imports_no_torch():
    code = ("import sys, numpy as np; from fairseg_bench.core.boundary import boundary_counts; "
            "boundary_counts(np.zeros((9, 9), np.uint8), np.ones((9, 9), np.uint8), 2); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
