"""Boundary IoU counts per Cityscapes-size pair against the plain confusion-matrix count of the same pair.

Pairs are 1024x2048 labelId maps shaped as in ``bench_predictions.py`` (32-px blocks of every
labelId, predictions wrong in ~20 % of 16-px blocks), held in memory (no PNG decoding). Timed per
pair, interleaved in every round, median over the rounds, one thread:

- ``confusion count``: what ``evaluate --predictions`` does to a decoded pair
  (``joint_histogram`` of the raw labelIds and ``PairCounter``'s fold to the class matrix);
- ``boundary counts``: :func:`fairseg_bench.core.boundary.boundary_counts` on the trainId maps
  (19 classes, d = 46), the ratio against the confusion count being the figure of merit;
- ``boundary counts, packed bits``: :func:`~fairseg_bench.core.boundary.boundary_counts_given_confusion`
  on the class maps: the class totals of the pair's confusion matrix less the interior's, found on
  packed bits (checked equal to ``boundary counts`` in the run);
- ``boundary counts, packed bits on labelIds``: the same on the raw labelId maps with the labelId ->
  class table (``classes=``; each class has one labelId), what ``evaluate --predictions --boundary``
  runs on Cityscapes: no lookup of the whole maps (checked equal too);
- ``labelId -> trainId``: the two lookups the other paths need first (their maps are class indices);
- ``boundary counts (torch)``: :func:`~fairseg_bench.core.boundary.boundary_counts_torch` on CPU;
- ``per-class erosion`` (reference, one round): ``scipy.ndimage.binary_erosion`` of every class
  mask of both maps, ``d`` iterations of a 3x3 square, the definition done naively.

    python benchmarks/bench_boundary.py               # 4 pairs, 5 rounds
    python benchmarks/bench_boundary.py --pairs 2 --rounds 3 --no-naive
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_predictions import label_map, prediction_of  # noqa: E402 - the same Cityscapes-shaped pairs

from fairseg_bench.core.boundary import (  # noqa: E402
    boundary_counts,
    boundary_counts_given_confusion,
    boundary_counts_torch,
    boundary_width,
)

K = 19


def make_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        label = label_map(rng)
        pairs.append((label, prediction_of(rng, label)))
    return pairs


def confusion_counter():
    """The prediction-folder counter, Cityscapes labelIds in both files; counts one decoded pair."""
    from fairseg_bench.data.cityscapes import CityscapesSegmentation
    from fairseg_bench.predictions import PairCounter, joint_histogram

    counter = PairCounter(CityscapesSegmentation.LUT, CityscapesSegmentation.LUT, K)

    def count(label, prediction):  # PairCounter.count without the PNG decoding and the value checks
        flat = joint_histogram(label, prediction).reshape(-1)
        nonzero = np.flatnonzero(flat)
        cells = counter.cell[nonzero]
        keep = cells >= 0
        return np.bincount(cells[keep], weights=flat[nonzero[keep]], minlength=K * (K + 1))

    return count


def naive_counts(label: np.ndarray, prediction: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, ``d`` binary erosions by a 3x3 square of both masks (scipy), zero border."""
    from scipy import ndimage

    inter, union = np.zeros(K, np.int64), np.zeros(K, np.int64)
    valid = label != 255
    square = np.ones((3, 3), bool)
    for c in range(K):
        g, p = label == c, prediction == c
        g_d = g & ~ndimage.binary_erosion(g, square, iterations=d, border_value=0) & valid
        p_d = p & ~ndimage.binary_erosion(p, square, iterations=d, border_value=0) & valid
        inter[c], union[c] = (g_d & p_d).sum(), (g_d | p_d).sum()
    return inter, union


def per_pair_ms(fn, pairs) -> float:
    start = time.perf_counter()
    for label, prediction in pairs:
        fn(label, prediction)
    return (time.perf_counter() - start) / len(pairs) * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-naive", action="store_true", help="skip the per-class erosion reference")
    args = parser.parse_args(argv)
    import torch

    from fairseg_bench.data.cityscapes import CityscapesSegmentation

    torch.set_num_threads(1)
    lut = CityscapesSegmentation.LUT.astype(np.uint8)  # 255 stays 255: ignored / void
    raw = make_pairs(args.pairs)
    train = [(lut[a], lut[b]) for a, b in raw]
    as_torch = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in train]
    d = boundary_width(*train[0][0].shape)
    count = confusion_counter()
    codes = [(np.minimum(a, K), np.minimum(b, K)) for a, b in train]  # K: no class
    matrices = [count(a, b).reshape(K, K + 1) for a, b in raw]
    packed = iter(())

    def packed_counts(a, b):
        return boundary_counts_given_confusion(a, b, next(packed))

    def packed_ms() -> float:
        nonlocal packed
        packed = iter(matrices)
        return per_pair_ms(packed_counts, codes)

    classes = np.minimum(lut, K).astype(np.uint8)  # labelId -> code, K: no class

    def raw_counts(a, b):
        return boundary_counts_given_confusion(a, b, next(packed), classes=classes)

    def raw_ms() -> float:
        nonlocal packed
        packed = iter(matrices)
        return per_pair_ms(raw_counts, raw)

    methods = {
        "confusion count": lambda: per_pair_ms(count, raw),
        "boundary counts": lambda: per_pair_ms(lambda a, b: boundary_counts(a, b, K), train),
        "boundary counts, packed bits": packed_ms,
        "boundary counts, packed bits on labelIds": raw_ms,
        "labelId -> trainId": lambda: per_pair_ms(lambda a, b: (lut[a], lut[b]), raw),
        "boundary counts (torch)": lambda: per_pair_ms(lambda a, b: boundary_counts_torch(a, b, K), as_torch),
    }
    for fn in methods.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(methods[name]())
    med = {name: statistics.median(v) for name, v in times.items()}
    for (a, b), (ca, cb), (ra, rb), matrix in zip(train, codes, raw, matrices):
        slow = boundary_counts(a, b, K)
        fast = boundary_counts_given_confusion(ca, cb, matrix)
        assert all(np.array_equal(x, y) for x, y in zip(fast, slow)), "the packed path disagrees"
        fast = boundary_counts_given_confusion(ra, rb, matrix, classes=classes)
        assert all(np.array_equal(x, y) for x, y in zip(fast, slow)), "the packed path on labelIds disagrees"
    if not args.no_naive:
        expected = boundary_counts(*train[0], K)
        got = naive_counts(*train[0], d)
        assert all(np.array_equal(a, b) for a, b in zip(expected, got)), "the naive reference disagrees"
        med["per-class erosion (1 pair, 1 round)"] = per_pair_ms(lambda a, b: naive_counts(a, b, d), train[:1])
    print(f"{args.pairs} pairs of 1024x2048, K = {K}, d = {d}, 1 thread, median of {args.rounds} rounds; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("\n| method | ms per pair | vs confusion count |")
    print("|---|---:|---:|")
    for name, ms in med.items():
        print(f"| {name} | {ms:.1f} | {ms / med['confusion count']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
