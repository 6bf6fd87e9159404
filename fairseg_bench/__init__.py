"""fairseg-bench: fairness across classes in semantic segmentation.

The public names are loaded lazily so that ``import fairseg_bench`` (and the CLI's
``--help``) stays fast and the report layer never pulls in torch.
"""
from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and editors see; at run time the names load lazily below
    from fairseg_bench.core.balanced import ClassBalancedCrossEntropyLoss as ClassBalancedCrossEntropyLoss
    from fairseg_bench.core.balanced import LogitAdjustedCrossEntropyLoss as LogitAdjustedCrossEntropyLoss
    from fairseg_bench.core.class_index import ClassIndex as ClassIndex
    from fairseg_bench.core.confusion import ConfusionMatrix as ConfusionMatrix
    from fairseg_bench.core.dice import DiceCrossEntropyLoss as DiceCrossEntropyLoss
    from fairseg_bench.core.dice import DiceLoss as DiceLoss
    from fairseg_bench.core.fairness import fairness_metrics as fairness_metrics
    from fairseg_bench.core.losses import FocalLoss as FocalLoss
    from fairseg_bench.core.losses import TiltedCrossEntropy as TiltedCrossEntropy
    from fairseg_bench.core.lovasz import LovaszSoftmaxLoss as LovaszSoftmaxLoss
    from fairseg_bench.core.ohem import OhemCrossEntropyLoss as OhemCrossEntropyLoss
    from fairseg_bench.core.sampling import StochasticTCESampler as StochasticTCESampler
    from fairseg_bench.loss_specs import build_loss as build_loss

# The one version source: pyproject.toml reads it (setuptools' dynamic metadata).
__version__ = "0.1.0"

_PUBLIC = {
    "build_loss": "fairseg_bench.loss_specs",
    "TiltedCrossEntropy": "fairseg_bench.core.losses",
    "FocalLoss": "fairseg_bench.core.losses",
    "LovaszSoftmaxLoss": "fairseg_bench.core.lovasz",
    "DiceLoss": "fairseg_bench.core.dice",
    "DiceCrossEntropyLoss": "fairseg_bench.core.dice",
    "ClassBalancedCrossEntropyLoss": "fairseg_bench.core.balanced",
    "LogitAdjustedCrossEntropyLoss": "fairseg_bench.core.balanced",
    "OhemCrossEntropyLoss": "fairseg_bench.core.ohem",
    "StochasticTCESampler": "fairseg_bench.core.sampling",
    "ClassIndex": "fairseg_bench.core.class_index",
    "ConfusionMatrix": "fairseg_bench.core.confusion",
    "fairness_metrics": "fairseg_bench.core.fairness",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'fairseg_bench' has no attribute {name!r}")
