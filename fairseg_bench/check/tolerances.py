"""Tolerances carry their unit: ``2pp`` (percentage points) or ``5%`` (relative to the baseline value).

A bare number is refused: ``worst=2`` could mean 2 pp or 200 pp, and reading it the wrong way
lets a real regression through in silence.

Defaults (percentage points; CoV and Gini are ×100 like every other number):

- ``miou``, ``sorted_*``, ``pct_*``, ``std``: 0.5 pp. They average over at least a quarter of the
  classes, so seed noise is small; 0.5 pp is about the smallest effect the TCE paper reports.
- ``worst``, ``best``, ``gap``: 1 pp (one or two classes decide them).
- ``cov``, ``gini``: 1 point (ratios, a bit noisier than ``std``).
- per-class IoU: 2 pp (one class alone, often a small or rare one).
- image level (gated when the runs keep per-image counts): ``miou_image``, ``miou_class``: 0.5 pp
  (means over every image); ``miou_image_worst_5``, ``miou_image_worst_10``: 1 pp (a few images).
- Boundary IoU (gated when both sides record its counts): ``biou`` (mean Boundary IoU) and
  ``min_iou_biou`` (mean over classes of min(IoU, Boundary IoU)): 0.5 pp, means over the classes.
- groups of images (gated when both sides have groups, the first grouping attribute):
  ``worst_group`` (the lowest group mIoU): 1 pp (one group decides it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fairseg_bench.errors import UserError
from fairseg_bench.results.summary import BOUNDARY_KEYS, FAIRNESS_COLUMNS, GROUP_GATED, IMAGE_KEYS

LOWER_IS_BETTER = ("std", "gap", "cov", "gini")
METRICS = tuple(FAIRNESS_COLUMNS)
#: keys gated only where both the baseline and the runs have them (per-image counts, Boundary IoU, groups)
OPTIONAL = tuple(IMAGE_KEYS) + tuple(BOUNDARY_KEYS) + tuple(GROUP_GATED)
#: every gated key: the fairness metrics, and the optional ones where both sides have them
GATED = METRICS + OPTIONAL
HIGHER_IS_BETTER = tuple(k for k in METRICS if k not in LOWER_IS_BETTER)
UNITS = ("pp", "%")


@dataclass(frozen=True)
class Tolerance:
    """An allowed worsening: ``value`` percentage points, or ``value`` percent of the baseline value."""

    value: float
    unit: str = "pp"

    def allowed(self, baseline: float) -> float:
        """The allowed worsening in percentage points at this baseline value."""
        return self.value if self.unit == "pp" else self.value / 100.0 * abs(baseline)

    def __str__(self) -> str:
        return f"{self.value:g}{self.unit}"


_ONE_POINT = ("worst", "best", "gap", "cov", "gini", "miou_image_worst_5", "miou_image_worst_10", "worst_group")
DEFAULT_TOLERANCES = {key: Tolerance(1.0 if key in _ONE_POINT else 0.5) for key in GATED}
DEFAULT_PER_CLASS_TOLERANCE = Tolerance(2.0)


def parse_tolerance_value(value, *, name: str = "tolerance") -> Tolerance:
    """``"2pp"`` or ``"5%"`` -> a :class:`Tolerance`; anything else is a one-line error naming both forms."""
    if isinstance(value, Tolerance):
        return value
    text = str(value).strip().lower()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(pp|%)", text)
    if not match:
        number = re.fullmatch(r"[0-9]*\.?[0-9]+(?:e-?[0-9]+)?", text)
        example = text if number else "2"
        raise UserError(f"bad {name} value {value!r}: give a unit, {example}pp (percentage points) "
                        f"or {example}% (relative to the baseline value)")
    return Tolerance(float(match.group(1)), match.group(2))


def parse_tolerances(text: str | None) -> dict[str, Tolerance]:
    """``"all=3pp,worst=5%"`` -> ``{metric: Tolerance}``; ``all`` sets every metric, named keys override it."""
    everything: dict[str, Tolerance] = {}
    named: dict[str, Tolerance] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in (*GATED, "all"):
            raise UserError(f"bad tolerance {item!r}: expected KEY=VALUE with KEY one of all, {', '.join(GATED)}")
        if key == "all":
            everything = dict.fromkeys(GATED, parse_tolerance_value(value, name=key))
        else:
            named[key] = parse_tolerance_value(value, name=key)
    return everything | named


def resolve_tolerances(tolerances: dict | None) -> dict[str, Tolerance]:
    """Defaults overridden by ``tolerances`` (``all`` first, then named keys); an unknown key is a UserError."""
    merged = dict(DEFAULT_TOLERANCES)
    tolerances = dict(tolerances or {})
    if "all" in tolerances:
        merged |= dict.fromkeys(GATED, parse_tolerance_value(tolerances.pop("all"), name="all"))
    for key, value in tolerances.items():
        if key not in GATED:
            raise UserError(f"unknown tolerance key {key!r}; choose from {', '.join(GATED)}")
        merged[key] = parse_tolerance_value(value, name=key)
    return merged
