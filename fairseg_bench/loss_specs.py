"""The loss registry: parse a loss spec, give it a canonical label, build its loss and sampler.

A spec is ``name[:key=value,...]`` (README.md, Losses), e.g. ``mcce``, ``focal:gamma=2``,
``tce:t=0.1``, ``tce-class:t=1``, ``rcs``, ``lovasz:per_image=true``, ``cb:beta=0.99,unit=pixel``.
Sampler-based methods (``tce``, ``rcs``) train with
MCCE and configure a batch sampler; every other method uses uniform batches.

Labels are filesystem-safe, deterministic and omit defaults, except for the tilt ``t`` of the
TCE family, which is always shown (``tce`` and ``tce:t=1`` are both ``tce-t1``). Parameters whose
default is left to the sampler (``tce``'s ``gamma``, ``rcs``'s ``temperature``) appear in the
label only when given.

Parsing needs no torch (the CLI and reports use labels); building imports the core lazily.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fairseg_bench.errors import UserError

__all__ = ["LossSpec", "parse_loss_spec", "split_loss_list", "build_loss", "build_sampler", "available_losses"]


def split_loss_list(text: str) -> list[str]:
    """``"mcce,focal,tce:t=0.1,gamma=0.2"`` -> ``["mcce", "focal", "tce:t=0.1,gamma=0.2"]``.

    The one parser of a comma-separated loss list (the ``--losses`` option and a YAML string
    alike): a ``key=value`` part without a ``:`` continues the previous spec's parameters.
    """
    specs: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "=" in part and ":" not in part and specs:  # a further key=value of the previous spec
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs


# --------------------------------------------------------------------------- parameters


def _finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise UserError(f"loss parameter {name}={value!r} must be a finite number")
    return value


def _any_finite(name: str, value: float) -> float:
    return _finite(name, value)


def _non_negative(name: str, value: float) -> float:
    if not _finite(name, value) >= 0:
        raise UserError(f"loss parameter {name}={value!r} must be >= 0")
    return value


def _positive(name: str, value: float) -> float:
    if not _finite(name, value) > 0:
        raise UserError(f"loss parameter {name}={value!r} must be > 0")
    return value


def _rate(name: str, value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise UserError(f"loss parameter {name}={value!r} must be in (0, 1]")
    return value


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise UserError(f"loss parameter {name}={value!r} must be in [0, 1)")
    return value


def _at_least_one(name: str, value: int) -> int:
    if value < 1:
        raise UserError(f"loss parameter {name}={value!r} must be >= 1")
    return value


def _at_least_zero(name: str, value: int) -> int:
    if value < 0:
        raise UserError(f"loss parameter {name}={value!r} must be >= 0")
    return value


def _unit_interval(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise UserError(f"loss parameter {name}={value!r} must be in [0, 1]")
    return value


def _choice(name: str, value: str) -> str:
    return value  # Param.parse checks the choices


@dataclass(frozen=True)
class Param:
    """One spec parameter: its type, default (None = the component's own), check and label key."""

    kind: type  # float, int or str
    default: Any
    check: Callable[[str, Any], Any]
    short: str  # label prefix, e.g. "t" -> "tce-t0.1"
    choices: tuple[str, ...] = ()
    always_in_label: bool = False

    def parse(self, name: str, text: str) -> Any:
        """Convert the text of ``name=text`` to a checked value."""
        if self.kind is str:
            if text not in self.choices:
                raise UserError(f"loss parameter {name}={text!r} must be one of: {', '.join(self.choices)}")
            return text
        try:
            value = int(text) if self.kind is int else float(text)
        except ValueError:
            expected = "an integer" if self.kind is int else "a number"
            raise UserError(f"loss parameter {name}={text!r} is not {expected}") from None
        return self.check(name, value)


def _tilt() -> Param:
    return Param(float, 1.0, _any_finite, "t", always_in_label=True)


@dataclass(frozen=True)
class LossEntry:
    """A registered loss: its parameters, whether it drives a sampler, and a one-line summary."""

    params: Mapping[str, Param]
    sampler: str | None
    summary: str


_REGISTRY: dict[str, LossEntry] = {
    "mcce": LossEntry({}, None, "multi-class cross-entropy, eq. (1)"),
    "wce": LossEntry({}, None, "inverse-frequency weighted cross-entropy (weights mean 1)"),
    "focal": LossEntry(
        {
            "gamma": Param(float, 2.0, _non_negative, "g"),
            "alpha": Param(str, "mean", _choice, "a", choices=("mean", "sum", "none")),
        },
        None,
        "softmax focal loss; alpha = inverse class frequency normalised to mean 1 (or sum 1, or none)",
    ),
    "tce": LossEntry(
        {
            "t": _tilt(),
            "gamma": Param(float, None, _rate, "g"),
            "floor": Param(float, 0.0, _fraction, "floor"),
            "min_pixels": Param(int, 1, _at_least_one, "minpx"),
            "estimate": Param(str, "batch", _choice, "est", choices=("batch", "class")),
        },
        "tce",
        "Stochastic TCE (Algorithm 1): MCCE on batches drawn by the adaptive class sampler",
    ),
    "tce-image": LossEntry({"t": _tilt()}, None, "image-level tilted cross-entropy, eq. (2)"),
    "tce-class": LossEntry({"t": _tilt()}, None, "class-level tilted cross-entropy, eq. (3)"),
    "tce-online": LossEntry(
        {"t": _tilt(), "gamma": Param(float, 0.1, _rate, "g")},
        None,
        "class-level tilt with an EMA of per-class losses over batches",
    ),
    "rcs": LossEntry(
        {
            "temperature": Param(float, None, _positive, "temp"),
            "min_pixels": Param(int, 1, _at_least_one, "minpx"),
        },
        "rcs",
        "Rare Class Sampling: MCCE on batches drawn with P(c) ~ exp((1 - f_c) / T)",
    ),
    "cus": LossEntry(
        {"min_pixels": Param(int, 1, _at_least_one, "minpx")},
        "cus",
        "class-uniform image sampling: MCCE on batches of a uniformly drawn class (Stochastic TCE at fixed weights)",
    ),
    "lovasz": LossEntry(
        {"per_image": Param(str, "false", _choice, "perimage", choices=("false", "true"))},
        None,
        "Lovász-softmax (Berman et al. 2018): IoU surrogate over the classes present, batch pooled or per image",
    ),
    "dice": LossEntry({}, None, "soft Dice over the classes present in the batch, no smoothing"),
    "dice-ce": LossEntry(
        {"weight": Param(float, 1.0, _non_negative, "w")},
        None,
        "MCCE + weight x soft Dice (nnU-Net's compound loss)",
    ),
    "cb": LossEntry(
        {
            "beta": Param(float, 0.999, _fraction, "b"),
            "unit": Param(str, "image", _choice, "u", choices=("image", "pixel")),
        },
        None,
        "class-balanced CE (Cui et al. 2019): weights 1 / effective number of training images (or pixels)",
    ),
    "la": LossEntry(
        {"tau": Param(float, 1.0, _non_negative, "tau")},
        None,
        "logit-adjusted CE (Menon et al. 2021): CE(z + tau log pi), pi the class pixel frequency",
    ),
    "ohem": LossEntry(
        {
            "thresh": Param(float, 0.7, _unit_interval, "thr"),
            "min_kept": Param(int, 100000, _at_least_zero, "minkept"),
        },
        None,
        "online hard example mining CE (HRNet/mmseg rule): mean CE over pixels with p_y < threshold",
    ),
}


def available_losses() -> list[str]:
    """Names of the registered losses, in registry order."""
    return list(_REGISTRY)


def describe_losses() -> dict[str, str]:
    """``name[:params]`` -> one-line summary, for ``--help`` texts and error messages."""
    return {_usage(name): entry.summary for name, entry in _REGISTRY.items()}


def _usage(name: str) -> str:
    params = _REGISTRY[name].params
    return f"{name}:{','.join(f'{key}=...' for key in params)}" if params else name


def _choices() -> str:
    return "; ".join(_usage(name) for name in _REGISTRY)


# -------------------------------------------------------------------------------- specs


def format_shortest(value: float | int) -> str:
    """Shortest round-tripping text of a number: ``0.1``, ``1``, ``1e-05``, ``1e20``, ``-2``."""
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    return text.replace("e+", "e")


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else format_shortest(value)


@dataclass(frozen=True, eq=False)
class LossSpec:
    """A parsed loss spec.

    Attributes:
        name: the registered name, e.g. ``"tce"``.
        params: read-only mapping of every parameter with a value (given or default); a
            parameter whose default belongs to the sampler is present only when given.
        given: the names of the parameters the text set explicitly.
    """

    name: str
    params: Mapping[str, Any]
    given: frozenset[str] = frozenset()

    @property
    def sampler(self) -> str | None:
        """``"tce"``, ``"rcs"`` or None (uniform batches)."""
        return _REGISTRY[self.name].sampler

    @property
    def label(self) -> str:
        """Canonical filesystem-safe label, e.g. ``tce-t0.1``, ``focal-g1``, ``mcce``."""
        parts = [self.name]
        for key, param in _REGISTRY[self.name].params.items():
            if key not in self.params:
                continue
            value = self.params[key]
            if param.always_in_label or value != param.default:
                parts.append(param.short + _format_value(value))
        return "-".join(parts)

    @property
    def text(self) -> str:
        """Canonical spec text that parses back to an equal spec, e.g. ``tce:t=0.1``."""
        entry = _REGISTRY[self.name]
        shown = [
            f"{key}={_format_value(self.params[key])}"
            for key, param in entry.params.items()
            if key in self.params and (param.always_in_label or self.params[key] != param.default)
        ]
        return f"{self.name}:{','.join(shown)}" if shown else self.name

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LossSpec):
            return NotImplemented
        return self.name == other.name and dict(self.params) == dict(other.params)

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.params.items()))))


def parse_loss_spec(text: str | LossSpec) -> LossSpec:
    """Parse ``name[:key=value,...]``; a LossSpec is returned unchanged.

    Raises:
        UserError: unknown name or parameter, malformed text, duplicate key or a bad value; the
            message lists the valid choices.
    """
    if isinstance(text, LossSpec):
        return text
    if not isinstance(text, str):
        raise UserError(f"loss spec must be text like 'tce:t=1', got {text!r}")
    name, sep, rest = text.strip().partition(":")
    name = name.strip().lower()
    if name not in _REGISTRY:
        raise UserError(f"unknown loss {name!r} in spec {text!r}; valid: {_choices()}")
    entry = _REGISTRY[name]
    given: dict[str, Any] = {}
    if sep:
        for item in rest.split(","):
            key, value = _split_item(text, item)
            if key not in entry.params:
                valid = ", ".join(entry.params) or "none"
                raise UserError(f"unknown parameter {key!r} for loss {name!r} in {text!r}; valid: {valid}")
            if key in given:
                raise UserError(f"parameter {key!r} given twice in loss spec {text!r}")
            given[key] = entry.params[key].parse(key, value)
    params = {key: param.default for key, param in entry.params.items() if param.default is not None}
    params.update(given)
    return LossSpec(name, MappingProxyType(params), frozenset(given))


def _split_item(text: str, item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not eq or not key or not value:
        raise UserError(
            f"malformed loss spec {text!r}: expected name[:key=value,...], e.g. 'tce:t=1'; valid: {_choices()}")
    return key, value


# ----------------------------------------------------------------------------- building


def build_loss(spec: str | LossSpec, *, num_classes: int, class_pixel_counts=None, class_image_counts=None,
               ignore_index: int = 255):
    """The ``nn.Module`` for a spec, called as ``loss(logits, target) -> scalar``.

    Args:
        spec: spec text or a parsed :class:`LossSpec`.
        num_classes: K.
        class_pixel_counts: ``(K,)`` training pixel counts per class (from the class index);
            required by ``wce``, ``focal`` (unless ``alpha=none``), ``la`` and ``cb:unit=pixel``.
        class_image_counts: ``(K,)`` number of training images holding each class (from the
            class index); required by ``cb`` (``unit=image``, the default).
        ignore_index: the label that counts nowhere.
    """
    from fairseg_bench.core import losses as core

    spec = parse_loss_spec(spec)
    if int(num_classes) < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes!r}")
    p = spec.params
    if spec.name == "tce" and p["estimate"] == "class":
        return core.CrossEntropyLoss(ignore_index, class_stats=True)
    if spec.name in ("mcce", "tce", "rcs", "cus"):
        return core.CrossEntropyLoss(ignore_index)
    if spec.name in _BASELINES:
        return _BASELINES[spec.name](spec, num_classes, class_pixel_counts, class_image_counts, ignore_index)
    if spec.name == "wce":
        return core.WeightedCrossEntropyLoss(_class_weights(spec, class_pixel_counts, num_classes), ignore_index)
    if spec.name == "focal":
        alpha = None if p["alpha"] == "none" else _class_weights(spec, class_pixel_counts, num_classes, p["alpha"])
        return core.FocalLoss(p["gamma"], alpha, ignore_index)
    if spec.name in ("tce-image", "tce-class"):
        return core.TiltedCrossEntropy(p["t"], level=spec.name.split("-")[1], ignore_index=ignore_index)
    if spec.name == "tce-online":
        return core.OnlineTiltedCrossEntropy(num_classes, t=p["t"], gamma=p["gamma"], ignore_index=ignore_index)
    raise AssertionError(f"registered loss {spec.name!r} has no builder")  # a registry bug


def _lovasz(spec, num_classes, pixel_counts, image_counts, ignore_index):
    from fairseg_bench.core.lovasz import LovaszSoftmaxLoss

    return LovaszSoftmaxLoss(per_image=spec.params["per_image"] == "true", ignore_index=ignore_index)


def _dice(spec, num_classes, pixel_counts, image_counts, ignore_index):
    from fairseg_bench.core.dice import DiceLoss

    return DiceLoss(ignore_index)


def _dice_ce(spec, num_classes, pixel_counts, image_counts, ignore_index):
    from fairseg_bench.core.dice import DiceCrossEntropyLoss

    return DiceCrossEntropyLoss(spec.params["weight"], ignore_index)


def _cb(spec, num_classes, pixel_counts, image_counts, ignore_index):
    from fairseg_bench.core.balanced import ClassBalancedCrossEntropyLoss, class_balanced_weights

    pixel = spec.params["unit"] == "pixel"
    what = "class_pixel_counts" if pixel else "class_image_counts"
    counts = _class_counts(spec, pixel_counts if pixel else image_counts, num_classes, what)
    return ClassBalancedCrossEntropyLoss(_user_error(spec, class_balanced_weights, counts, spec.params["beta"]),
                                         ignore_index)


def _la(spec, num_classes, pixel_counts, image_counts, ignore_index):
    from fairseg_bench.core.balanced import LogitAdjustedCrossEntropyLoss, logit_adjustment

    counts = _class_counts(spec, pixel_counts, num_classes, "class_pixel_counts")
    return LogitAdjustedCrossEntropyLoss(_user_error(spec, logit_adjustment, counts, spec.params["tau"]), ignore_index)


def _ohem(spec, num_classes, pixel_counts, image_counts, ignore_index):
    from fairseg_bench.core.ohem import OhemCrossEntropyLoss

    return OhemCrossEntropyLoss(spec.params["thresh"], spec.params["min_kept"], ignore_index)


_BASELINES = {"lovasz": _lovasz, "dice": _dice, "dice-ce": _dice_ce, "cb": _cb, "la": _la, "ohem": _ohem}
"""Builders of the reviewer's baselines (DESIGN §2b, docs/definitions.md), by registered name."""


def _class_counts(spec: LossSpec, counts, num_classes: int, what: str):
    """A ``(K,)`` class statistic from the class index, checked; a one-line error names what is missing."""
    if counts is None:
        raise UserError(f"loss {spec.text!r} needs the {what} of the training set (from the class index)")
    import numpy as np

    counts = np.asarray(counts)
    if counts.shape != (num_classes,):
        raise UserError(f"{what} has shape {counts.shape}, expected ({num_classes},) for loss {spec.text!r}")
    return counts


def _user_error(spec: LossSpec, build, *args):
    """``build(*args)``, its ``ValueError`` turned into a one-line ``UserError`` naming the spec."""
    try:
        return build(*args)
    except ValueError as error:
        raise UserError(f"loss {spec.text!r}: {error}") from None


def _class_weights(spec: LossSpec, class_pixel_counts, num_classes: int, normalise: str = "mean"):
    """Inverse-frequency class weights from the class index's pixel counts."""
    from fairseg_bench.core.losses import focal_alpha

    counts = _class_counts(spec, class_pixel_counts, num_classes, "class_pixel_counts")
    return _user_error(spec, focal_alpha, counts, normalise)


def build_sampler(spec: str | LossSpec, *, class_index, batch_size: int, num_batches: int, seed: int = 0, rank: int = 0,
                  world_size: int = 1, class_names=None):
    """The batch sampler for a spec: Stochastic TCE, Rare Class Sampling, class-uniform or uniform batches.

    Args:
        spec: spec text or a parsed :class:`LossSpec`.
        class_index: the training set's :class:`~fairseg_bench.core.class_index.ClassIndex`.
        batch_size: images per batch on this rank.
        num_batches: batches to yield in total (the training steps).
        seed, rank, world_size: RNG seed and the distributed layout.
        class_names: optional, names the classes a class sampler leaves out in its warning.
    """
    from fairseg_bench.core import sampling

    spec = parse_loss_spec(spec)
    common = dict(num_batches=num_batches, seed=seed, rank=rank, world_size=world_size)
    options = dict(spec.params, class_names=class_names)
    if spec.sampler == "tce":
        return sampling.StochasticTCESampler(class_index, batch_size, **options, **common)
    if spec.sampler == "rcs":
        return sampling.RareClassSampler(class_index, batch_size, **options, **common)
    if spec.sampler == "cus":
        return sampling.ClassUniformSampler(class_index, batch_size, **options, **common)
    return sampling.UniformBatchSampler(class_index.num_images, batch_size, **common)
