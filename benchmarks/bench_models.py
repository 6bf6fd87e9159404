"""CPU cost of one training step of the small models, and where it goes.

One Adam step (forward, cross-entropy, backward, update) on random 64x128 images, one torch
thread, channels_last or not; the configurations are interleaved in one process (a round of 3
steps of each, repeated) and timed in process CPU time, so that a shared, busy machine compares
them fairly. ``--profile`` adds torch.profiler's split of a step by resolution level.

    python benchmarks/bench_models.py                          # unet_small vs unet_lite, batch 8 and 16
    python benchmarks/bench_models.py --models unet_tiny --batch 8 --rounds 6 --profile
"""
from __future__ import annotations

import argparse
import collections
import time

import torch
import torch.nn.functional as F

from fairseg_bench.models import build_model

LEVELS = {128: "full (64x128)", 64: "1/2", 32: "1/4", 16: "1/8", 8: "1/16"}


def make_step(name: str, batch: int, channels_last: bool):
    model = build_model(name, num_classes=19)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    x = torch.randn(batch, 3, 64, 128)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = torch.randint(0, 19, (batch, 64, 128))

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def profile_levels(step) -> dict[str, float]:
    """Share of a step's CPU time by the resolution of each op's first input, convolutions apart."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(3):
            step()
    shares, total = collections.Counter(), 0.0
    for event in prof.key_averages(group_by_input_shape=True):
        shape = event.input_shapes[0] if event.input_shapes and event.input_shapes[0] else []
        level = LEVELS.get(shape[-1], "other") if len(shape) == 4 else "other"
        shares[f"{level} {'conv' if 'conv' in event.key else 'other ops'}"] += event.self_cpu_time_total
        total += event.self_cpu_time_total
    return {k: 100 * v / total for k, v in shares.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="unet_small,unet_lite")
    parser.add_argument("--batch", default="8,16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    configs = {(m, b, cl): make_step(m, b, cl) for m in args.models.split(",")
               for b in map(int, args.batch.split(",")) for cl in (False, True)}
    times = {k: [] for k in configs}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for key, step in configs.items():
            start = time.process_time()
            for _ in range(3):
                step()
            if round_:
                times[key].append((time.process_time() - start) / 3)
    print("| model | batch | channels_last | CPU s per step (median, 1 thread) |\n|---|---:|---|---:|")
    for (model, batch, cl), values in times.items():
        print(f"| {model} | {batch} | {'yes' if cl else 'no'} | {sorted(values)[len(values) // 2]:.3f} |")
    if args.profile:
        for (model, batch, cl), step in configs.items():
            if cl:
                shares = ", ".join(f"{k} {v:.0f} %" for k, v in profile_levels(step).items() if v >= 1)
                print(f"\n{model}, batch {batch}, channels_last: {shares}")


if __name__ == "__main__":
    main()
