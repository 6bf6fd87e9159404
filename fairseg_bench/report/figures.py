"""The report's figures (matplotlib, seaborn), each a ``Figure`` saved as PNG and PDF.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no GUI backend), so
the report runs headless and never changes the caller's matplotlib backend. Every method keeps
one colour in every figure: the reference is dark grey, the others follow seaborn's colour-blind
palette. Figures have a fixed size (no tight bounding box), so a PNG is ``figsize * dpi`` pixels.
Builders are named ``plot_*``; ``labels`` maps method labels to display names.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator

from fairseg_bench.core.image_metrics import image_miou, image_stats
from fairseg_bench.results.read import Result, Results
from fairseg_bench.results.run_files import read_history, read_samples
from fairseg_bench.results.summary import MIOU, Summary

DPI = 100
REFERENCE_COLOUR = "#4d4d4d"
IGNORE_COLOUR = (0, 0, 0)
FAIRNESS_PANELS = [  # (key, title, direction shown to the reader)
    ("miou", "mIoU", "↑ better"), ("sorted_bottom", "sorted bottom 25%", "↑ fairer"),
    ("sorted_top", "sorted top 25%", "context"), ("pct_bottom_mean", "bottom 25th perc. mIoU", "↑ fairer"),
    ("worst", "worst class IoU", "↑ fairer"), ("std", "std. across classes", "↓ fairer"),
    ("gap", "gap (best − worst)", "↓ fairer"), ("gini", "Gini coefficient", "↓ fairer"),
]


def method_colours(methods: list[str], reference: str) -> dict[str, tuple]:
    """One colour per method, the reference in dark grey."""
    import seaborn as sns

    others = [m for m in methods if m != reference]
    palette = sns.color_palette("colorblind", max(len(others), 1))
    colours = {m: palette[i % len(palette)] for i, m in enumerate(others)}
    colours[reference] = REFERENCE_COLOUR
    return colours


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG, ``figsize * DPI`` pixels."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def pdf_bytes(fig: Figure) -> bytes:
    """The figure as PDF, the same bytes on every call (no creation date)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="pdf", dpi=DPI, metadata={"CreationDate": None})
    return buffer.getvalue()


def save_figure(fig: Figure, out_dir: str | Path, name: str, png: bytes | None = None) -> list[Path]:
    """Write ``name.png`` (``png`` if already rendered) and ``name.pdf`` under ``out_dir``; returns both paths."""
    from fairseg_bench.results import write_atomic

    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    write_atomic(paths[0], png if png is not None else png_bytes(fig))
    write_atomic(paths[1], pdf_bytes(fig))
    return paths


# ----------------------------------------------------------------------------- drawing in parallel
def _draw(builder) -> tuple[bytes, bytes] | None:
    fig = builder()
    return None if fig is None else (png_bytes(fig), pdf_bytes(fig))


def draw_figures(builders: list, workers: int | None = None) -> list[tuple[bytes, bytes] | None]:
    """(PNG, PDF) bytes of each ``builder()``'s figure (None where it draws none), in order.

    Drawing and rendering the figures is most of a report's time and uses one core; with two or more
    cores they are drawn in forked workers (``cpu_process.fork_map``), which share the summary and
    the results without pickling them (the bytes are the same either way).
    """
    from fairseg_bench.cpu_process import cpu_cores, fork_map

    return fork_map(_draw, builders, workers or cpu_cores())


def _new(width: float, height: float, **kwargs) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained", **kwargs)


def _error_bars(mean: pd.DataFrame, low: pd.DataFrame, high: pd.DataFrame, std: pd.DataFrame | None):
    """(lower, upper) error lengths: the CI where known, else ±std, else none."""
    lower = (mean - low).where(low.notna())
    upper = (high - mean).where(high.notna())
    if std is not None:
        lower = lower.fillna(std)
        upper = upper.fillna(std)
    return lower.fillna(0.0).clip(lower=0.0), upper.fillna(0.0).clip(lower=0.0)


def _grouped_bars(ax, values: pd.DataFrame, lower: pd.DataFrame, upper: pd.DataFrame, colours, alphas=None,
                  labels=None):
    """Bars of each row (method) side by side for every column (class)."""
    n = len(values.index)
    width = 0.8 / max(n, 1)
    x = np.arange(values.shape[1])
    for i, method in enumerate(values.index):
        offset = (i - (n - 1) / 2) * width
        yerr = np.vstack([lower.loc[method].to_numpy(), upper.loc[method].to_numpy()])
        yerr = yerr if yerr.any() else None  # no caps drawn for intervals that do not exist
        bars = ax.bar(x + offset, values.loc[method].fillna(0).to_numpy(), width, color=colours[method],
                      label=(labels or {}).get(method, method), yerr=yerr,
                      error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "#222222"})
        if alphas is not None:
            for bar, alpha in zip(bars, alphas.loc[method].to_numpy()):
                bar.set_alpha(alpha)
    ax.set_xticks(x, [str(c) for c in values.columns], rotation=40, ha="right", rotation_mode="anchor")
    ax.set_xlim(-0.6, values.shape[1] - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _interval_label(summary: Summary) -> str:
    """What the error bars of the per-class figure are."""
    level = round(summary.confidence * 100)
    with_ci = summary.iou_low.notna().any(axis=1)
    has_ci = with_ci.any()
    has_std = (summary.n_seeds[~with_ci] > 1).any()
    if has_ci and has_std:
        return f"error bars: {level}% bootstrap CI over images and seeds where available, else ± std over seeds"
    if has_ci:
        return f"error bars: {level}% bootstrap CI over images{_and_seeds(summary)}"
    if has_std:
        return "error bars: ± std over seeds"
    return "no error bars (no per-image statistics, one seed)"


def _and_seeds(summary: Summary) -> str:
    return " and seeds" if (summary.n_seeds > 1).any() else ""


def plot_per_class_iou(summary: Summary, labels: dict | None = None) -> Figure:
    """Per-class IoU of every method, classes in the reference's order, mIoU last."""
    columns = summary.order + [MIOU]
    lower, upper = _error_bars(summary.iou[columns], summary.iou_low[columns], summary.iou_high[columns],
                               summary.iou_std[columns])
    fig = _new(max(8.0, 0.62 * len(columns) + 2), 4.8)
    ax = fig.add_subplot()
    colours = method_colours(summary.methods, summary.reference)
    _grouped_bars(ax, summary.iou[columns], lower, upper, colours, labels=labels)
    ax.axvline(len(columns) - 1.5, color="#999999", lw=0.8, ls=":")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"Per-class IoU, classes sorted by {summary.reference}\n{_interval_label(summary)}", fontsize=10)
    ax.legend(ncols=min(len(summary.methods), 6), loc="upper left", fontsize=8, framealpha=0.9)
    return fig


def plot_delta_iou(summary: Summary, labels: dict | None = None) -> Figure | None:
    """IoU difference per class against the reference; faded bars where the paired CI includes 0."""
    others = [m for m in summary.methods if m != summary.reference]
    if not others:
        return None
    columns = summary.order + [MIOU]
    delta = summary.delta.loc[others, columns]
    lower, upper = _error_bars(delta, summary.delta_low.loc[others, columns], summary.delta_high.loc[others, columns],
                               None)
    has_ci = summary.delta_low.loc[others, columns].notna()
    alphas = pd.DataFrame(np.where(summary.significant.loc[others, columns] | ~has_ci, 1.0, 0.35),
                          index=others, columns=columns)
    fig = _new(max(8.0, 0.55 * len(columns) + 2), 4.5)
    ax = fig.add_subplot()
    _grouped_bars(ax, delta, lower, upper, method_colours(summary.methods, summary.reference), alphas, labels)
    ax.axhline(0, color="black", lw=0.8)
    ax.axvline(len(columns) - 1.5, color="#999999", lw=0.8, ls=":")
    ax.set_ylabel(f"Δ IoU vs {summary.reference} (pp)")
    level = round(summary.confidence * 100)
    bars = (f"error bars: paired {level}% bootstrap CI over the evaluated images{_and_seeds(summary)}"
            if has_ci.any().any()
            else "no error bars (no per-image statistics)")
    ax.set_title(f"IoU difference against {summary.reference}\n{bars}", fontsize=10)
    colours = method_colours(summary.methods, summary.reference)
    handles = [Patch(color=colours[m], label=(labels or {}).get(m, m)) for m in others]
    if (alphas < 1).any().any():
        handles.append(Patch(color="#777777", alpha=0.35, label="faded: CI includes 0"))
    ax.legend(handles=handles, ncols=min(len(handles), 6), loc="best", fontsize=8, framealpha=0.9)
    return fig


def _name(method: str, labels: dict | None) -> str:
    return (labels or {}).get(method, method)


def plot_fairness(summary: Summary, labels: dict | None = None) -> Figure:
    """Every fairness metric as a difference to the reference, on one shared axis per unit.

    The IoU-valued metrics (pp) share one x axis, so a 0.2 pp gap never looks like 40 pp; the
    ratios (CoV and Gini, ×100) share another. Dots: single seeds; diamond and bar: the mean with
    its interval.
    """
    methods = summary.methods
    ref = summary.reference
    units = {k: "ratio" if k in ("cov", "gini") else "pp" for k, _, _ in FAIRNESS_PANELS}
    ncols = 4
    nrows = math.ceil(len(FAIRNESS_PANELS) / ncols)
    fig = _new(3.2 * ncols, 0.35 * len(methods) * nrows + 1.6 * nrows + 0.8)
    colours = method_colours(methods, ref)
    y = np.arange(len(methods))[::-1]
    axes = {}
    for i, (key, title, direction) in enumerate(FAIRNESS_PANELS):
        share = next((axes[k] for k in axes if units[k] == units[key]), None)
        ax = fig.add_subplot(nrows, ncols, i + 1, sharex=share)
        axes[key] = ax
        _difference_points(ax, summary, key, y, colours)
        ax.axvline(0, color=REFERENCE_COLOUR, lw=0.8, ls=":")
        ax.set_yticks(y, [_name(m, labels) for m in methods] if i % ncols == 0 else [""] * len(methods), fontsize=8)
        ax.set_ylim(-0.7, len(methods) - 0.3)
        unit = "×100" if units[key] == "ratio" else "pp"
        ax.set_title(f"{title} ({direction}), Δ {unit}", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Fairness metrics minus {_name(ref, labels)}'s; dots: seeds; intervals: {summary.interval}",
                 fontsize=10)
    return fig


def _difference_points(ax, summary: Summary, key: str, y: np.ndarray, colours) -> None:
    """Each method's seeds (dots) and mean with its interval (diamond), minus the reference's mean."""
    column = list(summary.fairness.columns).index(key)
    base = summary.fairness.loc[summary.reference, key]
    for j, m in enumerate(summary.methods):
        seeds = summary.blocks["fairness"].per_seed[m][:, column] - base
        ax.plot(seeds, np.full(seeds.shape, y[j] + 0.18), "o", ms=3, color=colours[m], alpha=0.55)
        mean = summary.fairness.loc[m, key] - base
        err = _span(mean, summary.fairness_low.loc[m, key] - base, summary.fairness_high.loc[m, key] - base)
        ax.errorbar(mean, y[j], xerr=err, fmt="D", color=colours[m], capsize=3, ms=5)


def pareto_front(x: np.ndarray, y: np.ndarray) -> list[int]:
    """Indices of the points no other point beats on both coordinates (higher is better), by x."""
    front = [i for i in range(len(x)) if np.isfinite(x[i]) and np.isfinite(y[i]) and not any(
        x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i]) for j in range(len(x)))]
    return sorted(front, key=lambda i: x[i])


def plot_tradeoff(summary: Summary, labels: dict | None = None) -> Figure:
    """mIoU against worst-class IoU and against the sorted bottom group, intervals and Pareto front."""
    methods = summary.methods
    colours = method_colours(methods, summary.reference)
    fair, low, high = summary.fairness, summary.fairness_low, summary.fairness_high
    fig = _new(11, 4.6)
    pct = f"{100 * summary.fraction:g}%"
    panels = [("worst", "worst-class IoU (%)"), ("sorted_bottom", f"sorted bottom {pct} IoU (%)")]
    for i, (key, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        x, yv = fair["miou"].to_numpy(), fair[key].to_numpy()
        for j, m in enumerate(methods):
            xerr = _span(x[j], low.loc[m, "miou"], high.loc[m, "miou"])
            yerr = _span(yv[j], low.loc[m, key], high.loc[m, key])
            ax.errorbar(x[j], yv[j], xerr=xerr, yerr=yerr, fmt="o", ms=6, capsize=3, color=colours[m],
                        label=_name(m, labels))
            ax.annotate(_name(m, labels), (x[j], yv[j]), xytext=(5, 5), textcoords="offset points", fontsize=8)
        front = pareto_front(x, yv)
        if len(front) > 1:
            ax.plot(x[front], yv[front], "-", color="#888888", lw=1, zorder=0, label="Pareto front")
        ax.set_xlabel("mIoU (%)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.margins(0.15)
        if i == 0:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"Accuracy against fairness (up and right is better); intervals: {summary.interval}", fontsize=10)
    return fig


def _span(value, low, high):
    """Error-bar lengths for one point, or None without an interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [[max(value - low, 0)], [max(high - value, 0)]]


# --- figures from run folders ---------------------------------------------------------------

def _history(run: Result) -> pd.DataFrame | None:
    """The run's ``history.csv``, or None (no file, or a result without a run folder)."""
    return None if run.folder is None else read_history(run.folder)


def _first_seed_runs(data: Results, methods: list[str]) -> list[Result]:
    return [data.runs_of(m)[0] for m in methods if data.runs_of(m)]


def _class_colours(k: int):
    import seaborn as sns

    return sns.color_palette("tab20", 20)[:k] if k <= 20 else sns.color_palette("husl", k)


def plot_sampler_weights(data: Results, methods: list[str], labels: dict | None = None,
                         n_labelled: int = 5) -> Figure | None:
    """Stochastic TCE class-draw weights over training (smoothed) and the share of draws per class.

    The ``n_labelled`` classes whose smoothed weight moves most are coloured and named at the end
    of their line (for a static sampler such as RCS, whose weights never move, the largest); the
    others are thin grey lines.
    """
    rows = []
    for run in _first_seed_runs(data, methods):
        history = _history(run)
        weights = [c for c in history.columns if c.startswith("w_")] if history is not None else []
        sampler = run.record.get("sampler") or {}
        if weights or sampler.get("draw_histogram"):
            rows.append((run, history, weights, sampler))
    if not rows:
        return None
    colours = _class_colours(len(data.classes))
    fig = _new(13, 3.4 * len(rows) + 0.6)
    grid = fig.add_gridspec(len(rows), 2, width_ratios=[1.6, 1])
    for i, (run, history, weights, sampler) in enumerate(rows):
        ax = fig.add_subplot(grid[i, 0])
        named = _weight_lines(ax, history, weights, data.classes, colours, n_labelled) if weights else ""
        ax.axhline(1 / len(data.classes), color="black", lw=0.8, ls="--")
        ax.set_title(f"{_name(run.method, labels)} (seed {run.seed}): class-draw weights, smoothed; "
                     f"{named}dashed: uniform 1/K", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("weight", fontsize=8)
        ax.margins(x=0.12)
        ax.grid(alpha=0.3)
        _draw_shares(fig.add_subplot(grid[i, 1]), sampler, data.classes, colours)
    return fig


def _weight_lines(ax, history: pd.DataFrame, weights: list[str], classes: list[str], colours,
                  n_labelled: int) -> str:
    """Smoothed weight of every class; the ``n_labelled`` that move most (or, when none moves,
    the largest) coloured and named. Returns which were named, for the title."""
    steps = history["step"] if "step" in history.columns else pd.Series(history.index)
    smooth = history[weights].rolling(max(1, len(history) // 25), min_periods=1, center=True).mean()
    moves = smooth.max() - smooth.min()
    static = bool((moves <= 1e-12).all())
    rank = smooth.iloc[-1] if static else moves
    named = set(rank.sort_values(ascending=False).index[:n_labelled])
    for col in weights:
        colour = colours[classes.index(col[2:])] if col[2:] in classes else colours[0]
        if col not in named:
            ax.plot(steps, smooth[col], color="#bbbbbb", lw=0.7)
            continue
        ax.plot(steps, smooth[col], color=colour, lw=1.6)
        ax.annotate(col[2:], (steps.iloc[-1], smooth[col].iloc[-1]), xytext=(4, 0), textcoords="offset points",
                    fontsize=8, color=colour, va="center")
    return f"static; named: the {n_labelled} largest; " if static else f"named: the {n_labelled} that move most; "


def _draw_shares(ax, sampler: dict, classes: list[str], colours) -> None:
    """The share of draws per class, against the uniform 1/K."""
    draws = np.asarray(sampler.get("draw_histogram") or [0] * len(classes), dtype=float)
    ax.bar(np.arange(len(classes)), draws / draws.sum() if draws.sum() > 0 else draws, color=colours)
    ax.axhline(1 / len(classes), color="black", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(classes)), classes, rotation=60, ha="right", fontsize=7, rotation_mode="anchor")
    ax.set_ylabel("share of draws", fontsize=8)
    ax.set_title(f"classes drawn ({int(draws.sum())} draws)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def plot_training_curves(data: Results, summary: Summary, labels: dict | None = None) -> Figure | None:
    """Training loss (smoothed, one line per seed) and learning rate of every method."""
    histories = {m: [(r.seed, _history(r)) for r in data.runs_of(m)] for m in summary.methods}
    histories = {m: [(s, h) for s, h in hs if h is not None and {"step", "loss"} <= set(h.columns)]
                 for m, hs in histories.items()}
    histories = {m: hs for m, hs in histories.items() if hs}
    if not histories:
        return None
    colours = method_colours(summary.methods, summary.reference)
    fig = _new(12, 4.2)
    loss_ax, lr_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for method, runs in histories.items():
        for i, (_seed, h) in enumerate(runs):
            window = max(1, len(h) // 40)
            smooth = h["loss"].rolling(window, min_periods=1).mean()
            loss_ax.plot(h["step"], smooth, color=colours[method], lw=1.3, alpha=0.85,
                         label=_name(method, labels) if i == 0 else None)
        seed, h = runs[0]
        if "lr" in h.columns:
            lr_ax.plot(h["step"], h["lr"], color=colours[method], lw=1.3, label=_name(method, labels),
                       ls=("-", "--", ":", "-.")[len(lr_ax.lines) % 4])  # equal schedules stay visible
    loss_ax.set(xlabel="step", ylabel="training loss (smoothed)",
                title="Training loss, one line per seed (each method's own loss: scales differ)")
    low, high = loss_ax.dataLim.y0, loss_ax.dataLim.y1
    if low > 0 and high / low > 20:  # e.g. focal vs cross-entropy: a linear axis flattens one of them
        loss_ax.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        loss_ax.yaxis.set_major_formatter(plain)
        loss_ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # 1, 2, 5, 10: labels do not collide
        loss_ax.yaxis.set_minor_formatter(plain)
    lr_ax.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    for ax in (loss_ax, lr_ax):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(10)
    loss_ax.legend(fontsize=8)
    lr_ax.legend(fontsize=8)
    return fig


def _samples(run: Result) -> dict[str, np.ndarray] | None:
    """The run's ``samples.npz`` arrays, or None (no file, or a result without a run folder)."""
    return None if run.folder is None else read_samples(run.folder)


def _colourise(label: np.ndarray, palette: np.ndarray, ignore_index: int) -> np.ndarray:
    """Class ids ``(H, W)`` to RGB ``(H, W, 3)`` with the dataset palette; ignored pixels black."""
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = palette
    lut[ignore_index] = IGNORE_COLOUR
    return lut[label.astype(np.uint8)]


def select_samples(targets: np.ndarray, preds: dict[str, np.ndarray], k: int, ignore_index: int, n: int) -> list[int]:
    """The ``n`` samples where the methods' per-image mIoU (:func:`~fairseg_bench.core.image_metrics.image_miou`,
    the definition of the image-level tables) differ most: the range over methods, samples without a
    valid pixel last.

    Shape:
        targets ``(S, H, W)``; each of ``preds`` ``(S, H, W)``.
    """
    scores = np.stack([image_miou(*np.moveaxis(image_stats(targets, p, k, ignore_index), 1, 0))
                       for p in preds.values()])  # (methods, S); NaN for every method alike
    spread = np.nan_to_num(scores.max(0) - scores.min(0), nan=-1.0)
    return [int(i) for i in np.argsort(-spread, kind="stable")[:n]]


def plot_qualitative(data: Results, summary: Summary, labels: dict | None = None, n: int = 4) -> Figure | None:
    """Figure 1's grid: image | ground truth | each method, for the samples where methods differ most."""
    samples = {}
    for run in _first_seed_runs(data, summary.methods):
        loaded = _samples(run)
        if loaded is not None:
            samples[run.method] = (run, loaded)
    if not samples:
        return None
    first_run, first = next(iter(samples.values()))
    if first["target"].shape[0] == 0:
        return None
    same = {m: s for m, (r, s) in samples.items() if s["target"].shape == first["target"].shape
            and np.array_equal(s["target"], first["target"])}
    k = len(data.classes)
    palette = np.asarray(first_run.record.get("palette") or _default_palette(k), dtype=np.uint8)[:k]
    ignore = int(first_run.record.get("ignore_index", 255))
    chosen = select_samples(first["target"], {m: s["pred"] for m, s in same.items()}, k, ignore, n)
    columns = ["image", "ground truth", *(_name(m, labels) for m in same)]
    h, w = first["target"].shape[1:]
    panel_w = 2.6
    fig = _new(panel_w * len(columns), panel_w * h / w * len(chosen) + 1.3)
    axes = fig.subplots(len(chosen), len(columns), squeeze=False)
    for r, s in enumerate(chosen):
        panels = [first["image"][s], _colourise(first["target"][s], palette, ignore)]
        panels += [_colourise(same[m]["pred"][s], palette, ignore) for m in same]
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
        axes[r, 0].set_ylabel(f"sample {s}", fontsize=8)
    shown = [first["target"][chosen].ravel()] + [same[m]["pred"][chosen].ravel() for m in same]
    present = np.unique(np.concatenate(shown))
    present = [int(c) for c in present if c < k]
    handles = [Patch(facecolor=palette[c] / 255.0, edgecolor="#555555", label=data.classes[c]) for c in present]
    handles.append(Patch(facecolor=np.array(IGNORE_COLOUR) / 255.0, label="ignored"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8), fontsize=8, frameon=False)
    return fig


def _default_palette(k: int) -> np.ndarray:
    return (np.array(_class_colours(k)) * 255).round().astype(np.uint8)


def plot_confusion(data: Results, method: str) -> Figure | None:
    """Row-normalised confusion matrix (rows: ground truth) of ``method``, summed over its seeds."""
    import seaborn as sns

    matrices = [r.confusion_matrix for r in data.runs_of(method) if r.confusion_matrix is not None]
    if not matrices:
        return None
    cm = np.sum(matrices, axis=0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / cm.sum(axis=1, keepdims=True)
    k = len(data.classes)
    size = max(6.0, 0.5 * k + 2.5)
    fig = _new(size + 1.0, size)
    ax = fig.add_subplot()
    ax.set_facecolor("#e6e6e6")  # rows without ground truth (NaN) show grey, not white
    # Only shares of at least 0.01 are written: a grid of "0.00" hides the confusions that matter.
    annot = np.where(np.nan_to_num(norm) >= 0.005, np.char.mod("%.2f", np.nan_to_num(norm)), "")
    sns.heatmap(norm, ax=ax, vmin=0, vmax=1, cmap="viridis", square=True, annot=annot if k <= 30 else False,
                fmt="", annot_kws={"fontsize": max(6, min(10, 140 // k))}, xticklabels=data.classes,
                yticklabels=data.classes, cbar_kws={"label": "share of the ground-truth class", "shrink": 0.8})
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.tick_params(labelsize=8)
    for label in ax.get_xticklabels():
        label.set(rotation=45, ha="right", rotation_mode="anchor")
    ax.tick_params(axis="y", labelrotation=0)
    seeds = f"{len(matrices)} seeds summed" if len(matrices) > 1 else "1 seed"
    ax.set_title(f"Confusion matrix of {method} (rows normalised, {seeds}; grey: no ground truth)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------- groups
def plot_group_heatmap(summary: Summary, attribute: str, labels: dict | None = None) -> Figure | None:
    """Class × group heat map of each method's IoU minus the reference's (pp), one panel per method.

    With a single method, its own IoU per (class, group) instead.
    """
    group = summary.groups.get(attribute)
    if group is None:
        return None
    others = [m for m in summary.methods if m != summary.reference] or [summary.reference]
    delta = others != [summary.reference]
    frame = group.block.delta if delta else group.block.mean
    panels = [group.class_matrix(frame, m).loc[:, summary.order].T for m in others]  # classes × groups
    if all(p.isna().all().all() for p in panels):
        return None
    fig = _new(max(4.0, 1.1 * len(group.groups) * len(panels) + 2.5), max(3.5, 0.32 * len(summary.order) + 1.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    bound = max(1.0, float(np.nanmax([np.abs(p.to_numpy()).max() for p in panels])))
    for ax, method, panel in zip(axes, others, panels):
        image = ax.imshow(panel.to_numpy(dtype=float), aspect="auto", cmap="RdBu" if delta else "viridis",
                          vmin=-bound if delta else 0, vmax=bound if delta else 100)
        ax.set_xticks(range(len(panel.columns)), panel.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(panel.index)), panel.index if ax is axes[0] else [], fontsize=8)
        ax.set_title(_name(method, labels), fontsize=9)
    what = f"Δ IoU vs {summary.reference} (pp)" if delta else "IoU (%)"
    fig.colorbar(image, ax=list(axes), label=what, shrink=0.8)
    fig.suptitle(f"{what} per class and {attribute}", fontsize=10)
    return fig


def plot_group_gap(summary: Summary, attribute: str, labels: dict | None = None) -> Figure | None:
    """The gap between the best and worst group's mIoU per method, with its interval (or ± std over seeds)."""
    group = summary.groups.get(attribute)
    if group is None:
        return None
    block = group.block
    columns = ["group_gap", "worst_group"]
    if block.mean[columns].isna().all().all():
        return None
    lower, upper = _error_bars(block.mean[columns], block.low[columns], block.high[columns], block.std[columns])
    colours = method_colours(summary.methods, summary.reference)
    fig = _new(max(5.0, 1.2 * len(summary.methods) + 3), 3.8)
    axes = fig.subplots(1, 2)
    for ax, key, title in zip(axes, columns, (f"gap between {attribute}s (pp, ↓ fairer)", "worst group mIoU (%, ↑)")):
        x = np.arange(len(summary.methods))
        ax.bar(x, block.mean[key], yerr=[lower[key], upper[key]], capsize=3,
               color=[colours[m] for m in summary.methods])
        ax.set_xticks(x, [_name(m, labels) for m in summary.methods], rotation=30, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    level = round(summary.confidence * 100)
    fig.suptitle(f"Groups by {attribute}; error bars: {level}% bootstrap CI over images within groups"
                 f"{_and_seeds(summary)} where available, else ± std over seeds", fontsize=9)
    return fig
