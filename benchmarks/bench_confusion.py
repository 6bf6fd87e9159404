"""Confusion-matrix accumulation speed, as a ratio to a clone() of the same label bytes.

Usage: ``python benchmarks/bench_confusion.py [--n 20] [--repeats 9] [--classes 19]``

Spatially coherent Cityscapes-shaped maps (1024×2048 uint8, 19 classes, blocks of ignored
pixels; predictions agree with the labels except in random blocks). Every method is timed over
all N maps per round, rounds interleaved (so a burst of load on a shared machine hits every
method alike), median over rounds. Two references: a clone() of the ground-truth map, and a
clone() of both maps an update reads (ground truth + prediction).
"""
from __future__ import annotations

import argparse
import statistics
import time
import timeit

import numpy as np
import torch
import torch.nn.functional as F

from fairseg_bench.core import confusion
from fairseg_bench.core.confusion import ConfusionMatrix
from fairseg_bench.core.fairness import fairness_metrics
from fairseg_bench.core.iou import class_accuracy, mean_iou, per_class_iou, pixel_accuracy


def coherent_maps(n: int, k: int, size=(1024, 2048), seed: int = 0):
    """Upsampled low-resolution random labels (32-px blocks), ~10 % ignored, ~20 % wrong."""
    g = torch.Generator().manual_seed(seed)
    h, w = size

    def up(x):
        return F.interpolate(x[:, None].float(), size=size, mode="nearest")[:, 0]

    targets, preds = [], []
    for _ in range(n):
        target = up(torch.randint(0, k, (1, h // 32, w // 32), generator=g))[0]
        ignored = up((torch.rand(1, h // 64, w // 64, generator=g) < 0.1).float())[0].bool()
        wrong = up((torch.rand(1, h // 16, w // 16, generator=g) < 0.2).float())[0].bool()
        other = up(torch.randint(0, k, (1, h // 16, w // 16), generator=g))[0]
        pred = torch.where(wrong, other, target)
        target[ignored] = 255
        targets.append(target.to(torch.uint8).contiguous())
        preds.append(pred.to(torch.uint8).contiguous())
    return targets, preds


def torchvision_idiom(pred, target, k, state):
    """torchvision/references/segmentation/utils.py ConfusionMatrix.update."""
    a, b = target.flatten(), pred.flatten()
    keep = (a >= 0) & (a < k)
    inds = k * a[keep].to(torch.int64) + b[keep]
    state += torch.bincount(inds, minlength=k**2).reshape(k, k)


def numpy_bincount(pred, target, k, state):
    a, b = target.numpy().ravel(), pred.numpy().ravel()
    keep = a < k
    state += np.bincount(k * a[keep].astype(np.int64) + b[keep], minlength=k * k).reshape(k, k)


def check_agreement(targets, preds, k: int) -> None:
    """Every method counts the same matrix (one pass over the maps, fresh states)."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    ours, ours64 = ConfusionMatrix(k), ConfusionMatrix(k)
    idiom, numpy_state = torch.zeros(k, k, dtype=torch.int64), np.zeros((k, k), dtype=np.int64)
    tm = MulticlassConfusionMatrix(num_classes=k, ignore_index=255)
    for target, pred in zip(targets, preds):
        ours.update(pred, target)
        ours64.update(pred.long(), target.long())
        torchvision_idiom(pred, target, k, idiom)
        numpy_bincount(pred, target, k, numpy_state)
        tm.update(pred.long(), target.long())
    expected = ours.compute()
    assert torch.equal(ours64.compute(), expected) and torch.equal(idiom, expected)
    assert np.array_equal(numpy_state, expected.numpy()) and torch.equal(tm.compute().long(), expected)


CLOCK = timeit.default_timer


def time_rounds(methods: dict, n_maps: int, repeats: int) -> dict:
    """Median seconds per map of each method, rounds interleaved."""
    results = {name: [] for name in methods}
    for _name, fn in methods.items():  # warm-up (allocations, lazy caches)
        fn(0)
    for _ in range(repeats):
        for name, fn in methods.items():
            start = CLOCK()
            for i in range(n_maps):
                fn(i)
            results[name].append((CLOCK() - start) / n_maps)
    return {name: statistics.median(times) for name, times in results.items()}


def fairness_time(k: int, repeats: int) -> float:
    """Median seconds from a (K, K) int64 tensor to every IoU and fairness number."""
    rng = np.random.default_rng(0)
    cm = torch.from_numpy(rng.integers(0, 10_000, (k, k)))
    reference = per_class_iou(cm)

    def everything():
        iou = per_class_iou(cm)
        return mean_iou(cm), pixel_accuracy(cm), class_accuracy(cm), fairness_metrics(iou, reference)

    return statistics.median(timeit.repeat(everything, timer=CLOCK, number=20, repeat=repeats)) / 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="number of label maps")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time with one torch thread, for a machine shared with other jobs "
        "(time spent preempted does not count)",
    )
    args = parser.parse_args()
    global CLOCK
    if args.clock == "cpu":
        torch.set_num_threads(1)
        CLOCK = time.process_time
    k = args.classes
    targets, preds = coherent_maps(args.n, k)
    check_agreement(targets, preds, k)
    n_wide = min(args.n, 4)  # int64 copies are 8x larger: time that path on a few maps
    targets64 = [t.long() for t in targets[:n_wide]]
    preds64 = [p.long() for p in preds[:n_wide]]

    ours, ours_unchecked, ours_1lane = ConfusionMatrix(k), ConfusionMatrix(k, validate=False), ConfusionMatrix(k)
    ours64 = ConfusionMatrix(k)
    idiom_state = torch.zeros(k, k, dtype=torch.int64)
    numpy_state = np.zeros((k, k), dtype=np.int64)
    from torchmetrics.classification import MulticlassConfusionMatrix

    tm = MulticlassConfusionMatrix(num_classes=k, ignore_index=255, validate_args=False)

    def one_lane(i):
        confusion._LANES, saved = 1, confusion._LANES
        try:
            ours_1lane.update(preds[i], targets[i])
        finally:
            confusion._LANES = saved

    methods = {
        "clone(target)": lambda i: targets[i].clone(),
        "clone(target)+clone(pred)": lambda i: (targets[i].clone(), preds[i].clone()),
        "fairseg-bench ConfusionMatrix.update": lambda i: ours.update(preds[i], targets[i]),
        "  ... validate=False": lambda i: ours_unchecked.update(preds[i], targets[i]),
        "  ... one histogram (no interleaving)": one_lane,
        "torchvision idiom (mask + int64 bincount)": lambda i: torchvision_idiom(preds[i], targets[i], k, idiom_state),
        "torchmetrics MulticlassConfusionMatrix": lambda i: tm.update(preds[i], targets[i]),
        "numpy bincount (mask + int64)": lambda i: numpy_bincount(preds[i], targets[i], k, numpy_state),
    }
    times = time_rounds(methods, args.n, args.repeats)

    deterministic_methods = {
        "clone(target)": methods["clone(target)"],
        "clone(target)+clone(pred)": methods["clone(target)+clone(pred)"],
        "fairseg-bench ConfusionMatrix.update": methods["fairseg-bench ConfusionMatrix.update"],
        "torchvision idiom (mask + int64 bincount)": methods["torchvision idiom (mask + int64 bincount)"],
    }
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        det_times = time_rounds(deterministic_methods, args.n, args.repeats)
    finally:
        torch.use_deterministic_algorithms(previous)

    wide_methods = {  # references: clones of the int64 maps themselves
        "clone(target)": lambda i: targets64[i].clone(),
        "clone(target)+clone(pred)": lambda i: (targets64[i].clone(), preds64[i].clone()),
        "fairseg-bench update, int64 target + int64 pred": lambda i: ours64.update(preds64[i], targets64[i]),
        "torchvision idiom, int64": lambda i: torchvision_idiom(preds64[i], targets64[i], k, idiom_state),
    }
    wide_times = time_rounds(wide_methods, n_wide, args.repeats)

    print(
        f"{args.n} maps 1024x2048 uint8, {k} classes, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {args.clock} clock, median of {args.repeats} rounds"
    )
    print(f"clone(target): {times['clone(target)'] * 1e3:.3f} ms/map\n")
    for title, table in (
        ("uint8 maps", times),
        ("uint8 maps, torch.use_deterministic_algorithms(True)", det_times),
        (f"int64 maps (the dataset path; {n_wide} maps; clones of the int64 maps)", wide_times),
    ):
        print(f"{title}:")
        print(f"  {'method':46s} {'ms/map':>8s} {'x clone(target)':>16s} {'x clone(both)':>14s}")
        for name, seconds in table.items():
            ratio1 = seconds / table["clone(target)"]
            ratio2 = seconds / table["clone(target)+clone(pred)"]
            print(f"  {name:46s} {seconds * 1e3:8.3f} {ratio1:16.1f} {ratio2:14.1f}")
        print()
    print(f"CM ({k}x{k}) -> per-class IoU, mIoU, accuracies, every fairness number: "
          f"{fairness_time(k, args.repeats) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
