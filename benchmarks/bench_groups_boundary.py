"""The cost of Boundary IoU and of the group metrics on a Cityscapes-size prediction folder, in one run.

500 pairs of 1024x2048 labelId PNGs (three cities, so the built-in groups are the cities). The
label maps are spatially coherent: a Voronoi partition of the image into ~60 regions, each of one
labelId (the ignored ones included); the prediction moves every region's centre by a few dozen
pixels (its boundaries shift) and gives one region in ten another labelId. Timed, alternating in
every round (median over the rounds):

- ``evaluate --predictions`` without Boundary IoU (``evaluate_predictions(boundary=False)``);
- ``evaluate --predictions --boundary`` (``evaluate_predictions(boundary=True)``);
- the summary of the written record with the city groups and Boundary IoU, with 1000 bootstrap
  replicates (what ``report`` and ``check`` compute on top of the tables).

    python benchmarks/bench_groups_boundary.py                     # 500 pairs, 2 rounds, all cores
    python benchmarks/bench_groups_boundary.py --pairs 48 --rounds 3 --workers 2
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
REGIONS = 60
STEP = 8  # the partition is computed on an 8x coarser grid, then upsampled (region edges stay 8-px steps)


def voronoi(centres: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)``: each pixel takes the value of its nearest centre (centres in full-size pixels)."""
    ys, xs = np.mgrid[0:H:STEP, 0:W:STEP]
    d = (ys[..., None] - centres[:, 0]) ** 2 + (xs[..., None] - centres[:, 1]) ** 2
    coarse = values[np.argmin(d, axis=-1)].astype(np.uint8)
    return np.repeat(np.repeat(coarse, STEP, axis=0), STEP, axis=1)


def pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A label map and its prediction (shifted regions, a tenth of them with another labelId)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([0, 0], [H, W], (REGIONS, 2))
    values = rng.integers(0, 34, REGIONS)
    moved = centres + rng.normal(0, 25, centres.shape)
    wrong = np.where(rng.random(REGIONS) < 0.1, rng.integers(0, 34, REGIONS), values)
    return voronoi(centres, values), voronoi(moved, wrong)


def _write(args) -> None:
    data, preds, k = args
    city = f"city{k % 3}"
    stem = f"{city}_{k:06d}_000019"
    label, prediction = pair(k)
    Image.fromarray(label).save(data / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
    Image.fromarray(prediction).save(preds / city / f"{stem}_leftImg8bit.png")


def make_folder(base: Path, pairs: int, workers: int) -> tuple[Path, Path]:
    data, preds = base / "data", base / "preds"
    for city in ("city0", "city1", "city2"):
        (data / "gtFine" / "val" / city).mkdir(parents=True, exist_ok=True)
        (preds / city).mkdir(parents=True, exist_ok=True)
    with mp.get_context("fork").Pool(workers) as pool:
        pool.map(_write, [(data, preds, k) for k in range(pairs)])
    return data, preds


def time_evaluate(data: Path, preds: Path, out: Path, workers: int, boundary: bool) -> float:
    from fairseg_bench.predictions import evaluate_predictions

    start = time.perf_counter()
    evaluate_predictions(preds, dataset="cityscapes", root=data, out=out, workers=workers, quiet=True,
                         print_tables=False, boundary=boundary)
    return time.perf_counter() - start


def time_summary(record: Path) -> float:
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    start = time.perf_counter()
    summary = summarize(read_results([record]), n_boot=1000)
    elapsed = time.perf_counter() - start
    assert "city" in summary.groups and summary.has_boundary
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args(argv)
    from fairseg_bench.predictions import default_workers

    workers = args.workers or default_workers()
    with tempfile.TemporaryDirectory(prefix="bench_groups_boundary_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data, preds = make_folder(tmp, args.pairs, workers)
        print(f"{args.pairs} pairs of {W}x{H} written in {time.perf_counter() - t0:.0f} s; {workers} workers; "
              f"load average {os.getloadavg()[0]:.1f}")
        record = tmp / "with" / "metrics.json"
        methods = {
            "evaluate --predictions, no Boundary IoU": lambda: time_evaluate(data, preds, tmp / "without" /
                                                                              "metrics.json", workers, False),
            "evaluate --predictions, with Boundary IoU": lambda: time_evaluate(data, preds, record, workers, True),
            "summary: city groups + Boundary IoU, 1000 replicates": lambda: time_summary(record),
        }
        seconds: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for r in range(args.rounds):
            order = names[:2][r % 2:] + names[:2][: r % 2] + names[2:]  # the summary needs a record: last
            for name in order:
                seconds[name].append(methods[name]())
        med = {name: statistics.median(v) for name, v in seconds.items()}
        base = med[names[0]]
        print(f"\n| step | seconds (median of {args.rounds}) | ms per pair | rounds (s) | vs no Boundary IoU |")
        print("|---|---:|---:|---|---:|")
        for name, value in med.items():
            print(f"| {name} | {value:.2f} | {1000 * value / args.pairs:.1f} | "
                  f"{', '.join(f'{v:.2f}' for v in seconds[name])} | {value / base:.2f}x |")
        print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
