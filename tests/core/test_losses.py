"""The loss family against float64 references written from the paper's formulas, and properties.

The references below use plain Python floats and explicit loops over images, classes and
pixels (eq. 1-3 of the TCE paper, the focal loss definition, docs/definitions.md), independent of the
vectorised implementation.
"""
import math

import pytest
import torch

from fairseg_bench.core import losses as L

IGNORE = 255


# ------------------------------------------------------------------------------ references


def ref_pixel_ces(logits, target, ignore_index=IGNORE):
    """{image: [(class, CE), ...]} over the valid pixels, by log-sum-exp in Python floats."""
    n, c, h, w = logits.shape
    values = logits.detach().double().tolist()
    labels = target.tolist()
    out = {m: [] for m in range(n)}
    for m in range(n):
        for i in range(h):
            for j in range(w):
                y = labels[m][i][j]
                if y == ignore_index:
                    continue
                row = [values[m][k][i][j] for k in range(c)]
                top = max(row)
                lse = top + math.log(sum(math.exp(v - top) for v in row))
                out[m].append((y, lse - row[y]))
    return out


def ref_tilt(values, t):
    """(1/t) log((1/n) sum exp(t v)), the plain mean at t = 0 (TERM / eq. 2-3)."""
    if t == 0:
        return sum(values) / len(values)
    top = max(t * v for v in values)
    return (top + math.log(sum(math.exp(t * v - top) for v in values) / len(values))) / t


def ref_mcce(logits, target):
    ces = [ce for pixels in ref_pixel_ces(logits, target).values() for _, ce in pixels]
    return sum(ces) / len(ces) if ces else 0.0


def ref_weighted(logits, target, weight):
    pixels = [p for pixels in ref_pixel_ces(logits, target).values() for p in pixels]
    return sum(weight[y] * ce for y, ce in pixels) / sum(weight[y] for y, _ in pixels)


def ref_focal(logits, target, gamma, alpha=None):
    pixels = [p for pixels in ref_pixel_ces(logits, target).values() for p in pixels]
    total = 0.0
    for y, ce in pixels:
        p = math.exp(-ce)
        total += (1.0 if alpha is None else alpha[y]) * (1 - p) ** gamma * ce
    return total / len(pixels)


def ref_image_tce(logits, target, t):
    image_losses = [sum(ce for _, ce in px) / len(px) for px in ref_pixel_ces(logits, target).values() if px]
    return ref_tilt(image_losses, t)


def ref_class_losses(pixels):
    """{class: mean CE} over a list of (class, CE)."""
    by_class = {}
    for y, ce in pixels:
        by_class.setdefault(y, []).append(ce)
    return {y: sum(v) / len(v) for y, v in by_class.items()}


def ref_class_tce(logits, target, t):
    per_image = [ref_tilt(list(ref_class_losses(px).values()), t)
                 for px in ref_pixel_ces(logits, target).values() if px]
    return sum(per_image) / len(per_image)


def ref_inverse_frequency(counts):
    total = sum(counts)
    inverse = [total / n if n > 0 else 0.0 for n in counts]
    seen = [v for n, v in zip(counts, inverse) if n > 0]
    mean = sum(seen) / len(seen)
    return [v / mean for v in inverse]


# ---------------------------------------------------------------------------------- inputs


def make_batch(seed=0, n=3, c=5, h=4, w=6, ignore_share=0.25, dtype=torch.float64, empty_image=None):
    """Random logits; targets with ignored pixels, and each image missing some classes."""
    gen = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, h, w, generator=gen) * 2).to(dtype)
    target = torch.empty(n, h, w, dtype=torch.int64)
    for m in range(n):
        classes = torch.randperm(c, generator=gen)[: max(1, c - 1 - m)]  # image m lacks >= m+1 classes
        target[m] = classes[torch.randint(len(classes), (h, w), generator=gen)]
    target[torch.rand(n, h, w, generator=gen) < ignore_share] = IGNORE
    if empty_image is not None:
        target[empty_image] = IGNORE
    return logits, target


def class_counts(target, c):
    return torch.bincount(target[target != IGNORE], minlength=c)


FUNCTIONAL = {
    "mcce": lambda x, y: L.mcce(x, y),
    "wce": lambda x, y: L.weighted_cross_entropy(x, y, torch.tensor([0.5, 2.0, 1.0, 0.25, 1.25])),
    "focal": lambda x, y: L.focal_loss(x, y, 2.0, torch.tensor([0.5, 2.0, 1.0, 0.25, 1.25])),
    "focal-g0.5": lambda x, y: L.focal_loss(x, y, 0.5),
    "tce-image": lambda x, y: L.image_tilted_cross_entropy(x, y, 0.7),
    "tce-image-neg": lambda x, y: L.image_tilted_cross_entropy(x, y, -1.3),
    "tce-class": lambda x, y: L.class_tilted_cross_entropy(x, y, 0.7),
    "tce-class-neg": lambda x, y: L.class_tilted_cross_entropy(x, y, -1.3),
    "tce-class-t0": lambda x, y: L.class_tilted_cross_entropy(x, y, 0.0),
    "tce-online": lambda x, y: L.OnlineTiltedCrossEntropy(5, t=0.7)(x, y),
}


# ------------------------------------------------------------------------ against references


@pytest.mark.parametrize("seed", [0, 1])
def test_mcce_matches_eq1(seed):
    logits, target = make_batch(seed)
    assert L.mcce(logits, target).item() == pytest.approx(ref_mcce(logits, target), rel=1e-12)
    assert L.CrossEntropyLoss()(logits, target).item() == pytest.approx(ref_mcce(logits, target), rel=1e-12)


def test_inverse_frequency_weights_hand_computed():
    # frequencies .1, .3, 0, .6 -> inverses 10, 10/3, -, 5/3 (mean 5 over seen classes)
    got = L.inverse_frequency_weights([10, 30, 0, 60])
    assert got.tolist() == pytest.approx([2.0, 2 / 3, 0.0, 1 / 3], rel=1e-6)
    assert got.dtype == torch.float32
    alpha_sum = L.focal_alpha([10, 30, 0, 60], "sum")
    assert alpha_sum.sum().item() == pytest.approx(1.0)
    assert alpha_sum.tolist() == pytest.approx([2 / 3, 2 / 9, 0.0, 1 / 9], rel=1e-6)


def test_weighted_ce_matches_reference():
    logits, target = make_batch(2)
    counts = class_counts(target, 5).tolist()
    weight = ref_inverse_frequency(counts)
    loss = L.WeightedCrossEntropyLoss.from_class_pixel_counts(counts)
    assert loss(logits, target).item() == pytest.approx(ref_weighted(logits, target, weight), rel=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_focal_matches_definition(gamma, with_alpha):
    logits, target = make_batch(3)
    alpha = [0.5, 2.0, 1.0, 0.25, 1.25] if with_alpha else None
    got = L.FocalLoss(gamma, alpha)(logits, target)
    expected = ref_focal(logits, target, gamma, alpha)
    # alpha is stored as float32, hence the tolerance
    assert got.item() == pytest.approx(expected, rel=1e-6 if with_alpha else 1e-12)


@pytest.mark.parametrize("t", [-2.0, -0.3, 0.0, 0.1, 1.0, 4.0])
@pytest.mark.parametrize("seed", [0, 4])
def test_image_tce_matches_eq2(t, seed):
    logits, target = make_batch(seed, empty_image=1 if seed else None)
    got = L.TiltedCrossEntropy(t, level="image")(logits, target)
    assert got.item() == pytest.approx(ref_image_tce(logits, target, t), rel=1e-10)


@pytest.mark.parametrize("t", [-2.0, -0.3, 0.0, 0.1, 1.0, 4.0])
@pytest.mark.parametrize("seed", [0, 5])
def test_class_tce_matches_eq3(t, seed):
    logits, target = make_batch(seed, empty_image=2 if seed else None)
    got = L.TiltedCrossEntropy(t, level="class")(logits, target)
    assert got.item() == pytest.approx(ref_class_tce(logits, target, t), rel=1e-10)


def test_float32_inputs_match_float64_reference():
    logits, target = make_batch(6, dtype=torch.float32)
    for t in (-1.0, 0.5):
        assert L.image_tilted_cross_entropy(logits, target, t).item() == pytest.approx(
            ref_image_tce(logits, target, t), rel=1e-5)
        assert L.class_tilted_cross_entropy(logits, target, t).item() == pytest.approx(
            ref_class_tce(logits, target, t), rel=1e-5)
    assert L.focal_loss(logits, target).item() == pytest.approx(ref_focal(logits, target, 2.0), rel=1e-5)


# ----------------------------------------------------------------------------- online TCE


def test_online_tce_follows_the_ema_step_by_step():
    """Per batch: R_c, L~_c <- (1-γ) L~_c + γ e^{t R_c} (first sight: e^{t R_c}), w over present."""
    t, gamma = 0.8, 0.3
    loss = L.OnlineTiltedCrossEntropy(5, t=t, gamma=gamma)
    tilted = {}  # class -> L~_c, in plain (not log) space: the values stay small here
    for step in range(4):
        logits, target = make_batch(10 + step)
        pixels = [p for px in ref_pixel_ces(logits, target).values() for p in px]
        class_means = ref_class_losses(pixels)
        for c, r in class_means.items():
            tilted[c] = math.exp(t * r) if c not in tilted else (1 - gamma) * tilted[c] + gamma * math.exp(t * r)
        norm = sum(tilted[c] for c in class_means)
        expected = sum(tilted[c] / norm * r for c, r in class_means.items())
        assert loss(logits, target).item() == pytest.approx(expected, rel=1e-10)
        for c, value in tilted.items():
            assert loss.log_ema[c].item() == pytest.approx(math.log(value), rel=1e-10)
        assert loss.seen.tolist() == [c in tilted for c in range(5)]


def test_online_tce_state_round_trip_and_eval_mode():
    batches = [make_batch(20 + i) for i in range(3)]
    first = L.OnlineTiltedCrossEntropy(5, t=2.0, gamma=0.5)
    for logits, target in batches[:2]:
        first(logits, target)
    second = L.OnlineTiltedCrossEntropy(5, t=2.0, gamma=0.5)
    second.load_state_dict(first.state_dict())
    assert set(first.state_dict()) == {"log_ema", "seen"}
    logits, target = batches[2]
    first.eval()
    frozen = first.log_ema.clone()
    value = first(logits, target)
    assert torch.equal(first.log_ema, frozen)  # eval mode only reads the state
    first.train()
    assert first(logits, target).item() == pytest.approx(second(logits, target).item(), rel=1e-12)
    assert torch.equal(first.log_ema, second.log_ema)
    assert value.item() != pytest.approx(first(logits, target).item(), rel=1e-9)  # state moved on


def test_online_tce_at_t0_is_class_balanced_ce():
    logits, target = make_batch(7)
    pixels = [p for px in ref_pixel_ces(logits, target).values() for p in px]
    means = list(ref_class_losses(pixels).values())
    assert L.OnlineTiltedCrossEntropy(5, t=0.0)(logits, target).item() == pytest.approx(
        sum(means) / len(means), rel=1e-12)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_gradcheck_float64(name):
    logits, target = make_batch(8, n=2, c=5, h=2, w=3, ignore_share=0.2)
    logits.requires_grad_(True)
    fn = FUNCTIONAL[name]
    if name == "tce-online":  # fix the state, then check the gradient of the (frozen) loss
        module = L.OnlineTiltedCrossEntropy(5, t=0.7)
        module(logits.detach(), target)
        module.eval()
        fn = module
    assert torch.autograd.gradcheck(lambda x: fn(x, target), (logits,))


def loss_and_gradient(fn, logits, target):
    """``fn(logits, target)`` and its gradient with respect to (a copy of) ``logits``, in their layout."""
    x = logits.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
    loss = fn(x, target)
    loss.backward()
    return loss, x.grad


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_nhwc_logits_give_the_nchw_value_and_gradient(name):
    """NHWC logits (a channels_last model's) go through the CE as a (pixels, C) matrix, read in place."""
    logits, target = make_batch(10)
    nhwc = logits.contiguous(memory_format=torch.channels_last)
    assert L._is_channels_last(nhwc) and not L._is_channels_last(logits)
    (loss_a, grad_a), (loss_b, grad_b) = (loss_and_gradient(FUNCTIONAL[name], x, target) for x in (logits, nhwc))
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-12, atol=1e-14)
    if name == "mcce":
        assert loss_b.item() == pytest.approx(ref_mcce(logits, target), rel=1e-12)


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_ignored_pixels_never_change_loss_or_gradient(name):
    logits, target = make_batch(9, empty_image=0)
    ignored = (target == IGNORE).unsqueeze(1).expand_as(logits)
    other = logits.clone()
    other[ignored] = torch.randn(int(ignored.sum()), dtype=logits.dtype) * 50
    (loss_a, grad_a), (loss_b, grad_b) = (loss_and_gradient(FUNCTIONAL[name], x, target) for x in (logits, other))
    assert loss_a.item() == loss_b.item()
    assert torch.equal(grad_a[~ignored], grad_b[~ignored])
    assert torch.count_nonzero(grad_a[ignored]) == 0 and torch.count_nonzero(grad_b[ignored]) == 0


# ----------------------------------------------------------------------------- properties


def test_tilt_zero_limit_is_mcce():
    logits, target = make_batch(11, ignore_share=0.0)  # eq. 2 with full images: 1/N per image
    mcce = L.mcce(logits, target).item()
    assert L.image_tilted_cross_entropy(logits, target, 0.0).item() == pytest.approx(mcce, rel=1e-12)
    assert L.image_tilted_cross_entropy(logits, target, 1e-7).item() == pytest.approx(mcce, rel=1e-12)
    # continuity across the fallback threshold (|t| < 1e-6), for both levels and both signs
    logits, target = make_batch(12)
    for level in ("image", "class"):
        at_zero = L.tilted_cross_entropy(logits, target, 0.0, level).item()
        assert L.tilted_cross_entropy(logits, target, 1e-7, level).item() == pytest.approx(at_zero, rel=1e-12)
        for t in (1e-5, -1e-5):
            assert L.tilted_cross_entropy(logits, target, t, level).item() == pytest.approx(at_zero, rel=1e-4)
    assert L.tilted_cross_entropy(logits, target, 0.0, "image").item() != pytest.approx(
        L.mcce(logits, target).item(), rel=1e-6)


def test_large_tilt_approaches_worst_and_best_image():
    logits, target = make_batch(13, n=4)
    per_image = [sum(ce for _, ce in px) / len(px) for px in ref_pixel_ces(logits, target).values()]
    worst, best = max(per_image), min(per_image)
    # TERM: the tilted mean lies between the extreme and the extreme -+ log(M) / |t|
    slack = math.log(4) / 400 + 1e-12
    assert worst - slack <= L.image_tilted_cross_entropy(logits, target, 400.0).item() <= worst
    assert best <= L.image_tilted_cross_entropy(logits, target, -400.0).item() <= best + slack
    assert (L.image_tilted_cross_entropy(logits, target, 400.0).item()
            > L.image_tilted_cross_entropy(logits, target, 1.0).item())


@pytest.mark.parametrize("name", ["tce-image", "tce-class", "tce-online"])
@pytest.mark.parametrize("t", [100.0, -100.0])
def test_no_overflow_at_t_times_loss_1e3(name, t):
    logits, target = make_batch(14, dtype=torch.float32)
    logits = (logits * 8).requires_grad_(True)  # CE of order 10 -> t*L of order 1e3
    assert L.mcce(logits, target).item() * abs(t) > 500
    build = {"tce-image": lambda: L.TiltedCrossEntropy(t, "image"),
             "tce-class": lambda: L.TiltedCrossEntropy(t, "class"),
             "tce-online": lambda: L.OnlineTiltedCrossEntropy(5, t=t)}[name]
    loss = build()(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_image_with_only_ignored_pixels_is_skipped(name):
    logits, target = make_batch(15, empty_image=1)
    x = logits.clone().requires_grad_(True)
    loss = FUNCTIONAL[name](x, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert torch.count_nonzero(x.grad[1]) == 0
    if name != "tce-online":  # the online state makes a second call differ
        kept = [0, 2]
        assert loss.item() == pytest.approx(FUNCTIONAL[name](logits[kept], target[kept]).item(), rel=1e-12)


@pytest.mark.parametrize("name", list(FUNCTIONAL))
def test_batch_with_no_valid_pixel_gives_zero_not_nan(name):
    logits, target = make_batch(16)
    target[:] = IGNORE
    x = logits.clone().requires_grad_(True)
    loss = FUNCTIONAL[name](x, target)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(x.grad) == 0 and torch.isfinite(x.grad).all()


def test_focal_gamma0_alpha1_is_mcce():
    logits, target = make_batch(17)
    mcce = L.mcce(logits, target).item()
    assert L.FocalLoss(0.0)(logits, target).item() == pytest.approx(mcce, rel=1e-12)
    assert L.FocalLoss(0.0, alpha=[1.0] * 5)(logits, target).item() == pytest.approx(mcce, rel=1e-7)


def test_focal_gradient_finite_on_confident_pixels_below_gamma_one():
    """CE is exactly 0 on very confident pixels; (1-p)^γ with γ < 1 must not give 0·inf = NaN."""
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 0] = 200.0
    target = torch.zeros(1, 2, 2, dtype=torch.int64)
    target[0, 0, 0] = 1
    x = logits.clone().requires_grad_(True)
    L.focal_loss(x, target, gamma=0.5).backward()
    assert torch.isfinite(x.grad).all() and x.grad[0, :, 0, 0].abs().sum() > 0


def test_half_precision_and_autocast_compute_in_float32():
    logits, target = make_batch(18, dtype=torch.float32)
    for fn in (lambda x: L.class_tilted_cross_entropy(x, target, 1.0),
               lambda x: L.image_tilted_cross_entropy(x, target, -1.0),
               lambda x: L.focal_loss(x, target), lambda x: L.mcce(x, target)):
        full = fn(logits)
        half = fn(logits.to(torch.bfloat16))
        assert half.dtype == torch.float32
        assert half.item() == pytest.approx(full.item(), rel=2e-2)
    conv = torch.nn.Conv2d(5, 5, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(logits)
        assert out.dtype == torch.bfloat16
        loss = L.class_tilted_cross_entropy(out, target, 1.0)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize("ignore_index", [-100, 0, 4, 5, 9999])
def test_other_ignore_index(ignore_index):
    """An ignore index below, inside or far above the class range (0 and 4 are class ids)."""
    logits, target = make_batch(19)
    other = target.clone()
    other[target == IGNORE] = ignore_index
    reference = ref_pixel_ces(logits, other, ignore_index)
    per_image = [ref_tilt(list(ref_class_losses(px).values()), 1.0) for px in reference.values() if px]
    weight = torch.tensor([0.5, 2.0, 1.0, 0.25, 1.25], dtype=torch.float64)
    pixels = [p for px in reference.values() for p in px]
    assert L.class_tilted_cross_entropy(logits, other, 1.0, ignore_index).item() == pytest.approx(
        sum(per_image) / len(per_image), rel=1e-12)
    assert L.weighted_cross_entropy(logits, other, weight, ignore_index).item() == pytest.approx(
        sum(weight[y].item() * ce for y, ce in pixels) / sum(weight[y].item() for y, _ in pixels), rel=1e-12)
    assert L.focal_loss(logits, other, 2.0, ignore_index=ignore_index).item() == pytest.approx(
        sum((1 - math.exp(-ce)) ** 2 * ce for _, ce in pixels) / len(pixels), rel=1e-12)
    online = L.OnlineTiltedCrossEntropy(5, t=0.0, ignore_index=ignore_index)
    means = ref_class_losses(pixels)
    assert online(logits, other).item() == pytest.approx(sum(means.values()) / len(means), rel=1e-12)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x, y: (x[0], y), r"4-D"),
        (lambda x, y: (x, y[:, :2]), r"target shape"),
        (lambda x, y: (x, y.unsqueeze(1)), r"target shape"),
        (lambda x, y: (x, y.int()), r"int64.*torch.int32"),
        (lambda x, y: (x.long(), y), r"floating point"),
        (lambda x, y: (x, torch.where(y == 0, 5, y)), r"target value 5 .*\[0, 5\)"),
        (lambda x, y: (x, torch.where(y == 0, 200, y)), r"target value 200"),
        (lambda x, y: (x, torch.where(y == 0, -1, y)), r"target value -1"),
    ],
)
@pytest.mark.parametrize("name", ["mcce", "wce", "focal", "tce-image", "tce-class", "tce-online"])
def test_bad_inputs_raise_value_error(make, match, name):
    logits, target = make(*make_batch(21, empty_image=None))
    with pytest.raises(ValueError, match=match):
        FUNCTIONAL[name](logits, target)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "abc"])
def test_non_finite_tilt_rejected(bad):
    with pytest.raises(ValueError, match=f"tilt t must be a finite number, got {bad!r}"):
        L.TiltedCrossEntropy(bad)
    with pytest.raises(ValueError, match="tilt t"):
        L.OnlineTiltedCrossEntropy(5, t=bad)


def test_negative_tilt_is_valid():
    logits, target = make_batch(22)
    assert math.isfinite(L.TiltedCrossEntropy(-3.0, "class")(logits, target).item())


@pytest.mark.parametrize("gamma", [-0.5, float("nan"), float("inf")])
def test_focal_gamma_must_be_non_negative(gamma):
    with pytest.raises(ValueError, match=f"gamma must be .*{gamma}"):
        L.FocalLoss(gamma)


@pytest.mark.parametrize("gamma", [0.0, -0.1, 1.5, float("nan")])
def test_ema_rate_must_be_in_unit_interval(gamma):
    with pytest.raises(ValueError, match=f"gamma must be in \\(0, 1\\], got {gamma}"):
        L.OnlineTiltedCrossEntropy(5, gamma=gamma)


def test_other_bad_arguments():
    logits, target = make_batch(23)
    with pytest.raises(ValueError, match="'pixel'"):
        L.TiltedCrossEntropy(1.0, level="pixel")
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\)"):
        L.weighted_cross_entropy(logits, target, torch.ones(4))
    with pytest.raises(ValueError, match=r"alpha must have shape \(5,\)"):
        L.focal_loss(logits, target, alpha=torch.ones(6))
    with pytest.raises(ValueError, match="negative"):
        L.inverse_frequency_weights([3, -1])
    with pytest.raises(ValueError, match="all zero"):
        L.inverse_frequency_weights([0, 0])
    with pytest.raises(ValueError, match="built for 4"):
        L.OnlineTiltedCrossEntropy(4)(logits, target)


def test_check_inputs_reports_the_bad_value_and_returns_the_mask():
    logits, target = make_batch(24)
    assert torch.equal(L.check_inputs(logits, target), target != IGNORE)
    target[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"target value 7 is outside \[0, 5\)"):
        L.check_inputs(logits, target)
    L.check_target_range(target, 8)  # 7 is a class when there are 8


# ------------------------------------------------------------------------------ distributed


def _online_rank(rank, world_size, init_file, out_file):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    loss = L.OnlineTiltedCrossEntropy(5, t=1.5, gamma=0.4)
    for step in range(3):
        logits, target = make_batch(100 + 10 * step + rank)  # each rank its own images
        loss(logits, target)
    states = [torch.zeros(5, dtype=torch.float64) for _ in range(world_size)]
    dist.all_gather(states, loss.log_ema)
    if rank == 0:
        torch.save(torch.stack(states), out_file)
    dist.destroy_process_group()


def test_online_state_is_identical_across_ranks_and_pools_their_pixels(tmp_path):
    """Under torch.distributed the EMA folds in the class means of all ranks' pixels together."""
    world_size = 2
    torch.multiprocessing.spawn(_online_rank, args=(world_size, str(tmp_path / "init"), str(tmp_path / "states.pt")),
                                nprocs=world_size)
    states = torch.load(tmp_path / "states.pt")
    assert torch.equal(states[0], states[1])
    single = L.OnlineTiltedCrossEntropy(5, t=1.5, gamma=0.4)
    for step in range(3):
        pairs = [make_batch(100 + 10 * step + rank) for rank in range(world_size)]
        single.update(*_pooled_sums_and_counts(pairs))
    assert torch.allclose(states[0], single.log_ema, rtol=1e-12, atol=1e-12)


def _pooled_sums_and_counts(pairs):
    sums, counts = torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    for logits, target in pairs:
        for pixels in ref_pixel_ces(logits, target).values():
            for y, ce in pixels:
                sums[y] += ce
                counts[y] += 1
    return sums, counts
