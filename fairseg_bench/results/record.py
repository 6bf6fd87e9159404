"""The one builder of ``metrics.json``: what was counted in, every derived number out.

Runs, checkpoint evaluations (:mod:`fairseg_bench.runner`) and evaluated prediction folders
(:mod:`fairseg_bench.predictions`) each gather the same neutral ingredients, an identity and the
:class:`Counts`, and call :func:`build_record`; every number derived from the counts (IoU, mIoU,
accuracies, fairness, image-level, Boundary IoU) is computed here, by :mod:`fairseg_bench.core`,
so a number means the same whatever wrote the record. numpy only: a prediction folder's record is
built without torch. The keys are listed in :mod:`fairseg_bench.results`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairseg_bench.core.boundary import boundary_iou
from fairseg_bench.core.fairness import fairness_metrics
from fairseg_bench.core.image_metrics import image_level_metrics
from fairseg_bench.core.iou import class_accuracy, mean_iou, per_class_iou, pixel_accuracy
from fairseg_bench.results import SCHEMA_VERSION

__all__ = ["Counts", "IDENTITY_KEYS", "build_record"]

#: what names a record: who was evaluated, on what, under which config
IDENTITY_KEYS = ("experiment", "method", "loss_spec", "seed", "config_hash", "config", "dataset", "split", "steps",
                 "classes", "ignore_index", "palette")


@dataclass(frozen=True)
class Counts:
    """What an evaluation counted over one split; every derived number of a record comes from these.

    Shape:
        confusion_matrix ``(K, K)`` ints, rows ground truth; per_image ``{"tp", "fp", "fn"}`` each
        ``(N, K)``; void ``(K,)``; boundary ``(intersection, union)`` each ``(N, K)``; image_names ``N``.
    """

    confusion_matrix: np.ndarray
    per_image: dict[str, np.ndarray]
    #: pixels of each class predicted as no evaluated class (false negatives, as cityscapesScripts counts them)
    void: np.ndarray | None = None
    #: per-image Boundary IoU (intersection, union), or None when not counted
    boundary: tuple[np.ndarray, np.ndarray] | None = None
    image_names: list[str] | None = None  # the rows of per_image, for file datasets
    image_attributes: dict[str, list[str]] | None = None  # {attribute: N values}: the built-in image groups


def build_record(identity: dict, counts: Counts, *, sampler: dict | None, timing: dict, environment: dict,
                 extra: dict | None = None) -> dict:
    """The ``metrics.json`` content (schema version 1) of one evaluation.

    Args:
        identity: exactly the :data:`IDENTITY_KEYS`, stored as given (``palette`` as lists).
        counts: what was counted; the derived numbers follow from it.
        sampler: ``{"name", "draw_histogram", "final_weights"}`` of a class sampler, or None.
        timing: ``{"wall_time_s", "train_images_per_s", "eval_images_per_s"}``.
        environment: the :func:`fairseg_bench.results.environment.environment` block.
        extra: further keys, stored last (a run's ``precision``; a prediction folder's ``source``, ``files``).
    """
    if set(identity) != set(IDENTITY_KEYS):
        raise ValueError(f"identity keys {sorted(identity)} are not {sorted(IDENTITY_KEYS)}")
    return {"schema_version": SCHEMA_VERSION, **identity, "palette": np.asarray(identity["palette"]).tolist(),
            **_counted(counts), **_derived(counts), "sampler": sampler, "timing": timing,
            "environment": environment, **(extra or {})}


def _counted(counts: Counts) -> dict:
    """The counts as stored: the matrix, the void column where there is one, per-image rows and their names."""
    out: dict = {"confusion_matrix": counts.confusion_matrix}
    if counts.void is not None:
        out["void_predictions"] = counts.void
    out["per_image"] = counts.per_image
    if counts.image_names is not None:
        out.update(image_names=list(counts.image_names), image_attributes=counts.image_attributes or {})
    return out


def _derived(counts: Counts) -> dict:
    """IoU, mIoU, pixel and class accuracy, fairness, image-level and Boundary IoU of the counts."""
    iou = per_class_iou(counts.confusion_matrix, void=counts.void)
    square = _with_void(counts.confusion_matrix, counts.void)
    k = len(iou)
    stats = counts.per_image
    return {"iou": iou, "miou": mean_iou(iou), "pixel_accuracy": pixel_accuracy(square),
            "class_accuracy": class_accuracy(square)[:k], "fairness": fairness_metrics(iou),
            "image_level": image_level_metrics(stats["tp"], stats["fp"], stats["fn"]), **_boundary(counts.boundary)}


def _with_void(cm: np.ndarray, void: np.ndarray | None) -> np.ndarray:
    """``cm`` with the void predictions as a (K+1)-th column and a zero row: the square in which a void
    pixel is counted (in its row's total) and never correct. ``(K, K) -> (K + 1, K + 1)``; ``cm`` without void."""
    if void is None:
        return np.asarray(cm)
    k = len(void)
    square = np.zeros((k + 1, k + 1), np.int64)
    square[:k, :k] = cm
    square[:k, k] = void
    return square


def _boundary(counts: tuple[np.ndarray, np.ndarray] | None) -> dict:
    """``{"boundary": {...}}`` of per-image Boundary IoU counts, each ``(N, K)``; {} when none were counted."""
    if counts is None:
        return {}
    inter, union = (np.asarray(c, np.int64) for c in counts)
    totals = inter.sum(0), union.sum(0)
    return {"boundary": {"intersection": totals[0], "union": totals[1], "iou": boundary_iou(*totals),
                         "per_image": {"intersection": inter, "union": union}}}
