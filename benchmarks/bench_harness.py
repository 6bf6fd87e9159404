"""Harness overhead: training images/s of ``engine.train`` vs a bare PyTorch loop, same model and data.

Both loops train the quick preset's model (``unet_small``) on the synthetic data (64x128, batch
16, generated once and memoised before timing) with Adam and MCCE, in the same process,
alternating bare/harness rounds so that load from other processes hits both alike. The harness
round is the real thing: the batch sampler and its ``update``, the loss module, the poly
schedule, the global-mean loss and NaN check, the gradient norm, one history row per step and
atomic checkpoints every ``--checkpoint-every`` steps. Two bare loops: with ``F.cross_entropy``
and with the library's MCCE module (the loss the harness trains with), so the harness's own
overhead (target: harness / bare with the same loss >= 0.95) is told apart from the loss
module's cost (measured in ``bench_losses.py``).

    python benchmarks/bench_harness.py [--steps 30] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from fairseg_bench import engine
from fairseg_bench.checkpoint import CHECKPOINT, Checkpointer
from fairseg_bench.core.sampling import UniformBatchSampler
from fairseg_bench.data import build_dataset
from fairseg_bench.loss_specs import build_loss
from fairseg_bench.models import build_model


def bare_round(ds, steps: int, batch: int, seed: int, criterion=None) -> float:
    """A plain loop (torchvision reference style, no extras); returns images/s.

    ``criterion`` None means ``F.cross_entropy``; otherwise the given loss module.
    """
    torch.manual_seed(seed)
    model = build_model("unet_small", num_classes=ds.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    loss_fn = criterion or (lambda logits, target: F.cross_entropy(logits, target, ignore_index=255))
    model.train()
    start, done = time.perf_counter(), 0
    while done < steps:
        for images, target in loader:
            loss = loss_fn(model(images), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return steps * batch / (time.perf_counter() - start)


def harness_round(ds, steps: int, batch: int, seed: int, checkpoint_every: int, folder: Path) -> float:
    """``engine.train`` with everything the runner passes it; returns images/s."""
    torch.manual_seed(seed)
    model = build_model("unet_small", num_classes=ds.num_classes)
    criterion = build_loss("mcce", num_classes=ds.num_classes)
    sampler = UniformBatchSampler(len(ds), batch, num_batches=steps, seed=seed)
    optimizer = engine.build_optimizer(model, "adam", 2e-3)
    scheduler = engine.poly_schedule(optimizer, steps, 0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loader = DataLoader(ds, batch_sampler=sampler, generator=torch.Generator().manual_seed(seed))
    state = engine.TrainState(model, optimizer, scheduler, scaler, criterion, sampler)
    checkpoint = Checkpointer(state, folder / CHECKPOINT, "bench", resumed=False)

    start = time.perf_counter()
    engine.train(state, loader, engine.TrainLogger(progress=False), device=torch.device("cpu"),
                 checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="training steps per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of each loop (median)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--checkpoint-every", type=int, default=10,
                        help="harness checkpoints (the quick preset writes one per 100 steps; default 10 is harsher)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ds = build_dataset("synthetic", split="train", num_images=400, size=(64, 128), seed=0)
    for i in range(len(ds)):  # generate (and memoise) every image before timing
        ds.image(i)
    bare_round(ds, 3, args.batch_size, 0)  # warm-up: allocator, oneDNN kernels
    rounds = {"bare loop, F.cross_entropy": [], "bare loop, library MCCE module": [],
              "fairseg-bench engine.train, library MCCE": []}
    mcce = build_loss("mcce", num_classes=ds.num_classes)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            timers = [lambda r=r: bare_round(ds, args.steps, args.batch_size, r),
                      lambda r=r: bare_round(ds, args.steps, args.batch_size, r, mcce),
                      lambda r=r: harness_round(ds, args.steps, args.batch_size, r, args.checkpoint_every,
                                                 Path(tmp))]
            order = range(3) if r % 2 == 0 else reversed(range(3))  # alternate who goes first
            for i in order:
                list(rounds.values())[i].append(timers[i]())
    names = list(rounds)
    print(f"training images/s, unet_small, synthetic 64x128, batch {args.batch_size}, {args.steps} steps x "
          f"{args.repeats} rounds, CPU, {args.threads} threads, torch {torch.__version__}")
    print("| loop | images/s (median) | rounds | vs bare F.cross_entropy | vs bare, same loss (paired median) |")
    print("|---|---:|---|---:|---:|")
    base = statistics.median(rounds[names[0]])
    for name in names:
        values = rounds[name]
        same = rounds[names[1]] if name == names[2] else values
        paired = statistics.median(x / y for x, y in zip(values, same))
        print(f"| {name} | {statistics.median(values):.1f} | {', '.join(f'{x:.1f}' for x in values)} | "
              f"{statistics.median(values) / base:.3f} | {paired:.3f} |")

if __name__ == "__main__":
    main()
