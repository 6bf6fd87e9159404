"""IoU reductions and the paper's fairness metrics against sklearn, torchmetrics, brute force and
the paper's own tables."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import jaccard_score
from support import FIXTURES

from fairseg_bench.core.confusion import confusion_matrix
from fairseg_bench.core.fairness import FAIRNESS_KEYS, PAPER_KEYS, fairness_metrics
from fairseg_bench.core.iou import class_accuracy, mean_iou, per_class_iou, pixel_accuracy


def coherent_maps(n, k, size=(24, 40), block=4, seed=0, absent=()):
    """Upsampled low-res random labels with ignored blocks; classes in ``absent`` never occur."""
    g = torch.Generator().manual_seed(seed)
    present = torch.tensor([c for c in range(k) if c not in absent])
    low = (n, size[0] // block, size[1] // block)

    def up(x):
        return F.interpolate(x[:, None].float(), size=size, mode="nearest")[:, 0]

    target = up(present[torch.randint(0, len(present), low, generator=g)]).long()
    wrong = up((torch.rand(low, generator=g) < 0.3).long()).bool()
    pred = torch.where(wrong, up(present[torch.randint(0, len(present), low, generator=g)]).long(), target)
    target[up((torch.rand(low, generator=g) < 0.15).long()).bool()] = 255
    return pred, target


# ------------------------------------------------------------------------------ IoU reductions
def test_per_class_iou_matches_sklearn_jaccard():
    pred, target = coherent_maps(3, 19)
    keep = (target != 255).numpy().ravel()
    expected = jaccard_score(target.numpy().ravel()[keep], pred.numpy().ravel()[keep], labels=list(range(19)),
                             average=None)
    iou = per_class_iou(confusion_matrix(pred, target, 19))
    np.testing.assert_allclose(iou, expected, rtol=0, atol=1e-15)


def test_absent_class_is_nan_and_left_out_of_every_mean():
    """The rule: no ground truth and no prediction -> NaN, excluded (never 1, never 0).

    sklearn's jaccard_score gives 0 for such a class (with a warning), so its macro average is
    lower by exactly that zero.
    """
    pred, target = coherent_maps(2, 6, absent=(4,), seed=1)
    cm = confusion_matrix(pred, target, 6)
    iou = per_class_iou(cm)
    assert np.isnan(iou[4]) and np.isfinite(np.delete(iou, 4)).all()
    assert mean_iou(cm) == pytest.approx(np.delete(iou, 4).mean(), abs=1e-15)
    assert fairness_metrics(iou)["n_classes"] == 5
    assert fairness_metrics(iou)["miou"] == pytest.approx(mean_iou(cm), abs=1e-15)
    keep = (target != 255).numpy().ravel()
    with pytest.warns(Warning):
        sk = jaccard_score(target.numpy().ravel()[keep], pred.numpy().ravel()[keep], labels=list(range(6)),
                           average=None)
    assert sk[4] == 0.0
    assert sk.mean() == pytest.approx(mean_iou(cm) * 5 / 6, abs=1e-12)


def test_torchmetrics_conventions_differ_as_documented():
    """torchmetrics' MulticlassJaccardIndex(average="none") scores an absent class 0 (its
    zero_division), though its "macro" average leaves the class out as we do; and
    torchmetrics.segmentation.MeanIoU averages per-image mIoUs; ours is dataset-level with NaN."""
    from torchmetrics.classification import MulticlassJaccardIndex
    from torchmetrics.segmentation import MeanIoU

    pred, target = coherent_maps(3, 6, absent=(4,), seed=2)
    cm = confusion_matrix(pred, target, 6)
    ours = per_class_iou(cm)
    tm_none = MulticlassJaccardIndex(num_classes=6, average="none", ignore_index=255)(pred, target).numpy()
    np.testing.assert_allclose(np.delete(tm_none, 4), np.delete(ours, 4), atol=1e-6)
    assert tm_none[4] == 0.0  # not NaN: absent class counted as 0
    tm_macro = MulticlassJaccardIndex(num_classes=6, average="macro", ignore_index=255)(pred, target).item()
    assert tm_macro == pytest.approx(mean_iou(cm), abs=1e-6)
    assert tm_macro != pytest.approx(tm_none.mean(), abs=1e-3)  # the 0 would pull the mean down
    # MeanIoU has no ignore index: compare on maps without ignored pixels, where it is a per-image mean
    clean = torch.where(target == 255, pred, target)
    per_image = MeanIoU(num_classes=6, input_format="index", per_class=False)(pred, clean).item()
    our_per_image = np.mean([mean_iou(confusion_matrix(pred[i], clean[i], 6)) for i in range(3)])
    assert per_image == pytest.approx(our_per_image, abs=1e-5)
    assert per_image != pytest.approx(mean_iou(confusion_matrix(pred, clean, 6)), abs=1e-4)


def test_hand_computed_reductions():
    cm = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    np.testing.assert_allclose(per_class_iou(cm)[:2], [3 / 6, 4 / 7])
    assert np.isnan(per_class_iou(cm)[2])
    assert mean_iou(cm) == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert pixel_accuracy(cm) == pytest.approx(7 / 10)
    np.testing.assert_allclose(class_accuracy(cm)[:2], [3 / 4, 4 / 6])
    assert np.isnan(class_accuracy(cm)[2])
    assert np.isnan(pixel_accuracy(np.zeros((2, 2))))
    assert per_class_iou(torch.tensor(cm)).dtype == np.float64  # tensors accepted
    with pytest.raises(ValueError, match="square"):
        per_class_iou(np.zeros((2, 3)))


# ------------------------------------------------------------------------- fairness metrics
def percentile_linear(values, q):
    """numpy's default 'linear' percentile, written out."""
    v = sorted(values)
    pos = (len(v) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def brute_force(iou, reference, f):
    """The definitions of docs/definitions.md in plain Python."""
    vals = {c: x for c, x in enumerate(iou) if not math.isnan(x)}
    xs = list(vals.values())
    n = len(xs)
    ranked = sorted((r, c) for c, r in enumerate(reference) if not math.isnan(r))
    k = math.ceil(round(f * len(ranked), 9))
    bottom = [vals[c] for _, c in ranked[:k] if c in vals]
    top = [vals[c] for _, c in ranked[len(ranked) - k :] if c in vals]
    lo, hi = percentile_linear(xs, 100 * f), percentile_linear(xs, 100 * (1 - f))
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    gini = sum(abs(a - b) for a in xs for b in xs) / (2 * n * n * mean)
    return {
        "miou": mean,
        "sorted_bottom": sum(bottom) / len(bottom),
        "sorted_top": sum(top) / len(top),
        "pct_bottom_threshold": lo,
        "pct_bottom_mean": np.mean([x for x in xs if x <= lo]),
        "pct_top_threshold": hi,
        "pct_top_mean": np.mean([x for x in xs if x >= hi]),
        "worst": min(xs),
        "std": std,
        "best": max(xs),
        "gap": max(xs) - min(xs),
        "cov": std / mean,
        "gini": gini,
        "n_classes": n,
        "k": k,
    }


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fraction", [0.25, 0.1, 0.5])
def test_matches_brute_force_with_ties_and_nans(seed, fraction):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(8, 40))
    iou = np.round(rng.uniform(0.1, 0.95, k), 1)  # rounding makes ties
    ref = np.round(rng.uniform(0.1, 0.95, k), 1)
    iou[rng.integers(0, k, 2)] = np.nan
    ref[rng.integers(0, k, 1)] = np.nan
    ours = fairness_metrics(iou, ref, fraction)
    expected = brute_force(iou, ref, fraction)
    assert list(ours) == list(FAIRNESS_KEYS)
    for key in FAIRNESS_KEYS:
        assert ours[key] == pytest.approx(expected[key], abs=1e-12), key


def test_ties_broken_by_class_index():
    reference = [0.5, 0.5, 0.5, 0.9]  # k = 1: the bottom class is class 0, the top class 3
    model = [0.1, 0.2, 0.3, 0.4]
    out = fairness_metrics(model, reference, fraction=0.25)
    assert out["sorted_bottom"] == 0.1 and out["sorted_top"] == 0.4
    reference = [0.9, 0.5, 0.5, 0.5]  # ties at the top end: the last of the tied classes is 'top'
    out = fairness_metrics(model, reference, fraction=0.25)
    assert out["sorted_bottom"] == 0.2 and out["sorted_top"] == 0.1


def test_nan_in_reference_has_no_rank():
    model = [0.1, 0.2, 0.3, 0.4, 0.5]
    reference = [np.nan, 0.2, 0.3, 0.4, 0.5]  # 4 ranked classes -> k = 1, class 0 in no group
    out = fairness_metrics(model, reference, fraction=0.25)
    assert out["k"] == 1 and out["sorted_bottom"] == 0.2 and out["sorted_top"] == 0.5
    out = fairness_metrics([np.nan, np.nan, 0.3, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5], fraction=0.4)
    assert out["k"] == 2 and np.isnan(out["sorted_bottom"])  # both bottom classes NaN in the model


def test_scale_is_preserved():
    x = np.array([0.4, 0.55, 0.7, 0.9, 0.2])
    frac, pct = fairness_metrics(x), fairness_metrics(100 * x)
    for key in FAIRNESS_KEYS:
        factor = 1 if key in ("cov", "gini", "n_classes", "k") else 100
        assert pct[key] == pytest.approx(factor * frac[key], rel=1e-12), key


def test_vectorised_equals_row_by_row():
    rng = np.random.default_rng(7)
    x = rng.uniform(0, 1, (5, 11))
    x[x < 0.1] = np.nan
    ref = rng.uniform(0, 1, 11)
    batch = fairness_metrics(x, ref)
    for i in range(5):
        row = fairness_metrics(x[i], ref)
        for key in FAIRNESS_KEYS:
            np.testing.assert_allclose(batch[key][i], row[key], rtol=0, atol=1e-15, err_msg=key)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="fraction"):
        fairness_metrics([0.1, 0.2], fraction=0)
    with pytest.raises(ValueError, match="reference has 3 classes"):
        fairness_metrics([0.1, 0.2], reference=[0.1, 0.2, 0.3])


def test_paper_table1_gives_table3():
    table1 = pd.read_csv(FIXTURES / "paper_table1.csv").set_index("method")
    table3 = pd.read_csv(FIXTURES / "paper_table3.csv").set_index("method")
    assert table1.shape == (4, 19)
    reference = table1.loc["MCCE"].to_numpy()
    for method, row in table1.iterrows():
        ours = fairness_metrics(row.to_numpy(), reference, 0.25)
        for key in table3.columns:
            assert abs(ours[key] - table3.loc[method, key]) <= 0.01 + 1e-9, (method, key)
    assert set(table3.columns) == set(PAPER_KEYS) - {"miou"}


def test_vectorised_percentile_equals_numpy_nanpercentile():
    import warnings

    from fairseg_bench.core.fairness import nan_percentile

    rng = np.random.default_rng(0)
    for shape in [(19,), (50, 7), (3, 4, 5), (10, 1)]:
        x = rng.random(shape)
        x[x < 0.2] = np.nan
        for q in [0, 2.5, 25, 50, 75, 97.5, 100]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
                expected = np.nanpercentile(x, q, axis=-1)
            np.testing.assert_array_equal(nan_percentile(x, q), expected)
