"""The reviewer's baselines (docs/definitions.md, "Baselines"): Lovász-softmax, Dice, Dice-CE,
class-balanced CE, logit-adjusted CE and OHEM CE.

Each loss is checked against a float64 reference written here from the definition (a per-class
loop), on batches with ignored pixels, classes absent from the batch and images holding one class
only; by ``gradcheck``; against a well-kept library where one implements the same definition
(smp's LovaszLoss, MONAI's DiceLoss, mmsegmentation's OHEM rule); and by the properties the
definitions promise (each reduces to MCCE at a parameter value; Lovász of a perfect prediction is 0).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fairseg_bench.core.balanced import (
    ClassBalancedCrossEntropyLoss,
    LogitAdjustedCrossEntropyLoss,
    class_balanced_cross_entropy,
    class_balanced_weights,
    logit_adjusted_cross_entropy,
    logit_adjustment,
)
from fairseg_bench.core.dice import DiceCrossEntropyLoss, DiceLoss, dice_cross_entropy, dice_loss
from fairseg_bench.core.losses import mcce
from fairseg_bench.core.lovasz import LovaszSoftmaxLoss, lovasz_softmax
from fairseg_bench.core.ohem import OhemCrossEntropyLoss, ohem_cross_entropy
from fairseg_bench.loss_specs import build_loss

IGNORE = 255
K = 5
PIXEL_COUNTS = np.array([900, 300, 50, 0, 7])  # class 3 never seen in training
IMAGE_COUNTS = np.array([40, 31, 9, 0, 2])


# ------------------------------------------------------------------------------ batches


def make_batch(kind: str, seed: int = 0, dtype=torch.float64):
    """Logits and targets of a few kinds; every image holds a valid pixel unless said otherwise."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, K, 5, 6, generator=gen, dtype=dtype) * 2
    target = torch.randint(K, (3, 5, 6), generator=gen)
    if kind == "ignored":
        target[0, :2] = IGNORE
        target[2, :, :3] = IGNORE
    elif kind == "absent":  # classes 1 and 3 nowhere in the batch, some pixels ignored
        target[(target == 1) | (target == 3)] = 0
        target[1, 0] = IGNORE
    elif kind == "one-class":  # every image holds one class only (and one image ignored in part)
        for m, c in enumerate((2, 2, 4)):
            target[m] = c
        target[1, 3:] = IGNORE
    elif kind == "one-image-ignored":  # a whole image ignored
        target[1] = IGNORE
    return logits, target


KINDS = ["plain", "ignored", "absent", "one-class", "one-image-ignored"]


# ------------------------------------------------------------------- float64 references


def ref_probabilities(logits):
    return torch.softmax(logits.double(), 1)


def ref_lovasz(logits, target, per_image=False):
    """The definition: per class present, sort the errors, dot with J_1, J_2 - J_1, ...; mean over classes."""

    def class_losses(prob, tgt):  # prob (C, P), tgt (P,) valid pixels only
        losses = []
        for c in range(prob.shape[0]):
            g = (tgt == c).double()
            if g.sum() == 0:
                continue
            errors = (g - prob[c]).abs()
            order = torch.argsort(errors, descending=True)
            e, gs = errors[order], g[order]
            total = gs.sum()
            inter = total - torch.cumsum(gs, 0)
            union = total + torch.cumsum(1 - gs, 0)
            jaccard = 1 - inter / union
            grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
            losses.append((e * grad).sum())
        return losses

    prob = ref_probabilities(logits)
    if not per_image:
        valid = target != IGNORE
        losses = class_losses(prob.permute(1, 0, 2, 3)[:, valid], target[valid])
        return torch.stack(losses).mean() if losses else torch.zeros((), dtype=torch.float64)
    images = []
    for m in range(target.shape[0]):
        valid = target[m] != IGNORE
        if valid.any():
            images.append(torch.stack(class_losses(prob[m][:, valid], target[m][valid])).mean())
    return torch.stack(images).mean() if images else torch.zeros((), dtype=torch.float64)


def ref_dice(logits, target):
    prob = ref_probabilities(logits)
    valid = target != IGNORE
    scores = []
    for c in range(logits.shape[1]):
        g = ((target == c) & valid).double()
        if g.sum() == 0:
            continue
        p = prob[:, c] * valid
        scores.append(2 * (p * g).sum() / (p.sum() + g.sum()))
    return 1 - torch.stack(scores).mean() if scores else torch.zeros((), dtype=torch.float64)


def ref_ce_terms(logits, target):
    """Per-pixel CE of the valid pixels (a loop over pixels would be slow; log-softmax is exact)."""
    valid = target != IGNORE
    log_p = torch.log_softmax(logits.double(), 1)
    ce = -log_p.gather(1, torch.where(valid, target, 0).unsqueeze(1)).squeeze(1)
    return ce[valid], target[valid]


def ref_mcce(logits, target):
    ce, _ = ref_ce_terms(logits, target)
    return ce.mean() if ce.numel() else torch.zeros((), dtype=torch.float64)


def ref_cb(logits, target, counts, beta):
    counts = [float(n) for n in counts]
    raw = [(1 - beta) / (1 - beta**n) if n > 0 else 0.0 for n in counts]
    seen = [w for w, n in zip(raw, counts) if n > 0]
    weights = [w / (sum(seen) / len(seen)) for w in raw]
    ce, y = ref_ce_terms(logits, target)
    total = sum(weights[int(c)] * float(v) for c, v in zip(y, ce))
    return total / max(len(ce), 1)


def ref_la(logits, target, pixel_counts, tau):
    total = float(sum(pixel_counts))
    log_pi = torch.tensor([math.log(max(n / total, 1e-12)) for n in pixel_counts], dtype=torch.float64)
    return ref_mcce(logits.double() + tau * log_pi.view(1, -1, 1, 1), target)


def ref_ohem(logits, target, thresh, min_kept):
    """The definition: thr = max(s[min(min_kept, n - 1)], thresh); mean CE over q < thr."""
    ce, y = ref_ce_terms(logits, target)
    if ce.numel() == 0:
        return torch.zeros((), dtype=torch.float64)
    q = torch.exp(-ce)
    s = sorted(q.tolist())
    thr = max(s[min(min_kept, len(s) - 1)], thresh)
    kept = [float(v) for v, p in zip(ce, q) if p < thr]
    return sum(kept) / len(kept) if kept else 0.0


def mmseg_ohem_rule(score, target, thresh, min_kept, ignore_label=IGNORE):
    """mmsegmentation's ``OhemCrossEntropy.forward`` (from PIDNet / HRNet), restated line by line."""
    pred = F.softmax(score, dim=1)
    pixel_losses = F.cross_entropy(score, target, ignore_index=ignore_label, reduction="none").contiguous().view(-1)
    mask = target.contiguous().view(-1) != ignore_label
    tmp_target = target.clone()
    tmp_target[tmp_target == ignore_label] = 0
    pred = pred.gather(1, tmp_target.unsqueeze(1))
    pred, ind = pred.contiguous().view(-1)[mask].contiguous().sort()
    min_value = pred[min(max(1, min_kept), pred.numel() - 1)]  # mmseg stores min_kept as max(1, min_kept)
    threshold = max(min_value, thresh)
    pixel_losses = pixel_losses[mask][ind]
    pixel_losses = pixel_losses[pred < threshold]
    return pixel_losses.mean()


# ------------------------------------------------------------------ against the definitions

LOSSES = {
    "lovasz": (lambda x, y: lovasz_softmax(x, y), lambda x, y: ref_lovasz(x, y)),
    "lovasz:per_image": (lambda x, y: lovasz_softmax(x, y, per_image=True), lambda x, y: ref_lovasz(x, y, True)),
    "dice": (lambda x, y: dice_loss(x, y), ref_dice),
    "dice-ce": (lambda x, y: dice_cross_entropy(x, y), lambda x, y: ref_mcce(x, y) + ref_dice(x, y)),
    "dice-ce:weight=0.3": (lambda x, y: dice_cross_entropy(x, y, 0.3),
                           lambda x, y: ref_mcce(x, y) + 0.3 * ref_dice(x, y)),
    "cb:image": (lambda x, y: class_balanced_cross_entropy(x, y, class_balanced_weights(IMAGE_COUNTS, 0.999)),
                 lambda x, y: ref_cb(x, y, IMAGE_COUNTS, 0.999)),
    "cb:pixel,beta=0.99": (lambda x, y: class_balanced_cross_entropy(x, y, class_balanced_weights(PIXEL_COUNTS, 0.99)),
                           lambda x, y: ref_cb(x, y, PIXEL_COUNTS, 0.99)),
    "la": (lambda x, y: logit_adjusted_cross_entropy(x, y, logit_adjustment(PIXEL_COUNTS, 1.0)),
           lambda x, y: ref_la(x, y, PIXEL_COUNTS, 1.0)),
    "la:tau=0.4": (lambda x, y: logit_adjusted_cross_entropy(x, y, logit_adjustment(PIXEL_COUNTS, 0.4)),
                   lambda x, y: ref_la(x, y, PIXEL_COUNTS, 0.4)),
    "ohem": (lambda x, y: ohem_cross_entropy(x, y, 0.7, 10), lambda x, y: ref_ohem(x, y, 0.7, 10)),
    "ohem:thresh=0.2": (lambda x, y: ohem_cross_entropy(x, y, 0.2, 5), lambda x, y: ref_ohem(x, y, 0.2, 5)),
    "ohem:min_kept=1000": (lambda x, y: ohem_cross_entropy(x, y, 0.5, 1000), lambda x, y: ref_ohem(x, y, 0.5, 1000)),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", LOSSES)
def test_matches_the_float64_reference(name, kind):
    loss_fn, reference = LOSSES[name]
    logits, target = make_batch(kind, seed=len(name))
    value = loss_fn(logits, target)
    assert value.dtype == torch.float64 and value.ndim == 0
    rel = 1e-6 if name.startswith(("cb", "la")) else 1e-10  # their class statistics are float32 buffers
    assert float(value) == pytest.approx(float(reference(logits, target)), rel=rel, abs=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_float32_matches_the_reference(name):
    loss_fn, reference = LOSSES[name]
    logits, target = make_batch("ignored", seed=3, dtype=torch.float32)
    value = loss_fn(logits, target)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(float(reference(logits, target)), rel=2e-5, abs=1e-6)


@pytest.mark.parametrize("kind", ["ignored", "absent", "one-class"])
@pytest.mark.parametrize("name", LOSSES)
def test_gradcheck_float64(name, kind):
    loss_fn, _ = LOSSES[name]
    logits, target = make_batch(kind, seed=11)
    logits = (logits * 0.5).requires_grad_(True)
    # fast mode checks v^T J u for random u, v (one backward instead of one per logit): a wrong
    # gradient anywhere still shows, at a fraction of the full Jacobian's cost
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, target), (logits,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_autograd_of_the_reference(name):
    """The fused backward (Dice, Dice-CE, LA write it out) against autograd of the reference."""
    if name.startswith(("lovasz", "ohem", "cb")):
        pytest.skip("non-smooth reference (sort/threshold) or plain autograd: covered by gradcheck")
    loss_fn, reference = LOSSES[name]
    logits, target = make_batch("ignored", seed=5)
    mine = logits.clone().requires_grad_(True)
    ref = logits.clone().requires_grad_(True)
    loss_fn(mine, target).backward()
    reference(ref, target).backward()
    tol = 1e-6 if name.startswith("la") else 1e-10
    torch.testing.assert_close(mine.grad, ref.grad, rtol=tol, atol=tol * 1e-2)


@pytest.mark.parametrize("name", LOSSES)
def test_no_valid_pixel_gives_zero_with_zero_gradient(name):
    loss_fn, _ = LOSSES[name]
    logits = torch.randn(2, K, 3, 4, dtype=torch.float64, requires_grad=True)
    target = torch.full((2, 3, 4), IGNORE)
    value = loss_fn(logits, target)
    value.backward()
    assert float(value.detach()) == 0.0
    assert logits.grad is not None and not logits.grad.any()


@pytest.mark.parametrize("name", LOSSES)
def test_half_precision_under_autocast_gives_float32(name):
    loss_fn, reference = LOSSES[name]
    logits, target = make_batch("ignored", seed=2, dtype=torch.bfloat16)
    logits.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss_fn(logits, target)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(logits.grad).all()
    assert float(value.detach()) == pytest.approx(float(reference(logits.detach(), target)), rel=1e-4, abs=1e-5)


# ------------------------------------------------------------------------------ properties


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_values_that_reduce_to_mcce(kind):
    logits, target = make_batch(kind, seed=7)
    expected = mcce(logits, target)
    no_adjustment = logit_adjustment(PIXEL_COUNTS, 0.0)
    torch.testing.assert_close(logit_adjusted_cross_entropy(logits, target, no_adjustment), expected)
    seen = torch.tensor(PIXEL_COUNTS + 1)  # beta = 0 makes every seen class weigh 1
    uniform = class_balanced_weights(seen, 0.0)
    torch.testing.assert_close(class_balanced_cross_entropy(logits, target, uniform), expected)
    torch.testing.assert_close(ohem_cross_entropy(logits, target, thresh=1.0, min_kept=0), expected)
    torch.testing.assert_close(dice_cross_entropy(logits, target, weight=0.0), expected)


@pytest.mark.parametrize("text", ["la:tau=0", "cb:beta=0", "cb:beta=0,unit=pixel", "ohem:thresh=1,min_kept=0",
                                  "dice-ce:weight=0"])
def test_registry_specs_that_reduce_to_mcce(text):
    loss = build_loss(text, num_classes=K, class_pixel_counts=PIXEL_COUNTS + 1, class_image_counts=IMAGE_COUNTS + 1)
    logits, target = make_batch("ignored", seed=8, dtype=torch.float32)
    torch.testing.assert_close(loss(logits, target), mcce(logits, target))


@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_of_a_perfect_prediction_is_zero(per_image):
    _, target = make_batch("ignored", seed=4)
    logits = F.one_hot(target.clamp(max=K - 1), K).permute(0, 3, 1, 2).double() * 50
    assert float(lovasz_softmax(logits, target, per_image)) == pytest.approx(0.0, abs=1e-15)
    # and it is positive as soon as one pixel is wrong
    logits[0, :, 4, 5] = torch.arange(K, dtype=torch.float64).flip(0) * 50 * (target[0, 4, 5] != 0)
    logits[0, 1, 4, 5] += 100 * (target[0, 4, 5] == 0)
    assert float(lovasz_softmax(logits, target, per_image)) > 1e-3


def test_cb_weights_follow_the_effective_number():
    weights = class_balanced_weights(IMAGE_COUNTS, 0.9)
    raw = np.array([(1 - 0.9) / (1 - 0.9**n) if n else 0.0 for n in IMAGE_COUNTS])
    np.testing.assert_allclose(weights.numpy(), raw / raw[IMAGE_COUNTS > 0].mean(), rtol=1e-6)
    assert weights[3] == 0  # a class never seen in training
    # beta close to 1 tends to inverse frequency (1 - beta^n ~ n (1 - beta))
    near = class_balanced_weights(IMAGE_COUNTS, 1 - 1e-9).numpy()
    inverse = np.where(IMAGE_COUNTS > 0, 1 / np.maximum(IMAGE_COUNTS, 1), 0)
    np.testing.assert_allclose(near, inverse / inverse[IMAGE_COUNTS > 0].mean(), rtol=1e-5)


def test_la_unseen_class_gets_the_frequency_floor():
    adjustment = logit_adjustment(PIXEL_COUNTS, 2.0)
    assert float(adjustment[3]) == pytest.approx(2.0 * math.log(1e-12), rel=1e-6)


def test_dice_ce_term_is_exact_where_the_target_probability_underflows():
    logits = torch.zeros(1, K, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    logits[0, 1] = 200.0  # p_y = e^-200 underflows float32
    value = dice_cross_entropy(logits, target, weight=0.0)
    assert float(value) == pytest.approx(float(F.cross_entropy(logits, target)), rel=1e-6)
    assert float(value) == pytest.approx(200.0, rel=1e-6)


def test_in_place_backward_refuses_a_second_pass_in_float32():
    logits, target = make_batch("ignored", dtype=torch.float32)
    for fn in (lambda x: dice_loss(x, target), lambda x: logit_adjusted_cross_entropy(x, target, torch.zeros(K))):
        x = logits.clone().requires_grad_(True)
        value = fn(x)
        value.backward(retain_graph=True)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            value.backward()


def test_ohem_keeps_at_least_min_kept_least_confident_pixels():
    logits, target = make_batch("plain", seed=9)
    ce, _ = ref_ce_terms(logits, target)
    hardest = torch.sort(ce, descending=True).values
    # a threshold of 0 keeps only what min_kept asks for: the min_kept hardest pixels, less the k-th itself
    for min_kept in (1, 7, 30):
        assert float(ohem_cross_entropy(logits, target, 0.0, min_kept)) == pytest.approx(
            float(hardest[:min_kept].mean()), rel=1e-12)


# ---------------------------------------------------------------------- library references


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("kind", ["plain", "ignored", "absent", "one-class"])
def test_lovasz_equals_smp(per_image, kind):
    losses = pytest.importorskip("segmentation_models_pytorch.losses")
    logits, target = make_batch(kind, seed=12, dtype=torch.float32)  # smp's Lovász gradient is float32 only
    theirs = losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=IGNORE)
    x1, x2 = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    mine, reference = lovasz_softmax(x1, target, per_image), theirs(x2, target)
    assert float(mine.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    mine.backward()
    reference.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", ["plain", "ignored", "absent", "one-class"])
def test_dice_equals_monai(kind):
    monai_losses = pytest.importorskip("monai.losses")
    logits, target = make_batch(kind, seed=13)
    # MONAI: softmax, one-hot target, sums over the batch as well (batch=True), no smoothing, per
    # class; its ignore mask drops the ignored pixels. Our mean runs over the classes present.
    theirs = monai_losses.DiceLoss(softmax=True, to_onehot_y=True, batch=True, smooth_nr=0.0, smooth_dr=0.0,
                                   reduction="none", ignore_index=IGNORE)
    per_class = theirs(logits, target.unsqueeze(1)).reshape(-1)
    present = torch.bincount(target[target != IGNORE], minlength=K) > 0
    assert float(dice_loss(logits, target)) == pytest.approx(float(per_class[present].mean()), rel=1e-10)


@pytest.mark.parametrize("thresh, min_kept", [(0.7, 10), (0.3, 1), (0.9, 50), (0.5, 1000), (0.0, 20)])
@pytest.mark.parametrize("kind", ["plain", "ignored", "absent"])
def test_ohem_equals_the_mmsegmentation_rule(thresh, min_kept, kind):
    logits, target = make_batch(kind, seed=14)
    expected = mmseg_ohem_rule(logits, target, thresh, min_kept)
    assert float(ohem_cross_entropy(logits, target, thresh, min_kept)) == pytest.approx(float(expected), rel=1e-12)


# --------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize("call, match", [
    (lambda: class_balanced_weights(IMAGE_COUNTS, 1.0), r"^class-balanced beta must be in \[0, 1\), got 1.0$"),
    (lambda: class_balanced_weights(IMAGE_COUNTS, float("nan")), r"^class-balanced beta must be in \[0, 1\), got nan$"),
    (lambda: class_balanced_weights([0, 0], 0.5), r"^class counts are all zero$"),
    (lambda: class_balanced_weights([3, -1], 0.5),
     r"^class counts must be finite and non-negative, got \[3.0, -1.0\]$"),
    (lambda: logit_adjustment(PIXEL_COUNTS, -0.5), r"^logit-adjustment tau must be a finite number >= 0, got -0.5$"),
    (lambda: ohem_cross_entropy(*make_batch("plain"), thresh=1.5), r"^OHEM thresh must be in \[0, 1\], got 1.5$"),
    (lambda: OhemCrossEntropyLoss(min_kept=-3), r"^OHEM min_kept must be an integer >= 0, got -3$"),
    (lambda: OhemCrossEntropyLoss(min_kept=2.5), r"^OHEM min_kept must be an integer >= 0, got 2.5$"),
    (lambda: DiceCrossEntropyLoss(weight=-1), r"^Dice weight must be a finite number >= 0, got -1$"),
    (lambda: dice_cross_entropy(*make_batch("plain"), weight=float("inf")),
     r"^Dice weight must be a finite number >= 0, got inf$"),
    (lambda: LovaszSoftmaxLoss(per_image="yes"), r"^per_image must be True or False, got 'yes'$"),
    (lambda: ClassBalancedCrossEntropyLoss([1.0, -2.0]), r"^weight must be non-negative, got \[1.0, -2.0\]$"),
    (lambda: LogitAdjustedCrossEntropyLoss([[1.0]]), r"^adjustment must be a 1-D vector of finite numbers"),
    (lambda: lovasz_softmax(torch.randn(1, K, 2, 2), torch.full((1, 2, 2), 7)), r"target value 7 is outside \[0, 5\)"),
    (lambda: dice_loss(torch.randn(1, K, 2, 2), torch.full((1, 2, 2), -2)), r"target value -2 is outside \[0, 5\)"),
    (lambda: ohem_cross_entropy(torch.randn(1, K, 2, 2), torch.full((1, 2, 2), 9)), r"target value 9 is outside"),
    (lambda: logit_adjusted_cross_entropy(torch.randn(1, K, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long),
                                          torch.zeros(3)), r"adjustment must have shape \(5,\)"),
])
def test_bad_parameters_are_one_line_errors_naming_the_value(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- modules


@pytest.mark.parametrize("module, function", [
    (LovaszSoftmaxLoss(per_image=True), lambda x, y: lovasz_softmax(x, y, True)),
    (DiceLoss(), dice_loss),
    (DiceCrossEntropyLoss(0.5), lambda x, y: dice_cross_entropy(x, y, 0.5)),
    (ClassBalancedCrossEntropyLoss.from_class_counts(IMAGE_COUNTS, 0.99),
     lambda x, y: class_balanced_cross_entropy(x, y, class_balanced_weights(IMAGE_COUNTS, 0.99))),
    (LogitAdjustedCrossEntropyLoss.from_class_pixel_counts(PIXEL_COUNTS, 0.5),
     lambda x, y: logit_adjusted_cross_entropy(x, y, logit_adjustment(PIXEL_COUNTS, 0.5))),
    (OhemCrossEntropyLoss(0.6, 4), lambda x, y: ohem_cross_entropy(x, y, 0.6, 4)),
])
def test_modules_bind_the_functional_losses(module, function):
    logits, target = make_batch("ignored", seed=6, dtype=torch.float32)
    torch.testing.assert_close(module(logits, target), function(logits, target))
    assert isinstance(module, torch.nn.Module)


def test_modules_are_exported_at_the_top():
    import fairseg_bench

    assert fairseg_bench.LovaszSoftmaxLoss is LovaszSoftmaxLoss and fairseg_bench.DiceLoss is DiceLoss
    assert fairseg_bench.DiceCrossEntropyLoss is DiceCrossEntropyLoss
    assert fairseg_bench.ClassBalancedCrossEntropyLoss is ClassBalancedCrossEntropyLoss
    assert fairseg_bench.LogitAdjustedCrossEntropyLoss is LogitAdjustedCrossEntropyLoss
    assert fairseg_bench.OhemCrossEntropyLoss is OhemCrossEntropyLoss
