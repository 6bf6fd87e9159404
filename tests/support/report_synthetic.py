"""Small synthetic result folders for the report tests, written with the results schema.

Each run gets per-image confusion matrices drawn at random (a per-method, per-class quality makes
methods differ), from which ``per_image`` tp/fp/fn, the confusion matrix and the IoUs follow
exactly as the harness computes them. ``history.csv`` has sampler weights for ``tce`` runs and
``samples.npz`` holds small label maps.
"""
from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np

from fairseg_bench.results import write_atomic, write_json_atomic

CLASSES = ["road", "wall", "pole", "truck", "bus", "sky"]
PALETTE = [[128, 64, 128], [102, 102, 156], [153, 153, 153], [0, 0, 70], [0, 60, 100], [70, 130, 180]]
QUALITY = {  # how strongly each method gets each class right (higher: better IoU)
    "mcce": [30, 3, 2, 4, 6, 25],
    "focal": [26, 5, 4, 6, 7, 22],
    "tce": [29, 4, 2, 9, 10, 24],
}


def per_image_confusion(rng, quality, n_images: int) -> np.ndarray:
    """Random per-image confusion matrices with a diagonal weighted by ``quality``. Shape ``(N, K, K)``."""
    k = len(quality)
    lam = np.ones((k, k)) + np.diag(quality)
    cms = rng.poisson(lam, size=(n_images, k, k))
    cms[:, 2, :] = np.where(rng.random((n_images, 1)) < 0.3, 0, cms[:, 2, :])  # 'pole' absent from some images
    return cms.astype(np.int64)


def write_run(root: Path, method: str, seed: int, *, experiment: str = "quick", classes=CLASSES,
              quality=None, n_images: int = 10, steps: int = 30, sampler: bool | None = None,
              samples: bool = True, config_hash: str = "abc123") -> Path:
    """Write one run folder ``root/experiment/method-s<seed>`` and return it."""
    rng = np.random.default_rng([zlib.crc32(method.encode()), seed])
    quality = quality if quality is not None else QUALITY.get(method, [10] * len(classes))
    k = len(classes)
    cms = per_image_confusion(rng, quality, n_images)
    cm = cms.sum(axis=0)
    tp = np.diagonal(cms, axis1=1, axis2=2)
    fp = cms.sum(axis=1) - tp
    fn = cms.sum(axis=2) - tp
    union = tp.sum(0) + fp.sum(0) + fn.sum(0)
    iou = np.where(union > 0, tp.sum(0) / np.maximum(union, 1), np.nan)
    sampler = method.startswith("tce") if sampler is None else sampler
    folder = Path(root) / experiment / f"{method}-s{seed}"
    draws = rng.integers(0, 20, k)
    weights = draws / draws.sum()
    write_json_atomic(folder / "metrics.json", {
        "schema_version": 1, "experiment": experiment, "method": method, "loss_spec": method, "seed": seed,
        "config_hash": config_hash, "config": {"dataset": {"name": "synthetic"}, "steps": steps, "loss": method},
        "dataset": "synthetic", "split": "val", "steps": steps, "classes": list(classes), "ignore_index": 255,
        "confusion_matrix": cm, "per_image": {"tp": tp, "fp": fp, "fn": fn}, "iou": iou,
        "miou": float(np.nanmean(iou)), "pixel_accuracy": float(np.trace(cm) / cm.sum()),
        "class_accuracy": np.diag(cm) / cm.sum(1), "fairness": {},
        "sampler": {"name": "tce", "draw_histogram": draws, "final_weights": weights} if sampler else None,
        "timing": {"wall_time_s": 1.0, "train_images_per_s": 10.0, "eval_images_per_s": 20.0},
        "environment": {"fairseg_bench": "0.1.0", "torch": "x", "python": "3", "device": "cpu", "git_commit": None},
        "palette": (PALETTE[:k] if k <= len(PALETTE)
                    else [[(37 * i) % 256, (91 * i) % 256, (53 * i) % 256] for i in range(k)]),
    })
    write_atomic(folder / "config.yaml", f"experiment: {experiment}\nloss: {method}\nseed: {seed}\nsteps: {steps}\n")
    lines = ["step,lr,loss,grad_norm,images_per_s"
             + (",drawn_class," + ",".join(f"w_{c}" for c in classes) if sampler else "")]
    for step in range(1, steps + 1):
        row = f"{step},{0.01 * (1 - step / (steps + 1)):.6f},{2.0 / step + 0.1 * rng.random():.6f},1.0,50.0"
        if sampler:
            w = rng.dirichlet(np.ones(k) * 5)
            row += f",{classes[int(rng.integers(k))]}," + ",".join(f"{x:.6f}" for x in w)
        lines.append(row)
    write_atomic(folder / "history.csv", "\n".join(lines) + "\n")
    if samples:
        write_samples(folder / "samples.npz", method, k)
    return folder


def write_samples(path: Path, method: str, k: int, n: int = 5, size=(16, 24)) -> None:
    """The first ``n`` validation samples: a fixed image and target, a method-dependent prediction."""
    base = np.random.default_rng(0)
    target = base.integers(0, k, (n, 1, 1)) * np.ones((1, *size), dtype=np.int64)
    target[:, :4, :] = 0
    target[:, -3:, :5] = 255
    image = base.integers(0, 256, (n, *size, 3)).astype(np.uint8)
    rng = np.random.default_rng(len(method))
    flip = rng.random((n, *size)) < np.linspace(0.05, 0.6, n)[:, None, None]
    pred = np.where(flip, rng.integers(0, k, (n, *size)), np.where(target == 255, 0, target))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, image=image, target=target.astype(np.uint8), pred=pred.astype(np.uint8))
    write_atomic(path, buffer.getvalue())


def write_experiment(root: Path, methods=("mcce", "focal", "tce"), seeds=(0, 1), **kwargs) -> Path:
    """A whole experiment folder; returns ``root/experiment``."""
    for method in methods:
        for seed in seeds:
            write_run(root, method, seed, **kwargs)
    return Path(root) / kwargs.get("experiment", "quick")
