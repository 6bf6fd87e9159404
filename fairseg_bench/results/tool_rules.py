"""What other tools would report for the same predictions: their mIoU and per-class IoU rules.

Every rule here is a pure function of the counts fairseg-bench keeps (numpy only, no torch):
the dataset-level confusion matrix ``cm`` (K x K, rows ground truth, ignored pixels left out),
``void`` (K pixels of each ground-truth class predicted as no class: false negatives only) and,
for the per-sample rules, the per-image ``tp, fp, fn`` (N x K each). docs/definitions.md ("What
other tools report") links each tool's code and says why its number can differ.

Tools that take class-index predictions only (torchmetrics, mmsegmentation, Hugging Face,
detectron2) have no void prediction; void pixels are counted here as false negatives, which is
what mmsegmentation's and Hugging Face's histograms (a value outside ``[0, K)`` lands in no bin)
do with them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairseg_bench.core.iou import mean_iou, per_class_iou

__all__ = ["ToolScore", "TOOLS", "compare_tools", "compare_results", "render_comparison", "detectron2_boundary_iou"]


@dataclass(frozen=True)
class ToolScore:
    """One tool's numbers for one result: fractions, NaN where the tool gives no value."""

    tool: str
    miou: float
    iou: np.ndarray  # (K,)
    reason: str  # one line: why it can differ from fairseg-bench's rule


@dataclass(frozen=True)
class Counts:
    """The counts every rule reads."""

    cm: np.ndarray  # (K, K) int64, rows ground truth
    void: np.ndarray  # (K,) int64, predictions of no class on valid pixels
    per_image: dict[str, np.ndarray] | None = None  # {"tp", "fp", "fn"}, each (N, K)

    def tp_fp_fn(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dataset-level ``(K,)`` float64 true positives, false positives, false negatives (void in fn)."""
        cm = self.cm.astype(np.float64)
        tp = np.diag(cm)
        return tp, cm.sum(0) - tp, cm.sum(1) - tp + self.void


def _ratio(num: np.ndarray, den: np.ndarray, empty: float = np.nan) -> np.ndarray:
    out = np.full(np.shape(den), empty, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


# ------------------------------------------------------------------------------ the rules
def _fairseg(c: Counts) -> tuple[float, np.ndarray]:
    iou = per_class_iou(c.cm, void=c.void)
    return mean_iou(iou), iou


def _cityscapes(c: Counts) -> tuple[float, np.ndarray]:
    """``getIouScoreForLabel``: NaN when tp + fp + fn = 0, void predictions in fn only;
    ``getScoreAverage``: the mean of the non-NaN scores."""
    tp, fp, fn = c.tp_fp_fn()
    iou = _ratio(tp, tp + fp + fn)
    return mean_iou(iou), iou


def _mmseg(c: Counts) -> tuple[float, np.ndarray]:
    """``total_area_to_metrics``: total intersect / total union (NaN for 0/0), nanmean; printed rounded to 0.01 %."""
    tp, fp, fn = c.tp_fp_fn()
    iou = _ratio(tp, tp + fp + fn)
    return float(np.round(np.nanmean(iou) * 100, 2) / 100), np.round(iou * 100, 2) / 100


def _hf(c: Counts) -> tuple[float, np.ndarray]:
    """``mean_iou``: total intersect / total union (NaN for 0/0), ``np.nanmean``; float64, no rounding."""
    tp, fp, fn = c.tp_fp_fn()
    iou = _ratio(tp, tp + fp + fn)
    return float(np.nanmean(iou)), iou


def _detectron2(c: Counts) -> tuple[float, np.ndarray]:
    """``SemSegEvaluator.evaluate``: IoU only for classes with ground truth; mIoU over those."""
    tp, fp, fn = c.tp_fp_fn()
    has_gt = tp + fn > 0
    iou = np.where(has_gt, _ratio(tp, tp + fp + fn), np.nan)
    return (float(iou[has_gt].mean()) if has_gt.any() else float("nan")), iou


def _jaccard_index(c: Counts) -> tuple[float, np.ndarray]:
    """``MulticlassJaccardIndex(average="macro")``: classes with no gt and no prediction weigh 0;
    ``average="none"`` gives them 0 (``zero_division=0``)."""
    tp, fp, fn = c.tp_fp_fn()
    union = tp + fp + fn
    iou = _ratio(tp, union, empty=0.0)
    present = union > 0
    return (float(iou[present].mean()) if present.any() else 0.0), iou


def _mean_iou_per_sample(c: Counts) -> tuple[float, np.ndarray]:
    """``MeanIoU``: a score per (image, class) with a non-empty union in that image; mIoU
    (``per_class=False``) = their pooled mean; per class (``per_class=True``) = the mean over the
    images where the class has a union, -1 where it never has one."""
    assert c.per_image is not None  # compare_tools skips this rule without per-image statistics
    tp, fp, fn = (c.per_image[k].astype(np.float64) for k in ("tp", "fp", "fn"))
    union = tp + fp + fn
    valid = union > 0
    score = _ratio(tp, union, empty=0.0)
    miou = float(score[valid].sum() / valid.sum()) if valid.any() else float("nan")
    return miou, _ratio(np.where(valid, score, 0.0).sum(0), valid.sum(0).astype(np.float64), empty=-1.0)


@dataclass(frozen=True)
class Tool:
    """One entry of :data:`TOOLS`."""

    name: str
    rule: Callable[[Counts], tuple[float, np.ndarray]]
    reason: str
    per_image: bool = False  # needs per-image statistics


TOOLS: list[Tool] = [
    Tool("fairseg-bench", _fairseg,
         "dataset-level TP/(TP+FP+FN); a class without ground truth and prediction is NaN and left out"),
    Tool("cityscapesScripts", _cityscapes,
         "the same rule (NaN when tp+fp+fn = 0, mean over non-NaN, void predictions are FN only)"),
    Tool("mmsegmentation IoUMetric", _mmseg,
         "the same dataset-level rule and nanmean, but rounded to 0.01 % (and float32 areas)"),
    Tool("Hugging Face evaluate mean_iou", _hf,
         "the same rule and nanmean; differs only if reduce_labels/ignore_index do not match the labels"),
    Tool("detectron2 SemSegEvaluator", _detectron2,
         "classes without ground truth are left out even if predicted, so their false positives never count"),
    Tool("torchmetrics MulticlassJaccardIndex", _jaccard_index,
         "macro mean skips absent classes like fairseg-bench; average='none' gives them 0, not NaN"),
    Tool("torchmetrics MeanIoU", _mean_iou_per_sample,
         "averages per-image IoUs (each (image, class) with a non-empty union), not dataset-level counts",
         per_image=True),
]


def compare_tools(cm, void=None, per_image: dict | None = None) -> list[ToolScore]:
    """Every tool's mIoU and per-class IoU from one result's counts.

    Args:
        cm: ``(K, K)`` confusion matrix, rows ground truth.
        void: optional ``(K,)`` void predictions per ground-truth class (false negatives).
        per_image: optional ``{"tp", "fp", "fn"}`` arrays ``(N, K)``; the per-sample rules are
            skipped without them.

    Returns:
        One :class:`ToolScore` per tool of :data:`TOOLS` that the counts allow, fairseg-bench first.

    Example:
        >>> cm = [[5, 1, 0], [0, 0, 0], [2, 0, 3]]  # class 1: predicted, never in the ground truth
        >>> scores = {s.tool: s for s in compare_tools(cm)}
        >>> round(scores["fairseg-bench"].miou, 4), round(scores["detectron2 SemSegEvaluator"].miou, 4)
        (0.4083, 0.6125)
    """
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    counts = Counts(cm, np.zeros(k, np.int64) if void is None else np.asarray(void, np.int64), per_image)
    scores = []
    for tool in TOOLS:
        if tool.per_image and per_image is None:
            continue
        miou, iou = tool.rule(counts)
        scores.append(ToolScore(tool.name, miou, iou, tool.reason))
    return scores


def _counts_of(result) -> tuple[np.ndarray, np.ndarray | None, dict | None]:
    """A result's confusion matrix, void predictions and per-image statistics."""
    from fairseg_bench.errors import UserError

    if result.confusion_matrix is None:
        raise UserError(f"{result.source}: --compare-tools needs confusion matrices, and {result.method!r} has "
                        "per-class IoUs only (give a metrics.json, a run folder or a JSON of confusion matrices)")
    return result.confusion_matrix, result.void_predictions, result.per_image


def compare_results(results) -> list[tuple[Any, list[ToolScore], list[str]]]:
    """Per result (run or table entry) of a :class:`~fairseg_bench.results.read.Results`: its tool
    scores and the notes on what could not be computed."""
    out = []
    for result in results.runs:
        cm, void, per_image = _counts_of(result)
        notes = ["detectron2 BoundaryIoU: needs the label maps, which a result file does not keep"]
        if per_image is None:
            notes.insert(0, "torchmetrics MeanIoU: needs per-image statistics, which this result does not keep")
        out.append((result, compare_tools(cm, void, per_image), notes))
    return out


def _cell(value: float, digits: int) -> str:
    if np.isnan(value):
        return "NaN"
    return "-1" if value == -1 else f"{100 * value:.{digits}f}"


def _differences(score: ToolScore, base: ToolScore, classes, digits: int) -> str:
    """The classes whose value, as printed, differs from fairseg-bench's: ``name a (fairseg-bench b)``."""
    parts = [f"{name} {_cell(a, digits)} ({_cell(b, digits)})"
             for name, a, b in zip(classes, score.iou, base.iou) if _cell(a, digits) != _cell(b, digits)]
    return ", ".join(parts) or "none"


def render_comparison(results, *, digits: int = 2, fmt: str = "md") -> str:
    """One table per result: tool, mIoU (percent), the classes that differ from fairseg-bench, why.

    ``fmt="json"``: ``{"classes", "results": [{"method", "seed", "tools": [{"tool", "miou", "iou",
    "reason"}], "notes"}]}`` with fractions and null for NaN.
    """
    compared = compare_results(results)
    if fmt == "json":
        import json

        from fairseg_bench.results import jsonable

        doc = {"classes": results.classes, "results": [
            {"method": r.method, "seed": r.seed, "notes": notes,
             "tools": [{"tool": s.tool, "miou": s.miou, "iou": s.iou, "reason": s.reason} for s in scores]}
            for r, scores, notes in compared]}
        return json.dumps(jsonable(doc), indent=1) + "\n"
    blocks = []
    for result, scores, notes in compared:
        seed = "" if result.seed is None else f" (seed {result.seed})"
        lines = [f"### {result.method}{seed}: what other tools report", "",
                 "| tool | mIoU | classes that differ from fairseg-bench: tool (fairseg-bench) | why |",
                 "|:---|---:|:---|:---|"]
        lines += [f"| {s.tool} | {_cell(s.miou, digits)} | "
                  f"{'—' if s is scores[0] else _differences(s, scores[0], results.classes, digits)} | {s.reason} |"
                  for s in scores]
        lines += ["", *(f"Not computed: {note}." for note in notes)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------- detectron2's Boundary IoU
def _d2_boundary(label_map: np.ndarray) -> np.ndarray:
    """detectron2's ``_mask_to_boundary`` of a whole uint8 label map: ``map - erode(map, d)``.

    ``cv2.erode`` of the zero-padded map by a 3x3 square ``d`` times is a grey erosion by a
    ``(2d+1)^2`` square with zero outside the image; the difference is a difference of class ids.
    """
    from scipy import ndimage

    from fairseg_bench.core.boundary import boundary_width

    d = boundary_width(*label_map.shape)
    eroded = ndimage.minimum_filter(label_map, size=2 * d + 1, mode="constant", cval=0)
    return label_map - eroded


def detectron2_boundary_iou(labels, predictions, num_classes: int, ignore_index: int = 255) -> ToolScore:
    """detectron2 ``SemSegEvaluator``'s ``BoundaryIoU-<class>``, as it computes it, over pairs of label maps.

    Needs the label maps themselves (a results file keeps only counts). The ignored label is
    first set to K, as detectron2 does; both maps are then replaced by ``map - erode(map)``
    (:func:`_d2_boundary`) and counted in a (K+1) x (K+1) matrix whose value-0 entries, the
    interior of every region, count as class 0. Not the per-class Boundary IoU of
    :mod:`fairseg_bench.core.boundary`.

    Shape:
        labels, predictions: sequences of ``(H, W)`` integer maps.
    """
    k = int(num_classes)
    if k >= 255:
        raise ValueError("detectron2 computes Boundary IoU only for fewer than 255 classes")
    matrix = np.zeros((k + 1, k + 1), np.int64)  # rows prediction, columns ground truth, as detectron2
    for label, pred in zip(labels, predictions, strict=True):
        gt = np.array(label, dtype=np.int64)
        gt[gt == ignore_index] = k
        if gt.min() < 0 or gt.max() > k or np.min(pred) < 0 or np.max(pred) >= k:
            raise ValueError("detectron2's Boundary IoU needs labels in [0, K) or the ignore index, "
                             "predictions in [0, K)")
        b_gt = _d2_boundary(gt.astype(np.uint8)).astype(np.int64)
        b_pred = _d2_boundary(np.asarray(pred).astype(np.uint8)).astype(np.int64)
        matrix += np.bincount(((k + 1) * b_pred + b_gt).reshape(-1), minlength=matrix.size).reshape(matrix.shape)
    tp = np.diag(matrix)[:-1].astype(np.float64)
    pos_gt, pos_pred = matrix[:-1, :-1].sum(0).astype(np.float64), matrix[:-1, :-1].sum(1).astype(np.float64)
    iou = _ratio(tp, pos_gt + pos_pred - tp)
    # detectron2 prints no mean of its Boundary IoUs; the mean here is over its non-NaN values
    return ToolScore("detectron2 BoundaryIoU", mean_iou(iou), iou,
                     "boundary of the whole label map (a difference of class ids), not a per-class boundary")
