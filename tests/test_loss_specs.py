"""Loss specs: parsing, canonical labels, errors, and every registered loss building and training."""
import re

import numpy as np
import pytest
import torch

import fairseg_bench
from fairseg_bench.core import balanced, dice, lovasz, ohem
from fairseg_bench.core import losses as core
from fairseg_bench.errors import UserError
from fairseg_bench.loss_specs import available_losses, build_loss, build_sampler, format_shortest, parse_loss_spec

NUM_CLASSES = 5
COUNTS = np.array([500, 120, 40, 9, 1])
IMAGE_COUNTS = np.array([30, 25, 10, 4, 1])


def batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, NUM_CLASSES, 6, 7, generator=gen)
    target = torch.randint(NUM_CLASSES, (2, 6, 7), generator=gen)
    target[0, :2] = 255
    return logits, target


# ------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", available_losses())
def test_every_registered_loss_builds_and_trains(name):
    spec = parse_loss_spec(name)
    loss_fn = build_loss(spec, num_classes=NUM_CLASSES, class_pixel_counts=COUNTS, class_image_counts=IMAGE_COUNTS)
    assert isinstance(loss_fn, torch.nn.Module)
    logits, target = batch()
    logits.requires_grad_(True)
    loss = loss_fn(logits, target)
    loss.backward()
    assert loss.ndim == 0 and loss.dtype == torch.float32 and torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert spec.label == parse_loss_spec(spec.text).label and re.fullmatch(r"[a-z0-9.\-_]+", spec.label)


@pytest.mark.parametrize("name", available_losses())
def test_every_loss_takes_channels_last_logits_as_nchw(name):
    """A channels_last model's NHWC logits give every loss the same value and gradient as NCHW ones:
    those with ``channels_last_logits`` read them in place, the training loop copies them for the rest."""
    from fairseg_bench.engine import loss_input

    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        loss_fn = build_loss(name, num_classes=NUM_CLASSES, class_pixel_counts=COUNTS, class_image_counts=IMAGE_COUNTS)
        logits, target = batch(3)
        logits = logits.contiguous(memory_format=layout).requires_grad_(True)
        fed = loss_input(logits, loss_fn)
        if layout == torch.channels_last:
            assert not fed.is_contiguous() if loss_fn.channels_last_logits else fed.is_contiguous()
        loss = loss_fn(fed, target)
        loss.backward()
        results.append((loss.detach(), logits.grad.contiguous()))
    (nchw, grad_nchw), (nhwc, grad_nhwc) = results
    torch.testing.assert_close(nhwc, nchw, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad_nhwc, grad_nchw, rtol=1e-5, atol=1e-8)


def test_registry_names():
    assert set(available_losses()) == {"mcce", "wce", "focal", "tce", "tce-image", "tce-class", "tce-online", "rcs",
                                       "cus", "lovasz", "dice", "dice-ce", "cb", "la", "ohem"}
    assert fairseg_bench.build_loss is build_loss


@pytest.mark.parametrize(
    "text, cls, attrs",
    [
        ("mcce", core.CrossEntropyLoss, {}),
        ("tce:t=0.1", core.CrossEntropyLoss, {}),
        ("rcs", core.CrossEntropyLoss, {}),
        ("focal:gamma=1", core.FocalLoss, {"gamma": 1.0}),
        ("tce-image:t=0.5", core.TiltedCrossEntropy, {"t": 0.5, "level": "image"}),
        ("tce-class:t=-2", core.TiltedCrossEntropy, {"t": -2.0, "level": "class"}),
        ("tce-online:t=3,gamma=0.5", core.OnlineTiltedCrossEntropy,
         {"t": 3.0, "gamma": 0.5, "num_classes": NUM_CLASSES}),
        ("wce", core.WeightedCrossEntropyLoss, {}),
        ("tce:estimate=class", core.CrossEntropyLoss, {"track_class_stats": True}),
        ("tce", core.CrossEntropyLoss, {"track_class_stats": False}),
        ("lovasz", lovasz.LovaszSoftmaxLoss, {"per_image": False}),
        ("lovasz:per_image=true", lovasz.LovaszSoftmaxLoss, {"per_image": True}),
        ("dice", dice.DiceLoss, {}),
        ("dice-ce:weight=0.5", dice.DiceCrossEntropyLoss, {"weight": 0.5}),
        ("cb", balanced.ClassBalancedCrossEntropyLoss, {}),
        ("la:tau=2", balanced.LogitAdjustedCrossEntropyLoss, {}),
        ("ohem:thresh=0.9,min_kept=7", ohem.OhemCrossEntropyLoss, {"thresh": 0.9, "min_kept": 7}),
    ],
)
def test_specs_build_the_right_module(text, cls, attrs):
    module = build_loss(text, num_classes=NUM_CLASSES, class_pixel_counts=COUNTS, class_image_counts=IMAGE_COUNTS,
                        ignore_index=7)
    assert type(module) is cls and module.ignore_index == 7
    for key, value in attrs.items():
        assert getattr(module, key) == value


def test_class_weights_follow_the_counts():
    expected = 1 / (COUNTS / COUNTS.sum())
    expected = expected / expected.mean()
    wce = build_loss("wce", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS)
    assert wce.weight.numpy() == pytest.approx(expected, rel=1e-6)
    focal = build_loss("focal", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS)
    assert focal.alpha.numpy() == pytest.approx(expected, rel=1e-6) and focal.gamma == 2.0
    focal_sum = build_loss("focal:alpha=sum", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS)
    assert focal_sum.alpha.numpy() == pytest.approx(expected / expected.sum(), rel=1e-6)
    assert build_loss("focal:alpha=none", num_classes=NUM_CLASSES).alpha is None


def test_baseline_class_statistics_follow_the_counts():
    cb = build_loss("cb:beta=0.9", num_classes=NUM_CLASSES, class_image_counts=IMAGE_COUNTS)
    expected = (1 - 0.9) / (1 - 0.9 ** IMAGE_COUNTS.astype(float))
    assert cb.weight.numpy() == pytest.approx(expected / expected.mean(), rel=1e-6)
    cb_pixel = build_loss("cb:beta=0.99,unit=pixel", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS)
    expected = (1 - 0.99) / (1 - 0.99 ** COUNTS.astype(float))
    assert cb_pixel.weight.numpy() == pytest.approx(expected / expected.mean(), rel=1e-6)
    la = build_loss("la:tau=0.5", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS)
    assert la.adjustment.numpy() == pytest.approx(0.5 * np.log(COUNTS / COUNTS.sum()), rel=1e-6)


def test_class_counts_required_and_checked():
    for text in ("wce", "focal", "focal:gamma=1", "la", "cb:unit=pixel"):
        with pytest.raises(UserError, match="class_pixel_counts"):
            build_loss(text, num_classes=NUM_CLASSES, class_image_counts=IMAGE_COUNTS)
    with pytest.raises(UserError, match=r"loss 'cb' needs the class_image_counts"):
        build_loss("cb", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS)
    with pytest.raises(UserError, match=r"class_image_counts has shape \(4,\), expected \(5,\)"):
        build_loss("cb", num_classes=NUM_CLASSES, class_image_counts=IMAGE_COUNTS[:4])
    with pytest.raises(UserError, match=r"^loss 'la': class pixel counts are all zero$"):
        build_loss("la", num_classes=NUM_CLASSES, class_pixel_counts=np.zeros(5, int))
    with pytest.raises(UserError, match=r"shape \(4,\), expected \(5,\)"):
        build_loss("wce", num_classes=NUM_CLASSES, class_pixel_counts=COUNTS[:4])
    with pytest.raises(UserError, match="all zero"):
        build_loss("wce", num_classes=NUM_CLASSES, class_pixel_counts=np.zeros(5, int))


# ------------------------------------------------------------------------------- parsing

BATCH = {"estimate": "batch"}


@pytest.mark.parametrize(
    "text, name, params, label, sampler",
    [
        ("mcce", "mcce", {}, "mcce", None),
        ("MCCE", "mcce", {}, "mcce", None),
        ("wce", "wce", {}, "wce", None),
        ("focal", "focal", {"gamma": 2.0, "alpha": "mean"}, "focal", None),
        ("focal:gamma=2", "focal", {"gamma": 2.0, "alpha": "mean"}, "focal", None),
        ("focal:gamma=1", "focal", {"gamma": 1.0, "alpha": "mean"}, "focal-g1", None),
        ("focal:gamma=0.5,alpha=sum", "focal", {"gamma": 0.5, "alpha": "sum"}, "focal-g0.5-asum", None),
        ("focal: alpha=none , gamma=0", "focal", {"gamma": 0.0, "alpha": "none"}, "focal-g0-anone", None),
        ("tce", "tce", {"t": 1.0, "floor": 0.0, "min_pixels": 1, **BATCH}, "tce-t1", "tce"),
        ("tce:t=1", "tce", {"t": 1.0, "floor": 0.0, "min_pixels": 1, **BATCH}, "tce-t1", "tce"),
        ("tce:t=0.1", "tce", {"t": 0.1, "floor": 0.0, "min_pixels": 1, **BATCH}, "tce-t0.1", "tce"),
        ("tce:t=1e-5", "tce", {"t": 1e-5, "floor": 0.0, "min_pixels": 1, **BATCH}, "tce-t1e-05", "tce"),
        ("tce:min_pixels=10,gamma=0.05,floor=0.1,t=2",
         "tce", {"t": 2.0, "gamma": 0.05, "floor": 0.1, "min_pixels": 10, **BATCH}, "tce-t2-g0.05-floor0.1-minpx10",
         "tce"),
        ("tce:estimate=class", "tce", {"t": 1.0, "floor": 0.0, "min_pixels": 1, "estimate": "class"},
         "tce-t1-estclass", "tce"),
        ("tce:estimate=batch", "tce", {"t": 1.0, "floor": 0.0, "min_pixels": 1, **BATCH}, "tce-t1", "tce"),
        ("lovasz", "lovasz", {"per_image": "false"}, "lovasz", None),
        ("lovasz:per_image=true", "lovasz", {"per_image": "true"}, "lovasz-perimagetrue", None),
        ("dice", "dice", {}, "dice", None),
        ("dice-ce", "dice-ce", {"weight": 1.0}, "dice-ce", None),
        ("dice-ce:weight=0.5", "dice-ce", {"weight": 0.5}, "dice-ce-w0.5", None),
        ("cb", "cb", {"beta": 0.999, "unit": "image"}, "cb", None),
        ("cb:beta=0.99,unit=pixel", "cb", {"beta": 0.99, "unit": "pixel"}, "cb-b0.99-upixel", None),
        ("la", "la", {"tau": 1.0}, "la", None),
        ("la:tau=0", "la", {"tau": 0.0}, "la-tau0", None),
        ("ohem", "ohem", {"thresh": 0.7, "min_kept": 100000}, "ohem", None),
        ("ohem:thresh=1,min_kept=0", "ohem", {"thresh": 1.0, "min_kept": 0}, "ohem-thr1-minkept0", None),
        ("tce-image:t=1", "tce-image", {"t": 1.0}, "tce-image-t1", None),
        ("tce-image:t=0.5", "tce-image", {"t": 0.5}, "tce-image-t0.5", None),
        ("tce-class:t=-1", "tce-class", {"t": -1.0}, "tce-class-t-1", None),
        ("tce-online:t=1", "tce-online", {"t": 1.0, "gamma": 0.1}, "tce-online-t1", None),
        ("tce-online:t=1,gamma=0.3", "tce-online", {"t": 1.0, "gamma": 0.3}, "tce-online-t1-g0.3", None),
        ("rcs", "rcs", {"min_pixels": 1}, "rcs", "rcs"),
        ("cus", "cus", {"min_pixels": 1}, "cus", "cus"),
        ("rcs:temperature=0.1", "rcs", {"temperature": 0.1, "min_pixels": 1}, "rcs-temp0.1", "rcs"),
    ],
)
def test_parse_and_label(text, name, params, label, sampler):
    spec = parse_loss_spec(text)
    assert (spec.name, dict(spec.params), spec.label, spec.sampler) == (name, params, label, sampler)
    again = parse_loss_spec(spec.text)  # canonical text round-trips
    assert again == spec and again.label == spec.label and hash(again) == hash(spec)
    assert parse_loss_spec(spec) is spec
    with pytest.raises(TypeError):
        spec.params["t"] = 3.0  # read-only


def test_labels_are_deterministic_and_distinct():
    texts = ["mcce", "wce", "focal", "focal:gamma=1", "tce:t=0.1", "tce:t=1", "tce-image:t=1", "tce-class:t=1",
             "tce-online:t=1", "rcs", "tce:t=-1", "tce:t=0.01", "tce:estimate=class", "lovasz", "lovasz:per_image=true",
             "dice", "dice-ce", "dice-ce:weight=2", "cb", "cb:unit=pixel", "la", "la:tau=0.5", "ohem",
             "ohem:thresh=0.9"]
    labels = [parse_loss_spec(text).label for text in texts]
    assert len(set(labels)) == len(labels)
    assert labels == [parse_loss_spec(text).label for text in texts]


@pytest.mark.parametrize(
    "value, text",
    [(0.1, "0.1"), (1.0, "1"), (1e-5, "1e-05"), (2.5, "2.5"), (-2.0, "-2"), (1e20, "1e20"), (100000.0, "100000"),
     (10, "10")],
)
def test_format_shortest(value, text):
    assert format_shortest(value) == text
    assert float(text) == value


@pytest.mark.parametrize(
    "text, match",
    [
        ("tce:t", r"malformed loss spec 'tce:t'.*valid: mcce; wce; focal"),
        ("tce:t=abc", r"t='abc' is not a number"),
        ("tce:=1", r"malformed loss spec 'tce:=1'"),
        (":t=1", r"unknown loss '' .*valid: mcce"),
        ("tce:", r"malformed loss spec 'tce:'"),
        ("tce:t=1,", r"malformed"),
        ("tce:t=1,t=2", r"'t' given twice"),
        ("focal:gamma=1,gamma=1", r"'gamma' given twice"),
        ("lovasz-hinge", r"unknown loss 'lovasz-hinge'.*valid: .*tce-online.*; ohem:thresh=...,min_kept=..."),
        ("lovasz:per_image=yes", r"^loss parameter per_image='yes' must be one of: false, true$"),
        ("dice:weight=1", r"unknown parameter 'weight' for loss 'dice'.*valid: none"),
        ("dice-ce:weight=-0.5", r"^loss parameter weight=-0.5 must be >= 0$"),
        ("dice-ce:weight=inf", r"^loss parameter weight=inf must be a finite number$"),
        ("cb:beta=1", r"^loss parameter beta=1.0 must be in \[0, 1\)$"),
        ("cb:beta=-0.1", r"^loss parameter beta=-0.1 must be in \[0, 1\)$"),
        ("cb:unit=batch", r"^loss parameter unit='batch' must be one of: image, pixel$"),
        ("la:tau=-1", r"^loss parameter tau=-1.0 must be >= 0$"),
        ("la:tau=nan", r"^loss parameter tau=nan must be a finite number$"),
        ("ohem:thresh=1.5", r"^loss parameter thresh=1.5 must be in \[0, 1\]$"),
        ("ohem:min_kept=-1", r"^loss parameter min_kept=-1 must be >= 0$"),
        ("ohem:min_kept=0.5", r"^loss parameter min_kept='0.5' is not an integer$"),
        ("tce:estimate=image", r"^loss parameter estimate='image' must be one of: batch, class$"),
        ("tce:temperature=1",
         r"unknown parameter 'temperature' for loss 'tce'.*valid: t, gamma, floor, min_pixels, estimate"),
        ("mcce:t=1", r"unknown parameter 't' for loss 'mcce'.*valid: none"),
        ("tce:t=nan", r"t=nan must be a finite number"),
        ("tce-class:t=inf", r"t=inf must be a finite number"),
        ("focal:gamma=-1", r"gamma=-1.0 must be >= 0"),
        ("tce:gamma=0", r"gamma=0.0 must be in \(0, 1\]"),
        ("tce:gamma=1.5", r"gamma=1.5 must be in \(0, 1\]"),
        ("tce-online:gamma=nan", r"gamma=nan must be in \(0, 1\]"),
        ("tce:floor=1", r"floor=1.0 must be in \[0, 1\)"),
        ("tce:min_pixels=1.5", r"min_pixels='1.5' is not an integer"),
        ("tce:min_pixels=0", r"min_pixels=0 must be >= 1"),
        ("rcs:temperature=0", r"temperature=0.0 must be > 0"),
        ("focal:alpha=max", r"alpha='max' must be one of: mean, sum, none"),
        (3, r"must be text"),
    ],
)
def test_bad_specs(text, match):
    with pytest.raises(UserError, match=match):
        parse_loss_spec(text)


# ------------------------------------------------------------------------------ samplers


def _class_index():
    from fairseg_bench.core.class_index import ClassIndex

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(40, NUM_CLASSES))
    counts[:, 0] += 1
    return ClassIndex(counts)


@pytest.mark.parametrize(
    "text, cls_name, attrs",
    [
        ("tce:t=0.5,gamma=0.05,floor=0.1", "StochasticTCESampler", {"t": 0.5, "gamma": 0.05, "floor": 0.1}),
        ("tce", "StochasticTCESampler", {"t": 1.0, "floor": 0.0, "estimate": "batch"}),
        ("tce:estimate=class", "StochasticTCESampler", {"estimate": "class"}),
        ("lovasz", "UniformBatchSampler", {}),
        ("rcs:temperature=0.3", "RareClassSampler", {"temperature": 0.3}),
        ("rcs", "RareClassSampler", {}),
        ("cus", "ClassUniformSampler", {"min_pixels": 1}),
        ("mcce", "UniformBatchSampler", {}),
        ("focal:gamma=1", "UniformBatchSampler", {}),
        ("tce-online:t=1", "UniformBatchSampler", {}),
    ],
)
def test_build_sampler(text, cls_name, attrs):
    from fairseg_bench.core import sampling

    sampler = build_sampler(text, class_index=_class_index(), batch_size=4, num_batches=6, seed=3)
    assert type(sampler) is getattr(sampling, cls_name)
    for key, value in attrs.items():
        assert getattr(sampler, key) == value
    batches = list(sampler)
    assert len(batches) == len(sampler) == 6
    assert all(len(b) == 4 and all(0 <= i < 40 for i in b) for b in batches)
    again = build_sampler(text, class_index=_class_index(), batch_size=4, num_batches=6, seed=3)
    assert list(again) == batches


def test_parsing_needs_no_torch():
    """The CLI and the report layer read labels without importing torch."""
    import subprocess
    import sys

    code = ("import sys, fairseg_bench.loss_specs as l; l.parse_loss_spec('tce:t=0.1').label; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
