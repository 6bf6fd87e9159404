"""Image-level metrics (mIoU^I, worst-q %, mIoU^C) against a plain per-image loop written here."""
import math
import subprocess
import sys

import numpy as np
import pytest

from fairseg_bench.core.image_metrics import (
    class_image_iou,
    image_level_metrics,
    image_miou,
    image_stats,
    per_image_class_iou,
    tp_fp_fn,
    worst_mean,
)


def random_stats(rng, n=37, k=6):
    """Per-image TP/FP/FN with classes absent from some images and one image without any valid pixel."""
    tp = rng.integers(0, 50, (n, k))
    fn = rng.integers(0, 20, (n, k))
    absent = rng.random((n, k)) < 0.4
    tp[absent], fn[absent] = 0, 0
    fp = rng.integers(0, 30, (n, k))  # also on classes absent from the image: predicted only
    tp[3], fn[3], fp[3] = 0, 0, 0  # no valid pixel
    tp[5, 2], fn[5, 2] = 0, 7  # present but never hit: IoU 0
    tp[:, 4], fn[:, 4] = 0, 0  # a class in no image at all
    return tp, fp, fn


def loop_reference(tp, fp, fn, qs=(5, 10)):
    """The definitions of docs/definitions.md, one image and one class at a time."""
    n, k = tp.shape
    image_scores, class_scores = [], [[] for _ in range(k)]
    for i in range(n):
        ious = []
        for c in range(k):
            if tp[i, c] + fn[i, c] > 0:  # the class is in this image's ground truth
                iou = tp[i, c] / (tp[i, c] + fp[i, c] + fn[i, c])
                ious.append(iou)
                class_scores[c].append(iou)
        if ious:
            image_scores.append(sum(ious) / len(ious))
    out = {"miou_image": sum(image_scores) / len(image_scores)}
    ordered = sorted(image_scores)
    for q in qs:
        m = max(1, int(q / 100 * len(ordered)))
        out[f"miou_image_worst_{q}"] = sum(ordered[:m]) / m
    per_class = [sum(s) / len(s) if s else math.nan for s in class_scores]
    present = [v for v in per_class if not math.isnan(v)]
    out["miou_class"] = sum(present) / len(present)
    out["iou_class"] = per_class
    out["images"] = len(image_scores)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_level_metrics_match_a_per_image_loop(seed):
    tp, fp, fn = random_stats(np.random.default_rng(seed))
    ours, expected = image_level_metrics(tp, fp, fn), loop_reference(tp, fp, fn)
    assert set(ours) == set(expected)
    for key in expected:
        np.testing.assert_allclose(ours[key], expected[key], rtol=0, atol=1e-12, err_msg=key)


def test_shapes_and_absent_classes():
    tp, fp, fn = random_stats(np.random.default_rng(4))
    iou = per_image_class_iou(tp, fp, fn)
    assert iou.shape == tp.shape and np.isnan(iou[:, 4]).all() and np.isnan(iou[3]).all()
    assert iou[5, 2] == 0.0
    assert np.isnan(image_miou(tp, fp, fn)[3])
    assert np.isnan(class_image_iou(tp, fp, fn)[4])


def test_worst_mean_counts_at_least_one_image():
    values = [0.9, 0.1, np.nan, 0.5, 0.3]
    assert worst_mean(values, 5) == 0.1  # floor(0.05 * 4) = 0 -> one image
    assert worst_mean(values, 50) == pytest.approx(0.2)
    assert worst_mean(values, 100) == pytest.approx(0.45)
    assert math.isnan(worst_mean([np.nan], 10))
    with pytest.raises(ValueError):
        worst_mean(values, 0)


def test_q_of_a_round_share_is_exact():
    # 10 % of 30 images is 3 images even though 10 / 100 * 30 is 3.0000000000000004 in floats
    values = np.arange(30) / 30
    assert worst_mean(values, 10) == pytest.approx(values[:3].mean())


def test_core_module_imports_no_torch():
    code = "import sys, fairseg_bench.core.image_metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_replicates_equal_the_metrics_of_the_resampled_images():
    from fairseg_bench.core.image_metrics import image_level_replicates

    rng = np.random.default_rng(7)
    tp, fp, fn = random_stats(rng, n=23)
    counts = rng.multinomial(23, np.full(23, 1 / 23), size=6)
    counts[0] = 1  # the identity draw
    reps = image_level_replicates(tp, fp, fn, counts)
    for b, row in enumerate(counts):
        idx = np.repeat(np.arange(23), row)
        expected = loop_reference(tp[idx], fp[idx], fn[idx])
        for key, value in expected.items():
            if key == "images":
                continue
            np.testing.assert_allclose(reps[key][b], value, rtol=0, atol=1e-12, err_msg=f"{key} replicate {b}")


def test_distribution_figure_renders(tmp_path):
    from fairseg_bench.report.image_figures import per_image_miou_percent, plot_image_miou

    rng = np.random.default_rng(8)
    runs = [dict(zip(("tp", "fp", "fn"), random_stats(rng), strict=True)) for _ in range(2)]
    values = per_image_miou_percent(runs)
    used = sum(int((~np.isnan(image_miou(r["tp"], r["fp"], r["fn"]))).sum()) for r in runs)
    assert values.shape == (used,) and 0 <= values.min() and values.max() <= 100
    fig = plot_image_miou({"mcce": values, "tce": values[::-1] * 0.9}, reference="mcce")
    fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_void_predictions_are_false_negatives_only():
    from fairseg_bench.core.iou import per_class_iou

    cm = np.array([[6, 2], [0, 3]])
    np.testing.assert_allclose(per_class_iou(cm, void=[2, 0]), [6 / 10, 3 / 5])
    np.testing.assert_allclose(per_class_iou(cm), [6 / 8, 3 / 5])


def test_image_stats_match_a_per_pixel_count():
    """TP/FP/FN of label maps: ignored pixels nowhere, a prediction outside [0, K) void (FN only)."""
    rng = np.random.default_rng(4)
    k = 4
    target = rng.integers(0, k, (3, 6, 7))
    target[rng.random(target.shape) < 0.2] = 255
    target[1] = 255  # an image without a valid pixel
    prediction = rng.integers(0, k + 2, target.shape)  # k and k + 1: void
    stats = image_stats(target, prediction, k)
    for i in range(3):
        valid = target[i] != 255
        for c in range(k):
            t, p = target[i][valid] == c, prediction[i][valid] == c
            assert stats[i, :, c].tolist() == [int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())]
    assert np.isnan(image_miou(*np.moveaxis(stats, 1, 0))[1])
    with pytest.raises(ValueError, match=r"target values must lie in \[0, 4\)"):
        image_stats(np.full((1, 2, 2), 7), np.zeros((1, 2, 2)), k)


def test_tp_fp_fn_of_one_matrix_or_a_stack():
    matrix = np.array([[5, 1, 2], [3, 4, 0]])  # column 2: void
    np.testing.assert_array_equal(tp_fp_fn(matrix), [[5, 4], [3, 1], [3, 3]])
    np.testing.assert_array_equal(tp_fp_fn(np.stack([matrix, 2 * matrix])), [tp_fp_fn(matrix), 2 * tp_fp_fn(matrix)])
