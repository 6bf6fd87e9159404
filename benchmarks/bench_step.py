"""One training step of the default model on CPU: the old path (NCHW, float32) against the new ones.

Four variants: the contiguous float32 layout the CPU trained in before; the model in
channels_last with its logits copied back to NCHW for the loss (the previous path);
``engine.to_channels_last`` with ``engine.loss_input`` (the per-pixel CE reads the NHWC logits in
place) in float32, what ``run`` trains with under ``train.amp: false``; and the same under
bfloat16 autocast (``train.amp: bf16``:
oneDNN runs the convolutions natively in bfloat16 on CPUs with AVX512-BF16 or AMX, and emulates
it ~10x slower elsewhere). The table marks the variant ``train.amp: auto`` (the presets' default)
picks on this machine: bfloat16 where it is native, channels_last float32 elsewhere.
``ONEDNN_MAX_CPU_ISA=AVX2`` shows what an AVX2-only CPU runs.

The step: a model (``--model``, default ``unet_small``), a batch of synthetic 64×128 images,
the library's MCCE, Adam. Both layouts run in the same process from the same weights and batch,
alternating which goes first in each round, so that load from other processes hits both alike;
the table gives the median seconds per step over the rounds, by wall clock and by process CPU
time (the sum over this process's threads, steadier on a shared machine), and the ratio.
``--profile`` first prints torch.profiler's table of one step of each layout (operators by self
CPU time), which says where a step's time goes.

    python benchmarks/bench_step.py [--threads 2] [--rounds 7] [--steps 5] [--profile]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from fairseg_bench import engine
from fairseg_bench.data import build_dataset
from fairseg_bench.loss_specs import build_loss, parse_loss_spec
from fairseg_bench.models import build_model
from fairseg_bench.precision import resolve_precision

# name: (layout, autocast dtype)
VARIANTS = {"contiguous, float32 (before)": (torch.contiguous_format, None),
            "channels_last, logits copied to NCHW, float32": ("copy", None),
            "channels_last, float32 (amp: false)": ("engine", None),
            "channels_last, bfloat16 (amp: bf16)": ("engine", torch.bfloat16)}


def make_batch(batch: int, size: tuple[int, int]):
    ds = build_dataset("synthetic", split="train", num_images=batch, size=list(size), seed=0)
    images, targets = zip(*(ds[i] for i in range(batch)))
    return torch.stack(images), torch.stack(targets), ds.num_classes


class Step:
    """Model, loss and optimizer in one memory layout and precision; ``__call__`` runs ``n`` steps."""

    def __init__(self, model, num_classes: int, layout, autocast, images, target):
        self.engine = layout == "engine"  # what the runner trains with: engine.to_channels_last + loss_input
        if layout in ("engine", "copy"):
            self.model, layout = engine.to_channels_last(copy.deepcopy(model)), torch.channels_last
        else:
            self.model = copy.deepcopy(model).to(memory_format=layout)
        self.model.train()
        self.criterion = build_loss(parse_loss_spec("mcce"), num_classes=num_classes, ignore_index=255,
                                    class_pixel_counts=None)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        self.images, self.target, self.layout, self.autocast = images, target, layout, autocast

    def __call__(self, n: int) -> None:
        for _ in range(n):
            images = self.images.contiguous(memory_format=self.layout)  # as engine.train does per batch
            with torch.autocast("cpu", dtype=self.autocast, enabled=self.autocast is not None):
                logits = self.model(images)
            logits = engine.loss_input(logits, self.criterion) if self.engine else logits.contiguous().float()
            loss = self.criterion(logits, self.target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def timed(step: Step, n: int) -> tuple[float, float]:
    """(wall, CPU) seconds per step."""
    wall, cpu = time.perf_counter(), time.process_time()
    step(n)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def profile(steps: dict[str, Step], rows: int) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name, step in steps.items():
        step(1)  # warm
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step(1)
        print(f"\n### torch.profiler, one step, {name}\n")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", default="64,128", help="H,W")
    parser.add_argument("--model", default="unet_small")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table of one step first")
    parser.add_argument("--profile-rows", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, target, num_classes = make_batch(args.batch, tuple(int(v) for v in args.size.split(",")))
    model = build_model(args.model, num_classes=num_classes)
    steps = {name: Step(model, num_classes, layout, autocast, images, target)
             for name, (layout, autocast) in VARIANTS.items()}
    if args.profile:
        profile(steps, args.profile_rows)
    for step in steps.values():
        step(2)  # warm-up: oneDNN primitive caches, allocator
    times = {name: [] for name in steps}
    names = list(steps)
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(timed(steps[name], args.steps))
    auto = resolve_precision("auto", torch.device("cpu"))
    chosen = names[3] if auto.dtype == torch.bfloat16 else names[2]
    base = names[0]
    wall0 = statistics.median(t[0] for t in times[base])
    cpu0 = statistics.median(t[1] for t in times[base])
    print(f"\n{args.model}, batch {args.batch} × {args.size.replace(',', '×')}, {args.threads} thread(s), "
          f"{args.rounds} alternating rounds of {args.steps} steps; medians; bfloat16 "
          f"{'native' if auto.dtype is not None else 'emulated'} here: train.amp: auto picks {auto.name}\n")
    print("| layout | wall s/step | CPU s/step | speed-up (wall) | speed-up (CPU) |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        mark = " ← amp: auto" if name == chosen else ""
        print(f"| {name}{mark} | {wall:.3f} | {cpu:.3f} | {wall0 / wall:.2f}× | {cpu0 / cpu:.2f}× |")


if __name__ == "__main__":
    main()
