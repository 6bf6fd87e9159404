"""The numbers behind every table and figure, computed once from a :class:`ReportInput`.

All IoUs here are in percent. With several seeds a method's value is the mean over its seeds and
its spread the sample standard deviation (ddof = 1). Confidence intervals come from the bootstrap
over validation images (per-image tp/fp/fn in ``metrics.json``): each replicate draws the images
once and uses the same draw for every seed and every method, so differences are paired; a method
with several seeds also has its seeds drawn with replacement in each replicate, so the intervals
carry the seed-to-seed spread as well as the finite validation set. The
sorted bottom/top fairness metrics order the classes by the **seed-mean** IoU of the reference.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairseg_bench.core import stats
from fairseg_bench.core.fairness import fairness_metrics
from fairseg_bench.report.inputs import ReportInput
from fairseg_bench.tables import reference_order as shared_order

FAIRNESS_KEYS = (
    "miou", "sorted_bottom", "sorted_top", "pct_bottom_threshold", "pct_bottom_mean",
    "pct_top_threshold", "pct_top_mean", "worst", "std", "best", "gap", "cov", "gini",
)
MIOU = "mIoU"


@dataclass(frozen=True)
class Summary:
    """Per-class IoU, differences against the reference and fairness metrics of every method.

    Frames are indexed by method (reference first) with the classes in dataset order plus
    ``mIoU`` as columns; ``order`` lists the classes sorted by the reference (ascending IoU).
    """

    classes: list[str]
    reference: str
    order: list[str]
    n_seeds: pd.Series
    iou: pd.DataFrame
    iou_std: pd.DataFrame
    iou_low: pd.DataFrame
    iou_high: pd.DataFrame
    delta: pd.DataFrame
    delta_low: pd.DataFrame
    delta_high: pd.DataFrame
    fairness: pd.DataFrame
    fairness_std: pd.DataFrame
    fairness_low: pd.DataFrame
    fairness_high: pd.DataFrame
    fairness_delta_low: pd.DataFrame
    fairness_delta_high: pd.DataFrame
    confidence: float
    interval: str  # how the fairness intervals were obtained, said in captions

    @property
    def methods(self) -> list[str]:
        return list(self.iou.index)

    @property
    def significant(self) -> pd.DataFrame:
        """True where the paired bootstrap interval of the difference excludes zero."""
        return (self.delta_low > 0) | (self.delta_high < 0)

    @property
    def fairness_significant(self) -> pd.DataFrame:
        """True where the paired bootstrap interval of a fairness metric's difference excludes zero."""
        return (self.fairness_delta_low > 0) | (self.fairness_delta_high < 0)


def reference_order(classes: list[str], reference_iou: np.ndarray) -> list[str]:
    """Classes by ascending reference IoU, ties by class index, NaN (absent) last."""
    return shared_order(pd.Series(reference_iou, index=classes))


def _with_miou(iou: np.ndarray) -> np.ndarray:
    """Append the mean over classes (NaN left out) as a last column. Shape ``(..., K) -> (..., K+1)``."""
    with _quiet_nan():
        miou = np.nanmean(iou, axis=-1, keepdims=True)
    return np.concatenate([iou, miou], axis=-1)


@contextmanager
def _quiet_nan():
    """Silence numpy's 'mean of empty slice' for all-NaN columns (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _seed_std(values: np.ndarray) -> np.ndarray:
    """Sample std over seeds (axis 0); NaN with a single seed."""
    if values.shape[0] < 2:
        return np.full(values.shape[1:], np.nan)
    with _quiet_nan():
        return np.nanstd(values, axis=0, ddof=1)


def _per_image_stack(data: ReportInput, method: str) -> dict[str, np.ndarray] | None:
    """Per-image tp/fp/fn of every seed of ``method``, stacked ``(S, N, K)``; None if any is missing."""
    per_run = [r.per_image() for r in data.runs_of(method)]
    if not per_run or any(s is None for s in per_run):
        return None
    if len({s["tp"].shape for s in per_run}) != 1:
        return None
    return {k: np.stack([s[k] for s in per_run]) for k in ("tp", "fp", "fn")}


def _fairness_rows(iou: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Fairness metrics of every row (seed, replicate). Shape ``(..., K) -> (..., len(FAIRNESS_KEYS))``."""
    metrics = fairness_metrics(np.atleast_2d(iou), reference=reference)
    return np.stack([np.asarray(metrics[k], dtype=np.float64) for k in FAIRNESS_KEYS], axis=-1)


def summarize(data: ReportInput, reference: str | None = None, *, n_boot: int = 1000,
              confidence: float = 0.95, seed: int = 0) -> Summary:
    """Compute every number the report shows (IoU in percent)."""
    reference = data.resolve(reference)
    methods = [reference] + [m for m in data.methods if m != reference]
    columns = data.classes + [MIOU]
    seeds_iou = {m: data.iou_matrix(m) for m in methods}  # (S, K) percent
    with _quiet_nan():
        mean = {m: np.nanmean(_with_miou(v), axis=0) for m, v in seeds_iou.items()}
    ref_iou = mean[reference][:-1]
    frame = lambda rows: pd.DataFrame(rows, index=pd.Index(methods, name="method"), columns=columns)  # noqa: E731

    iou = frame([mean[m] for m in methods])
    iou_std = frame([_seed_std(_with_miou(seeds_iou[m])) for m in methods])

    per_image = {m: _per_image_stack(data, m) for m in methods}
    weights = _bootstrap_weights(per_image.values(), n_boot, seed)
    rng = np.random.default_rng([seed, 1])
    boot_seeds = {m: None if s is None or weights is None else _draw_seeds(_boot_iou(s, weights), rng)
                  for m, s in per_image.items()}  # (B, S, K) percent
    boot = {m: None if b is None else _with_miou(_seed_mean(b)) for m, b in boot_seeds.items()}  # (B, K+1)
    iou_low, iou_high = _interval_frames(frame, methods, boot, len(columns), confidence)

    delta = iou - iou.loc[reference]
    diffs = {m: None if boot[m] is None or boot[reference] is None or m == reference else boot[m] - boot[reference]
             for m in methods}
    delta_low, delta_high = _interval_frames(frame, methods, diffs, len(columns), confidence)

    fair = lambda rows: pd.DataFrame(rows, index=pd.Index(methods, name="method"), columns=list(FAIRNESS_KEYS))  # noqa: E731
    fair_seeds = {m: _fairness_rows(seeds_iou[m], ref_iou) for m in methods}
    with _quiet_nan():
        fairness = fair([np.nanmean(fair_seeds[m], axis=0) for m in methods])
    fairness_std = fair([_seed_std(fair_seeds[m]) for m in methods])
    replicates = {m: _fairness_replicates(boot_seeds[m], ref_iou) for m in methods}
    fair_low, fair_high, fd_low, fd_high, interval = _fairness_intervals(methods, reference, fair_seeds, replicates, confidence)
    return Summary(
        classes=list(data.classes), reference=reference, order=reference_order(data.classes, ref_iou),
        n_seeds=pd.Series({m: len(seeds_iou[m]) for m in methods}, name="seeds"),
        iou=iou, iou_std=iou_std, iou_low=iou_low, iou_high=iou_high,
        delta=delta, delta_low=delta_low, delta_high=delta_high,
        fairness=fairness, fairness_std=fairness_std,
        fairness_low=fair(fair_low), fairness_high=fair(fair_high),
        fairness_delta_low=fair(fd_low), fairness_delta_high=fair(fd_high),
        confidence=confidence, interval=interval,
    )


def _interval_frames(frame, methods, replicates, width, confidence):
    """Percentile intervals of bootstrap replicates ``(B, C)`` per method; NaN rows where missing."""
    bounds = [_percentile(replicates[m], confidence) if replicates[m] is not None
              else (np.full(width, np.nan),) * 2 for m in methods]
    return frame([b[0] for b in bounds]), frame([b[1] for b in bounds])


def _fairness_replicates(reps: np.ndarray | None, ref_iou: np.ndarray) -> np.ndarray | None:
    """Seed-mean fairness metrics of each bootstrap replicate. Shape ``(B, S, K) -> (B, len(FAIRNESS_KEYS))``."""
    if reps is None:
        return None
    with _quiet_nan():
        return np.nanmean(_fairness_rows(reps, ref_iou), axis=1)


def _fairness_intervals(methods, reference, fair_seeds, replicates, confidence):
    """Fairness intervals (bootstrap over images, else t over seeds) and paired difference intervals."""
    shape = (len(methods), len(FAIRNESS_KEYS))
    low, high, delta_low, delta_high = (np.full(shape, np.nan) for _ in range(4))
    kinds = set()
    for i, m in enumerate(methods):
        if replicates[m] is not None:
            low[i], high[i] = _percentile(replicates[m], confidence)
            kinds.add("bootstrap over images" + (" and seeds" if len(fair_seeds[m]) > 1 else ""))
            if m != reference and replicates[reference] is not None:
                delta_low[i], delta_high[i] = _percentile(replicates[m] - replicates[reference], confidence)
        elif len(fair_seeds[m]) > 1:
            low[i], high[i] = _t_interval(fair_seeds[m], confidence)
            kinds.add("t-interval over seeds")
    interval = " and ".join(sorted(kinds)) or "none (no per-image statistics and a single seed)"
    return low, high, delta_low, delta_high, interval


# --- bootstrap over validation images (core.stats) -----------------------------------------

def _bootstrap_weights(stacks, n_boot: int, seed: int) -> np.ndarray | None:
    """How often each image is drawn in each replicate, shared by all methods. Shape ``(B, N)``.

    None when no method has per-image statistics or the methods were evaluated on different
    numbers of images (then no interval can be paired).
    """
    sizes = {s["tp"].shape[1] for s in stacks if s is not None}
    if len(sizes) != 1 or n_boot < 1:
        return None
    return stats.bootstrap_counts(sizes.pop(), n_boot, seed)


def _boot_iou(stack: dict[str, np.ndarray], counts: np.ndarray) -> np.ndarray:
    """Per-seed IoU (percent) of each replicate. Shapes ``(S, N, K), (B, N) -> (B, S, K)``."""
    per_seed = []
    for s in range(stack["tp"].shape[0]):
        totals = stats.resample_totals({k: stack[k][s] for k in ("tp", "fp", "fn")}, counts)
        union = totals["tp"] + totals["fp"] + totals["fn"]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_seed.append(np.where(union > 0, totals["tp"] / union, np.nan) * 100.0)
    return np.stack(per_seed, axis=1)


def _draw_seeds(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample the seeds of each replicate with replacement (the second level of the bootstrap).

    With one seed this changes nothing; with several, the seed-to-seed spread enters the
    intervals, so a difference is not called real when the seeds alone could produce it.
    Shape ``(B, S, K) -> (B, S, K)``.
    """
    b, s = values.shape[:2]
    drawn = rng.integers(0, s, size=(b, s))
    return np.take_along_axis(values, drawn[:, :, None], axis=1)


def _seed_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the seed axis 1, NaN left out. Shape ``(B, S, K) -> (B, K)``."""
    with _quiet_nan():
        return np.nanmean(values, axis=1)


def _percentile(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of bootstrap replicates (NaN replicates left out)."""
    return stats.percentile_interval(replicates, confidence)


def _t_interval(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the mean over axis 0 (seeds)."""
    summary = stats.seed_summary(values, confidence)
    return summary["low"], summary["high"]
