"""Per-step overhead of the batch samplers (draw + update) against a plain draw and a training step.

Run: ``python benchmarks/bench_sampler.py``. Prints the median time per step in microseconds
and its ratio to (a) ``torch.randint(N, (B,)).tolist()``, the cheapest possible batch draw, and
(b) one forward+backward+SGD step of a small segmentation network on CPU (a lower bound on any
real training step), all timed in this run with the same threads.
"""
from __future__ import annotations

import argparse
import timeit

import numpy as np
import torch
from torch import nn

from fairseg_bench.core.class_index import ClassIndex
from fairseg_bench.core.sampling import RareClassSampler, StochasticTCESampler, UniformBatchSampler


def synthetic_index(num_images: int, num_classes: int, seed: int = 0) -> ClassIndex:
    """Per-image pixel counts whose image shares span 100 % (road-like) down to ~2 % (train-like)."""
    rng = np.random.default_rng(seed)
    shares = np.geomspace(1.0, 0.02, num_classes)
    present = rng.random((num_images, num_classes)) < shares
    return ClassIndex(present * rng.integers(1, 50_000, size=(num_images, num_classes)))


def interleaved_us(steps: dict, number: dict, repeat: int) -> dict:
    """Median per-call time (us) of each callable; repeats interleaved so machine load hits all alike."""
    times = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            times[name].append(timeit.timeit(step, number=number[name]) / number[name] * 1e6)
    return {name: float(np.median(values)) for name, values in times.items()}


def sampler_step(sampler):
    """One training step's worth of sampler work: draw the next batch, then report its loss."""
    iterator = iter(sampler)
    losses = iter(np.random.default_rng(0).uniform(0.1, 2.0, size=10_000_000).tolist())

    def step():
        next(iterator)
        sampler.update(next(losses))
    return step


def training_step(batch_size: int, size: tuple[int, int], num_classes: int):
    """One step of a small 4-conv full-resolution network (~0.1 M parameters) with SGD."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, num_classes, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.randn(batch_size, 3, *size)
    target = torch.randint(num_classes, (batch_size, *size))

    def step():
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), target).backward()
        optimizer.step()
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--number", type=int, default=1000, help="sampler steps per timing")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    batch, big = args.batch_size, 10**9
    steps = {("reference", "training step"): training_step(batch, (64, 128), 19)}
    for name, num_images, num_classes in [("cityscapes-like", 2975, 19), ("ade20k-like", 20210, 150)]:
        index = synthetic_index(num_images, num_classes)
        steps[(name, "torch.randint")] = lambda n=num_images: torch.randint(n, (batch,)).tolist()
        steps[(name, "uniform")] = sampler_step(UniformBatchSampler(num_images, batch, num_batches=big))
        steps[(name, "rcs")] = sampler_step(RareClassSampler(index, batch, num_batches=big))
        steps[(name, "tce")] = sampler_step(StochasticTCESampler(index, batch, num_batches=big, t=1.0))
        steps[(name, "tce floor=0.1")] = sampler_step(
            StochasticTCESampler(index, batch, num_batches=big, t=1.0, floor=0.1))
    number = {key: 2 if key[0] == "reference" else args.number for key in steps}
    us = interleaved_us(steps, number, args.repeat)
    train_us = us.pop(("reference", "training step"))
    print(f"threads={torch.get_num_threads()}  batch={batch}  torch {torch.__version__}  "
          f"median of {args.repeat} interleaved repeats")
    print(f"reference training step (4-conv net, {batch}x3x64x128, fwd+bwd+SGD, CPU): {train_us / 1e3:.1f} ms\n")
    print(f"{'index':<16} {'sampler':<14} {'us/step':>9} {'x randint':>10} {'x train step':>13}")
    for (name, label), value in us.items():
        ratio = value / us[(name, "torch.randint")]
        print(f"{name:<16} {label:<14} {value:9.1f} {ratio:10.2f} {value / train_us:13.2e}")


if __name__ == "__main__":
    main()
