"""Every number a table, a figure or the gate shows, computed once from a :class:`Results`.

Units: IoU-valued numbers in percent; ``cov`` and ``gini`` also ×100 (percent), so every column
of every table, file and baseline is in one unit. With several seeds a method's value is the mean
over its seeds, its spread the sample std (ddof = 1). The sorted bottom/top groups rank the
classes by the **seed-mean** IoU of the reference (``docs/definitions.md``).

Intervals: with per-image statistics, the bootstrap over validation images (one draw of images
shared by every method and seed, so differences are paired; a method with several seeds also has
its seeds redrawn in each replicate); otherwise, with several seeds, the Student-t interval over
seeds; otherwise none.

Nothing misleads in silence (each case is a warning in :attr:`Summary.warnings` and a note):

- a class some results have and others lack (NaN) is dropped, the comparison is made on the
  classes every result has; ``strict=True`` refuses instead. Dropping is the default so that a
  table still comes out for exploration, but it is said loudly; the paper's tables need
  ``--strict``;
- a tie at the bottom-k/top-k cut of the reference ordering: the tied classes and the range the
  metric takes over every way of breaking the tie are named.

The numbers come in blocks (:class:`Block`: mean, std, interval and difference to the reference
of methods × columns). A block is built by a function of the shared :class:`Context` returning
per-seed values and bootstrap replicates; :data:`BLOCKS` lists them, so a new family of metrics
(e.g. image-level) is one function and one entry.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairseg_bench.core import stats
from fairseg_bench.core.fairness import COUNT_KEYS, FAIRNESS_KEYS, cut_ties, fairness_metrics, sorted_group_range
from fairseg_bench.errors import UserError
from fairseg_bench.results.read import Results

MIOU = "mIoU"
#: The fairness columns of every table, JSON and gate: core's metrics in Table 3's order, without its
#: counts (``n_classes`` and ``k`` are in ``Summary``).
FAIRNESS_COLUMNS = tuple(key for key in FAIRNESS_KEYS if key not in COUNT_KEYS)
PERCENT_RATIOS = ("cov", "gini")  # unitless ratios shown ×100
#: The image-level columns (docs/definitions.md, "Image-level metrics"), percent; NaN without per-image statistics.
IMAGE_KEYS = ("miou_image", "miou_image_worst_5", "miou_image_worst_10", "miou_class")
#: Boundary IoU (Cheng et al. 2021): its mean over classes and the mean over classes of min(IoU, Boundary IoU), percent.
BOUNDARY_KEYS = ("biou", "min_iou_biou")
#: The across-group numbers of each grouping (docs/definitions.md, "Groups of images"): percent, the ratio unitless.
GROUP_KEYS = ("worst_group", "group_gap", "worst_cell", "es_harvard", "es_fairmedfm", "ratio_fairmedfm",
              "miou_image_all")
#: The group key the gate guards (of the first grouping attribute).
GROUP_GATED = ("worst_group",)

__all__ = ["Summary", "Block", "Context", "BLOCKS", "GroupSummary", "summarize", "MIOU", "FAIRNESS_COLUMNS",
           "IMAGE_KEYS", "BOUNDARY_KEYS", "GROUP_KEYS", "GROUP_GATED", "check_fraction", "group_column"]


@dataclass(frozen=True)
class Block:
    """One family of numbers for every method: frames indexed by method, one column per number."""

    mean: pd.DataFrame
    std: pd.DataFrame
    low: pd.DataFrame
    high: pd.DataFrame
    delta: pd.DataFrame  # mean minus the reference's mean
    delta_low: pd.DataFrame
    delta_high: pd.DataFrame
    per_seed: dict[str, np.ndarray]  # method -> (S, C)

    @property
    def significant(self) -> pd.DataFrame:
        """True where the paired interval of the difference against the reference excludes zero."""
        return (self.delta_low > 0) | (self.delta_high < 0)


@dataclass
class Context:
    """What every block builder shares: the results restricted to the compared classes."""

    methods: list[str]
    reference: str
    classes: list[str]
    fraction: float
    confidence: float
    seeds_iou: dict[str, np.ndarray]  # method -> (S, K) percent
    ref_iou: np.ndarray  # (K,) the reference's seed mean, percent
    boot: dict[str, np.ndarray | None]  # method -> (B, S, K) percent, or None
    per_image: dict[str, dict | None] = field(default_factory=dict)  # method -> {"tp","fp","fn"} (S, N, K)
    counts: np.ndarray | None = None  # (B, N) the bootstrap's image draws, shared by every method
    seed: int = 0
    # method -> {"intersection", "union"} (S, K) and "per_image" {"intersection", "union"} (S, N, K) or None
    boundary: dict[str, dict | None] = field(default_factory=dict)


def group_column(key: str, group: str | None = None, cls: str | None = None) -> str:
    """A column of a group block: ``key``, ``key@group`` or ``key@group@class`` (``es@@class`` per class)."""
    if group is None and cls is None:
        return key
    return f"{key}@{group or ''}" + ("" if cls is None else f"@{cls}")


@dataclass(frozen=True)
class GroupSummary:
    """The numbers of one grouping attribute: a block whose columns :func:`group_column` names.

    Columns: :data:`GROUP_KEYS`; per group g ``miou@g``, ``miou_image@g``, ``images@g`` and the
    fairness keys ``<key>@g``; per group and class ``iou@g@c``; per class ``es@@c``.
    """

    attribute: str
    groups: list[str]
    sizes: list[int]  # images per group
    block: Block
    source: str  # where the groups came from

    def cell(self, method: str) -> tuple[str, str] | None:
        """The (group, class) of the method's lowest seed-mean IoU cell."""
        from fairseg_bench.core.groups import worst_cell

        matrix = self.class_matrix(self.block.mean, method)
        found = worst_cell(matrix.to_numpy())
        return None if found is None else (str(matrix.index[found[0]]), str(matrix.columns[found[1]]))

    def class_matrix(self, frame: pd.DataFrame, method: str) -> pd.DataFrame:
        """Groups × classes of ``iou@g@c`` from one of the block's frames (mean, delta, ...)."""
        classes = [c.split("@", 2)[2] for c in frame.columns if c.startswith(f"iou@{self.groups[0]}@")]
        return pd.DataFrame([[frame.loc[method, group_column("iou", g, c)] for c in classes] for g in self.groups],
                            index=self.groups, columns=classes)


@dataclass(frozen=True)
class Summary:
    """Every number of one comparison. ``blocks["iou"]``: classes + mIoU; ``blocks["fairness"]``."""

    classes: list[str]  # the compared classes, dataset order
    reference: str
    order: list[str]  # classes by ascending reference IoU
    fraction: float
    k: int
    n_seeds: pd.Series
    seeds: dict[str, list]  # method -> its seeds (None for a table row without one)
    blocks: dict[str, Block]
    confidence: float
    interval: str  # how the intervals were obtained, said in captions
    dropped: list[str] = field(default_factory=list)  # classes left out (missing in some results)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tie_ranges: dict[str, pd.DataFrame] = field(default_factory=dict)  # key -> methods × (low, high)
    groups: dict[str, GroupSummary] = field(default_factory=dict)  # attribute -> its numbers, in order

    @property
    def methods(self) -> list[str]:
        return list(self.blocks["iou"].mean.index)

    # the frames of the two built-in blocks under flat names
    @property
    def iou(self) -> pd.DataFrame:
        return self.blocks["iou"].mean

    @property
    def iou_std(self) -> pd.DataFrame:
        return self.blocks["iou"].std

    @property
    def iou_low(self) -> pd.DataFrame:
        return self.blocks["iou"].low

    @property
    def iou_high(self) -> pd.DataFrame:
        return self.blocks["iou"].high

    @property
    def delta(self) -> pd.DataFrame:
        return self.blocks["iou"].delta

    @property
    def delta_low(self) -> pd.DataFrame:
        return self.blocks["iou"].delta_low

    @property
    def delta_high(self) -> pd.DataFrame:
        return self.blocks["iou"].delta_high

    @property
    def significant(self) -> pd.DataFrame:
        return self.blocks["iou"].significant

    @property
    def fairness(self) -> pd.DataFrame:
        return self.blocks["fairness"].mean

    @property
    def fairness_std(self) -> pd.DataFrame:
        return self.blocks["fairness"].std

    @property
    def fairness_low(self) -> pd.DataFrame:
        return self.blocks["fairness"].low

    @property
    def fairness_high(self) -> pd.DataFrame:
        return self.blocks["fairness"].high

    @property
    def fairness_delta(self) -> pd.DataFrame:
        return self.blocks["fairness"].delta

    @property
    def fairness_delta_low(self) -> pd.DataFrame:
        return self.blocks["fairness"].delta_low

    @property
    def fairness_delta_high(self) -> pd.DataFrame:
        return self.blocks["fairness"].delta_high

    @property
    def fairness_significant(self) -> pd.DataFrame:
        return self.blocks["fairness"].significant

    @property
    def has_image_level(self) -> bool:
        """Whether some method has per-image statistics (so the image-level block holds numbers)."""
        return bool(self.blocks["image"].mean.notna().any().any())

    @property
    def has_boundary(self) -> bool:
        """Whether some method has Boundary IoU counts."""
        return bool(self.blocks["boundary"].mean.notna().any().any())

    def lacking_boundary(self) -> list[str]:
        """The methods without Boundary IoU counts (records written before it was counted, or tables)."""
        frame = self.blocks["boundary"].mean
        return [m for m in frame.index if frame.loc[m].isna().all()]


def check_fraction(fraction: float) -> float:
    """``fraction`` must lie in (0, 0.5]: past a half the 'bottom' group overlaps the 'top' one."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 0.5):
        raise UserError(f"--fraction {fraction}: must lie in (0, 0.5] (the bottom and top groups may not overlap)")
    return float(fraction)


@contextmanager
def _quiet_nan():
    """Silence numpy's 'mean of empty slice' for all-NaN columns (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ------------------------------------------------------------------------- the blocks
def _with_miou(iou: np.ndarray) -> np.ndarray:
    """Append the mean over classes (NaN left out) as a last column. Shape ``(..., K) -> (..., K+1)``."""
    with _quiet_nan():
        return np.concatenate([iou, np.nanmean(iou, axis=-1, keepdims=True)], axis=-1)


def _fairness_rows(iou: np.ndarray, reference: np.ndarray, fraction: float) -> np.ndarray:
    """Fairness metrics of every row. Shape ``(..., K) -> (..., len(FAIRNESS_COLUMNS))``, ratios ×100."""
    metrics = fairness_metrics(np.atleast_2d(iou), reference=reference, fraction=fraction)
    scale = [100.0 if key in PERCENT_RATIOS else 1.0 for key in FAIRNESS_COLUMNS]
    return np.stack([np.asarray(metrics[k], dtype=np.float64) for k in FAIRNESS_COLUMNS], axis=-1) * scale


def iou_block(ctx: Context):
    """Per-class IoU and mIoU: per-seed values and seed-mean bootstrap replicates."""
    per_seed = {m: _with_miou(ctx.seeds_iou[m]) for m in ctx.methods}
    with _quiet_nan():
        reps = {m: None if b is None else _with_miou(np.nanmean(b, axis=1)) for m, b in ctx.boot.items()}
    return ctx.classes + [MIOU], per_seed, reps


def fairness_block(ctx: Context):
    """The fairness metrics, every seed ranked by the reference's seed mean."""
    per_seed = {m: _fairness_rows(ctx.seeds_iou[m], ctx.ref_iou, ctx.fraction) for m in ctx.methods}
    with _quiet_nan():
        reps = {m: None if b is None else np.nanmean(_fairness_rows(b, ctx.ref_iou, ctx.fraction), axis=1)
                for m, b in ctx.boot.items()}
    return list(FAIRNESS_COLUMNS), per_seed, reps


def image_block(ctx: Context):
    """Fairness across images (mIoU^I, its worst 5/10 %, mIoU^C) from per-image statistics; NaN without them."""
    from fairseg_bench.core.image_metrics import image_level_metrics, image_level_replicates

    per_seed, reps = {}, {}
    rng = np.random.default_rng([ctx.seed, 2])
    for m in ctx.methods:
        stacks = ctx.per_image.get(m)
        seeds = len(ctx.seeds_iou[m])
        if stacks is None:
            per_seed[m], reps[m] = np.full((seeds, len(IMAGE_KEYS)), np.nan), None
            continue
        runs = [{k: stacks[k][s] for k in ("tp", "fp", "fn")} for s in range(seeds)]
        per_seed[m] = 100.0 * np.array([[image_level_metrics(**r)[k] for k in IMAGE_KEYS] for r in runs])
        if ctx.counts is None or ctx.counts.shape[1] != stacks["tp"].shape[1]:
            reps[m] = None  # no draw, or another image set than the draw's
            continue
        draws = [image_level_replicates(**r, counts=ctx.counts) for r in runs]
        values = 100.0 * np.stack([np.stack([d[k] for k in IMAGE_KEYS], axis=-1) for d in draws], axis=1)
        with _quiet_nan():
            reps[m] = np.nanmean(stats.draw_seeds(values, rng), axis=1)  # (B, S, C) -> (B, C)
    return list(IMAGE_KEYS), per_seed, reps


def _boundary_columns(biou: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Per-class Boundary IoU, its class mean, the class mean of min(IoU, BIoU). ``(..., K) -> (..., K+2)``."""
    with _quiet_nan():
        return np.concatenate([biou, np.nanmean(biou, axis=-1, keepdims=True),
                               np.nanmean(np.minimum(iou, biou), axis=-1, keepdims=True)], axis=-1)


def boundary_block(ctx: Context):
    """Boundary IoU per class (%), its mean and min(IoU, Boundary IoU); NaN for records without the counts."""
    from fairseg_bench.core.boundary import boundary_iou

    per_seed, reps = {}, {}
    rng = np.random.default_rng([ctx.seed, 3])
    for m in ctx.methods:
        counts = ctx.boundary.get(m)
        seeds = len(ctx.seeds_iou[m])
        if counts is None:
            per_seed[m], reps[m] = np.full((seeds, len(ctx.classes) + 2), np.nan), None
            continue
        biou = 100.0 * boundary_iou(counts["intersection"], counts["union"])
        per_seed[m] = _boundary_columns(biou, ctx.seeds_iou[m])
        images, stacks = counts["per_image"], ctx.per_image.get(m)
        if images is None or stacks is None or ctx.counts is None or ctx.counts.shape[1] != images["union"].shape[1]:
            reps[m] = None
            continue
        w = ctx.counts.astype(np.float64)
        biou = np.stack([boundary_iou(w @ images["intersection"][s], w @ images["union"][s]) for s in range(seeds)],
                        axis=1)  # (B, S, K)
        both = stats.draw_seeds(np.concatenate([biou, stats.bootstrap_seed_iou(stacks, ctx.counts)], axis=-1), rng)
        k = len(ctx.classes)
        with _quiet_nan():
            reps[m] = np.nanmean(_boundary_columns(100.0 * both[..., :k], 100.0 * both[..., k:]), axis=1)
    return ctx.classes + list(BOUNDARY_KEYS), per_seed, reps


#: name -> builder(ctx) -> (columns, {method: (S, C) per-seed values}, {method: (B, C) replicates or None})
BLOCKS: dict[str, Callable] = {"iou": iou_block, "fairness": fairness_block, "image": image_block,
                               "boundary": boundary_block}


def _block(ctx: Context, columns, per_seed, reps) -> tuple[Block, set[str]]:
    """Means, spreads, intervals and paired differences of one block."""
    index = pd.Index(ctx.methods, name="method")
    frame = lambda rows: pd.DataFrame(np.asarray(rows, dtype=np.float64).reshape(len(index), len(columns)),  # noqa: E731
                                      index=index, columns=columns)
    with _quiet_nan():
        mean = frame([np.nanmean(per_seed[m], axis=0) for m in ctx.methods])
    std = frame([stats.seed_std(per_seed[m]) for m in ctx.methods])
    low, high, kinds = [], [], set()
    for m in ctx.methods:
        if reps[m] is not None:
            bounds = stats.percentile_interval(reps[m], ctx.confidence)
            kinds.add("bootstrap over images" + (" and seeds" if len(per_seed[m]) > 1 else ""))
        elif len(per_seed[m]) > 1:
            summary = stats.seed_summary(per_seed[m], ctx.confidence)
            bounds = summary["low"], summary["high"]
            kinds.add("t-interval over seeds")
        else:
            bounds = (np.full(len(columns), np.nan),) * 2
        low.append(bounds[0])
        high.append(bounds[1])
    ref = ctx.reference
    d_low, d_high = [], []
    for m in ctx.methods:
        paired = m != ref and reps[m] is not None and reps[ref] is not None
        bounds = stats.percentile_interval(reps[m] - reps[ref], ctx.confidence) if paired else (
            np.full(len(columns), np.nan),) * 2
        d_low.append(bounds[0])
        d_high.append(bounds[1])
    block = Block(mean, std, frame(low), frame(high), mean - mean.loc[ref], frame(d_low), frame(d_high),
                  dict(per_seed))
    return block, kinds


# ------------------------------------------------------------------------ the checks
def _common_classes(results: Results, strict: bool) -> tuple[list[int], list[str], list[str]]:
    """Indices of the classes to compare, the dropped class names, and the warnings."""
    finite = np.stack([np.isfinite(r.iou) for r in results.runs])  # (runs, K)
    partial = finite.any(0) & ~finite.all(0)
    lines = []
    for c in np.flatnonzero(partial):
        lacking = sorted({r.method + ("" if r.seed is None else f" (seed {r.seed})")
                          for r, ok in zip(results.runs, finite[:, c]) if not ok})
        lines.append(f"{', '.join(lacking)} lack(s) class {results.classes[c]!r} that other results have")
    if lines and strict:
        raise UserError(lines[0] + "; --strict refuses to compare different class sets")
    keep = [c for c in range(len(results.classes)) if not partial[c]]
    dropped = [results.classes[c] for c in np.flatnonzero(partial)]
    if dropped:
        lines = [f"{line}: compared on the {len(keep)} classes every result has" for line in lines]
    return keep, dropped, lines


def _tie_notes(ctx: Context, fairness: pd.DataFrame) -> tuple[list[str], dict[str, pd.DataFrame]]:
    """A note and the metric's range over tie choices for each tied cut of the reference ordering."""
    ties = cut_ties(ctx.ref_iou, ctx.fraction)
    notes, ranges = [], {}
    for group, tied in ties.items():
        if not tied:
            continue
        key = f"sorted_{group}"
        rows = {}
        for m in ctx.methods:
            with _quiet_nan():
                mean_iou = np.nanmean(ctx.seeds_iou[m], axis=0)
            rows[m] = sorted_group_range(mean_iou, ctx.ref_iou, ctx.fraction, group)
        ranges[key] = pd.DataFrame(rows, index=["low", "high"]).T
        names = ", ".join(ctx.classes[c] for c in tied)
        spans = "; ".join(f"{m} {lo:.2f}–{hi:.2f}" for m, (lo, hi) in rows.items() if not math.isclose(lo, hi))
        notes.append(f"Tie at the {group}-{_k(ctx)} cut: {ctx.reference} gives the same IoU to {names}; "
                     f"the group takes them by class index. {key} over every choice: {spans or 'the same for all'}.")
    return notes, ranges


def _k(ctx: Context) -> int:
    return int(fairness_metrics(ctx.ref_iou, fraction=ctx.fraction)["k"])


# ---------------------------------------------------------------------------- bootstrap
def _bootstrap(stacks: dict, n_boot: int, seed: int) -> tuple[dict[str, np.ndarray | None], np.ndarray | None]:
    """Per-seed IoU replicates ``(B, S, K)`` in percent, images shared by all (None where impossible), and the draws."""
    sizes = {s["tp"].shape[1] for s in stacks.values() if s is not None}
    if len(sizes) != 1 or n_boot < 1:
        return dict.fromkeys(stacks), None
    counts = stats.bootstrap_counts(sizes.pop(), n_boot, seed)
    rng = np.random.default_rng([seed, 1])
    return {m: None if s is None or s["tp"].shape[1] != counts.shape[1] else
            stats.draw_seeds(stats.bootstrap_seed_iou(s, counts) * 100.0, rng) for m, s in stacks.items()}, counts


def _per_image(results: Results, method: str, keep) -> dict[str, np.ndarray] | None:
    """Per-image tp/fp/fn of every seed, ``(S, N, K)``; None if a seed lacks them or sizes differ."""
    per_run = [r.per_image for r in results.runs_of(method)]
    if not per_run or any(s is None for s in per_run) or len({s["tp"].shape for s in per_run}) != 1:
        return None
    return {k: np.stack([s[k][:, keep] for s in per_run]) for k in ("tp", "fp", "fn")}


def _boundary_stacks(results: Results, method: str, keep) -> dict | None:
    """Boundary IoU counts of every seed: totals ``(S, K)``, per image ``(S, N, K)`` or None; None if one lacks them."""
    blocks = [r.boundary for r in results.runs_of(method)]
    if not blocks or any(b is None for b in blocks):
        return None
    out: dict = {k: np.stack([b[k][keep] for b in blocks]) for k in ("intersection", "union")}
    images = [b["per_image"] for b in blocks]
    same = all(i is not None for i in images) and len({i["union"].shape for i in images}) == 1
    out["per_image"] = None if not same else {k: np.stack([i[k][:, keep] for i in images])
                                              for k in ("intersection", "union")}
    return out


# ------------------------------------------------------------------------------- groups
def _group_values(tp, fp, fn, codes, n_groups: int, weights, ref_iou: np.ndarray | None, fraction: float):
    """One seed's group numbers as a row per replicate, in :func:`_group_columns` order (percent; ratio unitless).

    ``ref_iou`` ``(G, K)`` percent ranks the classes within each group for the fairness keys (the
    reference's seed mean there); None: each model ranked by itself. Shape: ``(B, C)``.
    """
    from fairseg_bench.core.groups import group_metrics

    out = group_metrics(tp, fp, fn, codes, weights, n_groups)
    iou = 100.0 * out["iou"]  # (B, G, K)
    scalars = [100.0 * out[k] if k != "ratio_fairmedfm" else out[k] for k in GROUP_KEYS]
    fair = [_fairness_rows(iou[:, g], None if ref_iou is None else ref_iou[g], fraction) for g in range(n_groups)]
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)
    per_group = [np.stack([100.0 * out["miou"][:, g], 100.0 * out["miou_image"][:, g],
                           np.full(len(iou), sizes[g])], axis=-1) for g in range(n_groups)]
    return np.concatenate([np.stack(scalars, axis=-1), *per_group, *[f[:, 1:] for f in fair],
                           iou.reshape(len(iou), -1), 100.0 * out["es_class"]], axis=-1)


def _group_columns(groups: list[str], classes: list[str]) -> list[str]:
    per_group = [group_column(k, g) for g in groups for k in ("miou", "miou_image", "images")]
    fair = [group_column(k, g) for g in groups for k in FAIRNESS_COLUMNS[1:]]
    cells = [group_column("iou", g, c) for g in groups for c in classes]
    return list(GROUP_KEYS) + per_group + fair + cells + [group_column("es", None, c) for c in classes]


def _group_summary(ctx: Context, results: Results, aligned, keep, n_boot: int, source: str) -> GroupSummary:
    """Every group number of one attribute for every method: per seed, and over images drawn within groups."""
    from fairseg_bench.core.groups import group_iou, stratified_counts

    n_groups, columns = len(aligned.groups), _group_columns(aligned.groups, ctx.classes)
    stacks: dict[str, list[dict] | None] = {}
    for m in ctx.methods:
        runs = results.runs_of(m)
        rows = [aligned.rows.get(id(r)) for r in runs]
        stacks[m] = None if any(x is None for x in rows) else [
            {k: r.per_image[k][x][:, keep] for k in ("tp", "fp", "fn")} for r, x in zip(runs, rows)]
    ref_runs = stacks[ctx.reference]
    with _quiet_nan():
        ref_iou = None if ref_runs is None else 100.0 * np.nanmean(
            [group_iou(**s, codes=aligned.codes, n_groups=n_groups)[0] for s in ref_runs], axis=0)
    counts = stratified_counts(aligned.codes, n_boot, [ctx.seed, 4]) if n_boot > 0 else None
    rng = np.random.default_rng([ctx.seed, 5])
    per_seed: dict[str, np.ndarray] = {}
    reps: dict[str, np.ndarray | None] = {}
    for m in ctx.methods:
        if stacks[m] is None:
            per_seed[m], reps[m] = np.full((len(ctx.seeds_iou[m]), len(columns)), np.nan), None
            continue
        seed_stacks = stacks[m]
        values = [_group_values(**s, codes=aligned.codes, n_groups=n_groups, weights=None, ref_iou=ref_iou,
                                fraction=ctx.fraction) for s in seed_stacks]
        per_seed[m], reps[m] = np.concatenate(values), None
        if counts is not None:
            drawn = [_group_values(**s, codes=aligned.codes, n_groups=n_groups, weights=counts, ref_iou=ref_iou,
                                   fraction=ctx.fraction) for s in seed_stacks]
            with _quiet_nan():
                reps[m] = np.nanmean(stats.draw_seeds(np.stack(drawn, axis=1), rng), axis=1)
    block, _ = _block(ctx, columns, per_seed, reps)
    sizes = np.bincount(aligned.codes, minlength=n_groups).tolist()
    return GroupSummary(aligned.attribute, list(aligned.groups), sizes, block, source)


def _groups(ctx: Context, results: Results, grouping, keep, n_boot: int) -> tuple[dict, list[str]]:
    """The group summaries of every attribute of ``grouping`` (the records' own when None), and the warnings."""
    from fairseg_bench.results.groups import align, builtin_groups

    grouping = grouping if grouping is not None else builtin_groups(results)
    if grouping is None:
        return {}, []
    out, warnings = {}, []
    for attribute in grouping.attributes:
        try:
            aligned = align(results, grouping, attribute)
        except UserError as exc:
            if grouping.explicit:
                raise
            warnings.append(f"no groups by {attribute}: {exc}")
            continue
        if aligned is None:
            continue
        warnings += aligned.warnings
        out[attribute] = _group_summary(ctx, results, aligned, keep, n_boot, grouping.source)
    return out, warnings


# ------------------------------------------------------------------------------ summary
def summarize(results: Results, reference: str | None = None, *, fraction: float = 0.25, n_boot: int = 1000,
              confidence: float = 0.95, seed: int = 0, strict: bool = False, groups=None) -> Summary:
    """Compute every number of the comparison (see the module docstring).

    Args:
        results: from :func:`fairseg_bench.results.read.read_results`.
        reference: the method ranking the classes (default: the first MCCE, else the first).
        fraction: f of the fairness metrics, in (0, 0.5].
        n_boot: bootstrap replicates over validation images (0: none).
        confidence: interval level.
        seed: seed of the bootstrap draws.
        strict: refuse results that lack a class others have, instead of dropping it.
        groups: a :class:`~fairseg_bench.results.groups.Grouping` (``--groups``); None: the records'
            own ``image_attributes``, if any.
    """
    fraction = check_fraction(fraction)
    reference = results.resolve(reference)
    methods = [reference] + [m for m in results.methods if m != reference]
    keep, dropped, messages = _common_classes(results, strict)
    classes = [results.classes[c] for c in keep]
    seeds_iou = {m: results.iou(m)[:, keep] * 100.0 for m in methods}
    with _quiet_nan():
        ref_iou = np.nanmean(seeds_iou[reference], axis=0)
    stacks = {m: _per_image(results, m, keep) for m in methods}
    boot, counts = _bootstrap(stacks, n_boot, seed)
    ctx = Context(methods, reference, classes, fraction, confidence, seeds_iou, ref_iou, boot, stacks, counts, seed,
                  boundary={m: _boundary_stacks(results, m, keep) for m in methods})
    blocks, kinds = {}, set()
    for name, build in BLOCKS.items():
        blocks[name], found = _block(ctx, *build(ctx))
        kinds |= found
    group_summaries, group_warnings = _groups(ctx, results, groups, keep, n_boot)
    messages += group_warnings
    tie_notes, tie_ranges = _tie_notes(ctx, blocks["fairness"].mean)
    order_index = np.argsort(ref_iou, kind="stable")
    return Summary(
        classes=classes, reference=reference, order=[classes[i] for i in order_index], fraction=fraction,
        k=_k(ctx), n_seeds=pd.Series({m: len(seeds_iou[m]) for m in methods}, name="seeds"),
        seeds={m: [r.seed for r in results.runs_of(m)] for m in methods}, blocks=blocks,
        confidence=confidence,
        interval=" and ".join(sorted(kinds)) or "none (no per-image statistics and a single seed)",
        dropped=dropped, warnings=list(results.warnings) + messages + tie_notes,
        notes=list(results.notes) + list(results.warnings) + messages + tie_notes,
        tie_ranges=tie_ranges, groups=group_summaries,
    )
