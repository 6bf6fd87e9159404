"""fairseg-bench: fairness across classes in semantic segmentation.

The public names are loaded lazily so that ``import fairseg_bench`` (and the CLI's
``--help``) stays fast and the report layer never pulls in torch.
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fairseg-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

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


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'fairseg_bench' has no attribute {name!r}")
