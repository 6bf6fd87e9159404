"""Evaluating a prediction folder: pairs/s of ``evaluate --predictions`` against cityscapesScripts'
``evaluateImgLists`` and against the decode limit, all on one generated folder, in one run.

The folder is a Cityscapes val split of 1024x2048 labelId PNGs, Cityscapes-shaped as in
``bench_confusion.py`` (32-px blocks of every labelId, the ignored ones included) with predictions
wrong in ~20 % of 16-px blocks, written once to a temporary folder. Three methods, alternating
in every round (the order rotates); the table gives the median pairs/s over the rounds:

- ``fairseg-bench``: ``evaluate_predictions`` end to end (matching, worker pool start, decoding,
  counting, per-image statistics, the metrics.json write), ``--workers`` processes;
- ``cityscapesScripts``: ``evaluateImgLists`` on the same lists (no instance-level scores, no JSON,
  quiet; it runs in one process, as it always does);
- ``decode limit``: a pool of the same size that only decodes both PNGs of every pair with Pillow.

    python benchmarks/bench_predictions.py                 # 48 pairs, 3 rounds, all cores
    python benchmarks/bench_predictions.py --pairs 24 --rounds 5 --workers 2
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

H, W = 1024, 2048


def label_map(rng: np.random.Generator) -> np.ndarray:
    """Cityscapes-shaped labelIds, as ``bench_confusion.py`` makes them: 32-px blocks of every labelId 0..33."""
    return np.kron(rng.integers(0, 34, (H // 32, W // 32)), np.ones((32, 32), np.int64)).astype(np.uint8)


def prediction_of(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """The label, wrong (any labelId) in ~20 % of 16-px blocks."""
    wrong = np.kron(rng.random((H // 16, W // 16)) < 0.2, np.ones((16, 16), bool))
    other = np.kron(rng.integers(0, 34, (H // 16, W // 16)), np.ones((16, 16), np.int64)).astype(np.uint8)
    return np.where(wrong, other, label)


def make_folder(base: Path, pairs: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    data, preds = base / "data", base / "preds"
    for k in range(pairs):
        city = f"city{k % 3}"
        stem = f"{city}_{k:06d}_000019"
        label = label_map(rng)
        (data / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        (preds / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(label).save(data / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
        Image.fromarray(prediction_of(rng, label)).save(preds / city / f"{stem}_leftImg8bit.png")
    return data, preds


def _decode_pair(pair: tuple[str, str]) -> int:
    total = 0
    for path in pair:
        with Image.open(path) as img:
            total += np.asarray(img).shape[0]
    return total


def time_decode_limit(pairs: list[tuple[str, str]], workers: int) -> float:
    start = time.perf_counter()
    with mp.get_context("fork").Pool(workers) as pool:
        list(pool.imap(_decode_pair, pairs))  # one pair a task, as evaluate does
    return time.perf_counter() - start


def time_ours(data: Path, preds: Path, out: Path, workers: int) -> float:
    from fairseg_bench.predictions import evaluate_predictions

    start = time.perf_counter()
    evaluate_predictions(preds, dataset="cityscapes", root=data, out=out, workers=workers, quiet=True,
                         print_tables=False)
    return time.perf_counter() - start


def time_official(pairs: list[tuple[str, str]]) -> float:
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    ev.args.evalInstLevelScore, ev.args.JSONOutput, ev.args.quiet = False, False, True
    start = time.perf_counter()
    ev.evaluateImgLists([p for _, p in pairs], [g for g, _ in pairs], ev.args)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args(argv)
    import torch

    from fairseg_bench.predictions import default_workers

    torch.set_num_threads(1)
    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="bench_predictions_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data, preds = make_folder(tmp, args.pairs)
        gts = sorted((data / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
        pairs = [(str(g), str(preds / g.parent.name / g.name.replace("_gtFine_labelIds", "_leftImg8bit")))
                 for g in gts]
        size = np.mean([os.path.getsize(p) for pair in pairs for p in pair]) / 1024
        print(f"{args.pairs} pairs of {W}x{H} label PNGs (mean {size:.0f} KiB) written in "
              f"{time.perf_counter() - t0:.0f} s; {workers} workers; load average {os.getloadavg()[0]:.1f}")
        methods = {
            "fairseg-bench": lambda: time_ours(data, preds, tmp / "out" / "metrics.json", workers),
            "cityscapesScripts": lambda: time_official(pairs),
            "decode limit": lambda: time_decode_limit(pairs, workers),
        }
        rates: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[: r % 3]:  # rotate the order every round
                rates[name].append(args.pairs / methods[name]())
        med = {name: statistics.median(v) for name, v in rates.items()}
        print(f"\n| method | pairs/s (median of {args.rounds}) | rounds | vs decode limit | vs cityscapesScripts |")
        print("|---|---:|---|---:|---:|")
        for name in names:
            print(f"| {name} | {med[name]:.1f} | {', '.join(f'{v:.1f}' for v in rates[name])} | "
                  f"{med[name] / med['decode limit']:.2f}x | {med[name] / med['cityscapesScripts']:.2f}x |")
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
