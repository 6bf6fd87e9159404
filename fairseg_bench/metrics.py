"""Everything needed to measure a segmentation model's per-class IoU and fairness, in one place.

``from fairseg_bench.metrics import ConfusionMatrix, per_class_iou, fairness_metrics``.
The confusion-matrix names need torch and are imported on first use only, so importing this
module (as the report layer and ``fairseg-bench metrics`` do) never imports torch.
"""
from importlib import import_module

from fairseg_bench.core.fairness import FAIRNESS_KEYS, PAPER_KEYS, fairness_metrics
from fairseg_bench.core.iou import class_accuracy, mean_iou, per_class_iou, pixel_accuracy
from fairseg_bench.core.stats import (
    bootstrap_ci,
    bootstrap_counts,
    bootstrap_iou,
    paired_bootstrap,
    percentile_interval,
    resample_totals,
    seed_summary,
)

_TORCH_NAMES = {"ConfusionMatrix": "fairseg_bench.core.confusion", "confusion_matrix": "fairseg_bench.core.confusion"}

__all__ = [  # noqa: F822 - the torch names resolve through __getattr__
    "ConfusionMatrix",
    "confusion_matrix",
    "per_class_iou",
    "mean_iou",
    "pixel_accuracy",
    "class_accuracy",
    "fairness_metrics",
    "FAIRNESS_KEYS",
    "PAPER_KEYS",
    "bootstrap_ci",
    "bootstrap_counts",
    "bootstrap_iou",
    "paired_bootstrap",
    "percentile_interval",
    "resample_totals",
    "seed_summary",
]


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        return getattr(import_module(_TORCH_NAMES[name]), name)
    raise AttributeError(f"module 'fairseg_bench.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
