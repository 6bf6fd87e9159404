"""Model registry: ``build_model(name, *, num_classes, pretrained=False)``.

Every model maps ``(N, 3, H, W)`` images to ``(N, K, H, W)`` logits at the input resolution (a
plain tensor, never torchvision's ``{"out", "aux"}`` dict).

- ``deeplabv3plus_resnet101``: the TCE paper's model. torchvision ResNet-101 with the last stage
  dilated (output stride 16), torchvision's ASPP (rates 6, 12, 18), and the DeepLabV3+ decoder:
  layer1 features projected to 48 channels, concatenated with the upsampled ASPP output, two
  3×3 conv-256 blocks, a 1×1 classifier, bilinear upsampling to the input size.
- ``deeplabv3_resnet50`` / ``deeplabv3_resnet101`` / ``lraspp_mobilenet_v3``: torchvision's.
- ``unet_small``: ~0.49 M parameters, full-resolution output; an output stride of 16 cannot
  draw a 1–2 px pole, so the benchmark's thin classes need a model that keeps every pixel.
  ``unet_tiny`` (~0.12 M, half the widths) trains about twice as fast.
- ``unet_lite``: ~0.43 M parameters: ``unet_small`` with a cheap full-resolution level (one conv
  in, one conv out; a plain UNet spends ~40 % of a CPU step at full resolution) and one conv per
  decoder level: 2/3 of the multiply-adds, 1.6× faster per step (one CPU thread, channels_last,
  batch 16 × 64×128: 0.28 s vs 0.44 s per Adam step). The ``camvid``, ``ci`` and ``quick-long``
  presets' model.
- ``unet_add``: the CPU default (``quick`` preset), ~0.35 M parameters: ``unet_lite`` whose decoder
  adds the skips (a 1×1 lateral projection, as an FPN) instead of concatenating them: 2/3 of its
  multiply-adds, ~1.5× faster per float32 step on one CPU thread.

``pretrained=True`` loads ImageNet backbone weights through torchvision's weights API (the torch
hub cache, ``$TORCH_HOME/hub/checkpoints``); nothing else is ever downloaded.
"""
from __future__ import annotations

from collections.abc import Callable
from urllib.error import URLError

import torch
import torch.nn.functional as F
from torch import nn

from fairseg_bench.errors import UserError

# Published size we compare against (tests/test_models.py): DeepLabV3+ with a ResNet-101 backbone
# (output stride 16, ASPP 256 channels, 48-channel low-level projection) for the 19 Cityscapes
# classes: 58.75 M parameters, the "DeepLabV3Plus-ResNet101 | 16 | 58.75M" row of the Cityscapes
# results table in the README of a segmentation-models collection built on
# VainF/DeepLabV3Plus-Pytorch's ``deeplabv3plus_resnet101``. Our build has 59.34 M (+1.0 %: the
# decoder details differ slightly); the test checks we are within 5 %.
DEEPLABV3PLUS_R101_REFERENCE_PARAMS = 58.75e6


class OutTensor(nn.Module):
    """Unwraps torchvision's segmentation models' ``{"out": ...}`` dict into the logits tensor."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ decoder over (low-level, high-level) features.

    Shape:
        low: ``(N, C_low, H/4, W/4)``; high: ``(N, C_high, H/16, W/16)`` -> ``(N, K, H/4, W/4)``.
    """

    def __init__(self, low_channels: int, high_channels: int, num_classes: int,
                 atrous_rates=(6, 12, 18), low_projection: int = 48, channels: int = 256):
        super().__init__()
        from torchvision.models.segmentation.deeplabv3 import ASPP

        self.aspp = ASPP(high_channels, list(atrous_rates), channels)
        self.project = nn.Sequential(
            nn.Conv2d(low_channels, low_projection, 1, bias=False), nn.BatchNorm2d(low_projection),
            nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(
            nn.Conv2d(channels + low_projection, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        high = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([self.project(low), high], dim=1)))


class DeepLabV3Plus(nn.Module):
    """Backbone returning ``{"low", "out"}`` features + DeepLabV3+ head, upsampled to the input."""

    def __init__(self, backbone: nn.Module, head: DeepLabV3PlusHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        logits = self.head(features["low"], features["out"])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True))


class SmallUNet(nn.Module):
    """A 4-level UNet (3 poolings), BatchNorm, bilinear upsampling, full-resolution logits.

    Shape:
        x: ``(N, 3, H, W)`` -> ``(N, K, H, W)``; any H, W (skips are resized when not divisible by 8).
    """

    def __init__(self, num_classes: int, widths=(16, 32, 64, 128)):
        super().__init__()
        self.encoders = nn.ModuleList()
        in_channels = 3
        for width in widths:
            self.encoders.append(_double_conv(in_channels, width))
            in_channels = width
        self.decoders = nn.ModuleList(
            _double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x if level == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for decoder in self.decoders:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, skip], dim=1))
        return self.classifier(x)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class LiteUNet(nn.Module):
    """A UNet whose full-resolution level is cheap: one 3×3 conv in, one 3×3 conv out.

    Below full resolution it is :class:`SmallUNet` with one 3×3 conv per decoder level. At full
    resolution, where :class:`SmallUNet` spends ~40 % of a CPU step, the encoder is a single conv of
    ``widths[0]`` channels (the skip that carries 1 px detail), and the decoder projects the
    upsampled half-resolution features to ``widths[0]`` channels (1×1, at half resolution), adds
    the skip and refines with one 3×3 conv before the 1×1 classifier.

    Shape:
        x: ``(N, 3, H, W)`` -> ``(N, K, H, W)``; any H, W.
    """

    def __init__(self, num_classes: int, widths=(16, 32, 64, 128)):
        super().__init__()
        self.stem = _conv_bn_relu(3, widths[0])
        self.encoders = nn.ModuleList(_double_conv(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        self.decoders = nn.ModuleList(
            _conv_bn_relu(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(1, len(widths) - 1)))
        self.project = nn.Conv2d(widths[1], widths[0], 1, bias=False)
        self.refine = _conv_bn_relu(widths[0], widths[0])
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = self.stem(x)
        x, skips = full, []
        for encoder in self.encoders:
            x = encoder(F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for level, skip in enumerate(reversed(skips)):
            x = self._decode(level, x, skip)
        x = F.interpolate(self.project(x), size=full.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.refine(x + full))

    def _decode(self, level: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Decoder level ``level`` (coarsest first): the coarser features, upsampled, joined to the skip."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.decoders[level](torch.cat([x, skip], dim=1))


class AddUNet(LiteUNet):
    """:class:`LiteUNet` whose decoder adds the skips instead of concatenating them (as an FPN).

    At each level below full resolution the coarser features are projected to the skip's width
    (1×1, before upsampling), added to the skip, and refined by one 3×3 conv of that width: the
    decoder's 3×3 convs read a third of the channels a concatenation gives them, the bulk of a
    :class:`LiteUNet` step on a CPU (~1.5× faster per step, one thread, channels_last, float32).

    Shape:
        x: ``(N, 3, H, W)`` -> ``(N, K, H, W)``; any H, W.
    """

    def __init__(self, num_classes: int, widths=(16, 32, 64, 128)):
        super().__init__(num_classes, widths)
        # replaces LiteUNet's concatenating decoders; their initialisation draws stay, so a seed gives
        # the weights that reports/quick was trained from
        levels = list(reversed(range(1, len(widths) - 1)))
        self.lateral = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 1, bias=False) for i in levels)
        self.decoders = nn.ModuleList(_conv_bn_relu(widths[i], widths[i]) for i in levels)

    def _decode(self, level: int, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(self.lateral[level](x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.decoders[level](x + skip)


def _resnet_weights(depth: int, pretrained: bool):
    from torchvision.models import ResNet50_Weights, ResNet101_Weights

    if not pretrained:
        return None
    return {50: ResNet50_Weights.IMAGENET1K_V1, 101: ResNet101_Weights.IMAGENET1K_V1}[depth]


def _deeplabv3plus_resnet101(num_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models import resnet101
    from torchvision.models._utils import IntermediateLayerGetter

    resnet = resnet101(weights=_resnet_weights(101, pretrained), replace_stride_with_dilation=[False, False, True])
    backbone = IntermediateLayerGetter(resnet, return_layers={"layer1": "low", "layer4": "out"})
    return DeepLabV3Plus(backbone, DeepLabV3PlusHead(256, 2048, num_classes))


def _deeplabv3(depth: int) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        from torchvision.models import segmentation

        builder = {50: segmentation.deeplabv3_resnet50, 101: segmentation.deeplabv3_resnet101}[depth]
        return OutTensor(builder(weights=None, weights_backbone=_resnet_weights(depth, pretrained),
                                 num_classes=num_classes, aux_loss=False))
    return build


def _lraspp_mobilenet_v3(num_classes: int, pretrained: bool) -> nn.Module:
    from torchvision.models import MobileNet_V3_Large_Weights
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1 if pretrained else None
    return OutTensor(lraspp_mobilenet_v3_large(weights=None, weights_backbone=weights, num_classes=num_classes))


def _unet(widths) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        if pretrained:
            raise UserError("the UNets have no pretrained weights; drop --pretrained or pick another model")
        return SmallUNet(num_classes, widths)
    return build


def _lite_unet(widths, cls: type[LiteUNet] = LiteUNet) -> Callable[[int, bool], nn.Module]:
    def build(num_classes: int, pretrained: bool) -> nn.Module:
        if pretrained:
            raise UserError("the UNets have no pretrained weights; drop --pretrained or pick another model")
        return cls(num_classes, widths)
    return build


MODELS: dict[str, Callable[[int, bool], nn.Module]] = {
    "deeplabv3plus_resnet101": _deeplabv3plus_resnet101,
    "deeplabv3_resnet50": _deeplabv3(50),
    "deeplabv3_resnet101": _deeplabv3(101),
    "lraspp_mobilenet_v3": _lraspp_mobilenet_v3,
    "unet_small": _unet((16, 32, 64, 128)),
    "unet_tiny": _unet((8, 16, 32, 64)),
    "unet_lite": _lite_unet((16, 32, 64, 128)),
    "unet_add": _lite_unet((16, 32, 64, 128), AddUNet),
}


def available_models() -> list[str]:
    """Registered model names."""
    return sorted(MODELS)


def build_model(name: str, *, num_classes: int, pretrained: bool = False) -> nn.Module:
    """Build a segmentation model by name; logits come out at the input resolution."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(available_models())}")
    if int(num_classes) < 1:
        raise UserError(f"num_classes must be positive, got {num_classes}")
    try:
        return MODELS[name](int(num_classes), bool(pretrained))
    except (URLError, OSError) as exc:  # URLError is an OSError; named for the reader
        hub = torch.hub.get_dir()
        raise UserError(f"pretrained weights for {name} are not in the torch hub cache ({hub}/checkpoints) and "
                        f"cannot be downloaded ({exc}); copy them there or run without --pretrained") from exc


__all__ = ["MODELS", "available_models", "build_model", "SmallUNet", "LiteUNet", "DeepLabV3Plus", "DeepLabV3PlusHead"]
