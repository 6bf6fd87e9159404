"""The per-image distribution figure: how a model's quality spreads over the validation images.

One curve per method: the empirical distribution (ECDF) of ``mIoU_i``, the per-image mIoU over the
classes in each image's ground truth (``docs/definitions.md``, "Image-level metrics"), in
percent; seeds are pooled. The shaded bands mark the worst 5 % and 10 % of images, whose means are
the worst-q % metrics; a curve further right is better, and a curve that rises late is fairer
across images. Built on ``matplotlib.figure.Figure`` (no pyplot state), like the other figures.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from fairseg_bench.core.image_metrics import WORST_PERCENTS, image_miou

DPI = 100
REFERENCE_COLOUR = "#4d4d4d"

__all__ = ["plot_image_miou", "per_image_miou_percent"]


def per_image_miou_percent(per_image_runs: list[dict]) -> np.ndarray:
    """``mIoU_i`` in percent of every image of every run (seeds pooled), images without a valid pixel dropped."""
    values = [image_miou(s["tp"], s["fp"], s["fn"]) for s in per_image_runs]
    pooled = np.concatenate(values) if values else np.zeros(0)
    return 100.0 * pooled[~np.isnan(pooled)]


def plot_image_miou(per_method: dict[str, np.ndarray], reference: str | None = None,
                    colours: dict | None = None, labels: dict | None = None) -> Figure:
    """ECDF of per-image mIoU (percent) of each method; ``per_method`` maps method -> values."""
    fig = Figure(figsize=(7.0, 4.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    for q, alpha in zip(sorted(WORST_PERCENTS, reverse=True)[:2], (0.08, 0.16), strict=True):
        ax.axhspan(0, q / 100, color="#d62728", alpha=alpha, lw=0)
        ax.text(0.5, q / 100, f" worst {q:g} %", va="bottom", ha="left", fontsize=8, color="#a01010")
    fallback = iter(["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442"])
    for method, values in per_method.items():
        values = np.sort(np.asarray(values, dtype=np.float64))
        if not values.size:
            continue
        colour = (colours or {}).get(method) or (REFERENCE_COLOUR if method == reference else next(fallback))
        y = np.arange(1, values.size + 1) / values.size
        name = (labels or {}).get(method, method)
        ax.step(values, y, where="post", color=colour, lw=2.2 if method == reference else 1.6,
                label=f"{name} (mean {values.mean():.1f}, n={values.size})")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1)
    ax.set_xlabel("per-image mIoU (%) — over the classes in each image's ground truth")
    ax.set_ylabel("share of images ≤ x")
    ax.set_title("Fairness across images: distribution of per-image mIoU")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return fig
