"""Every registered model: logits at input resolution, a backward step; sizes; offline pretrained."""
from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F

from fairseg_bench.errors import UserError
from fairseg_bench.models import DEEPLABV3PLUS_R101_REFERENCE_PARAMS, available_models, build_model

# The ResNet models take several seconds per forward/backward on a shared 2-core CPU, and
# LR-ASPP's dilated depthwise convolutions fall on a slow CPU path (~10-30 s measured under load).
SLOW = {"deeplabv3plus_resnet101", "deeplabv3_resnet101", "deeplabv3_resnet50", "lraspp_mobilenet_v3"}


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in available_models()])
def test_forward_shape_and_backward(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5)
    x = torch.randn(2, 3, 48, 64)  # batch 2: ASPP's image pooling has BatchNorm over 1×1 maps
    target = torch.randint(0, 5, (2, 48, 64))
    logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5, 48, 64)
    F.cross_entropy(logits, target).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        assert model(x[:1]).shape == (1, 5, 48, 64)


@pytest.mark.parametrize("name", ["unet_small", "unet_tiny", "unet_lite", "unet_add"])
def test_unet_full_resolution_on_odd_sizes(name):
    model = build_model(name, num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 53)).shape == (1, 3, 37, 53)


def test_registry_names_and_unknown_model():
    assert {"deeplabv3plus_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101", "lraspp_mobilenet_v3",
            "unet_small"} <= set(available_models())
    with pytest.raises(UserError, match="unknown model 'resnet9'; choose one of .*deeplabv3plus_resnet101"):
        build_model("resnet9", num_classes=3)
    with pytest.raises(UserError, match="num_classes"):
        build_model("unet_small", num_classes=0)


def test_deeplabv3plus_r101_size_matches_published_and_output_stride_16():
    model = build_model("deeplabv3plus_resnet101", num_classes=19)
    assert abs(_params(model) - DEEPLABV3PLUS_R101_REFERENCE_PARAMS) / DEEPLABV3PLUS_R101_REFERENCE_PARAMS < 0.05
    backbone = model.backbone
    model.eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 64, 64))
    assert features["out"].shape[-2:] == (4, 4) and features["low"].shape[-2:] == (16, 16)  # OS 16 and 4
    assert features["out"].shape[1] == 2048 and features["low"].shape[1] == 256


def test_small_models_are_small():
    assert 0.3e6 < _params(build_model("unet_small", num_classes=19)) < 0.6e6
    assert _params(build_model("unet_tiny", num_classes=19)) < 0.2e6
    assert 0.3e6 < _params(build_model("unet_lite", num_classes=19)) < 0.6e6
    assert 0.3e6 < _params(build_model("unet_add", num_classes=19)) < 0.4e6


def _training_flops(name: str) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(name, num_classes=19)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(torch.randn(2, 3, 64, 128)), torch.randint(0, 19, (2, 64, 128))).backward()
    return counter.get_total_flops()


def test_unet_lite_costs_two_thirds_of_unet_small():
    # the quick preset's model: one conv in and one conv out at full resolution (measured 1.6x
    # faster per CPU step: the full-resolution BatchNorm/ReLU/upsampling traffic shrinks too)
    assert _training_flops("unet_lite") < 0.7 * _training_flops("unet_small")


def test_unet_add_costs_two_thirds_of_unet_lite():
    # the quick preset's model: its decoder convs read the skip's width, not skip + upsampled
    # (measured ~1.5x faster per CPU step than unet_lite in float32, benchmarks/README.md)
    assert _training_flops("unet_add") < 0.7 * _training_flops("unet_lite")



@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty torch hub cache and no network: every download raises URLError."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))

    def no_network(url, *args, **kwargs):
        raise URLError(f"no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3", "deeplabv3plus_resnet101"])
def test_pretrained_offline_fails_with_one_line_user_error(offline_hub, name):
    with pytest.raises(UserError) as info:
        build_model(name, num_classes=19, pretrained=True)
    message = str(info.value)
    assert "\n" not in message and name in message and str(offline_hub) in message and "without --pretrained" in message


def test_unet_has_no_pretrained_weights():
    with pytest.raises(UserError, match="no pretrained weights"):
        build_model("unet_small", num_classes=3, pretrained=True)
