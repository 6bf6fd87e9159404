"""CamVid input pipeline: training images/s against Pillow decoding alone, and the share of a step spent on data.

Reads the real data set from ``../shared/data/camvid`` beside the project (or ``--root``) and
exits with a message when it is absent. Two measurements, in one process:

1. Images/s over the same training images of (a) Pillow decoding the RGB frame and its label,
   nothing else (the decode limit); (b) ``build_dataset("camvid", split="train", ...)[i]`` as the
   trainer reads it, on the 360x480 frames: decode, random scale (0.25-1: the half-resolution
   frames scaled 0.5-2), 128x128 crop, flip, colour jitter, normalise; (c) the same with
   ``frame_size=(180, 240)`` (frames decoded and downscaled once, kept in memory; scale 0.5-2),
   timed after one pass has filled the memory. Rounds interleave (a), (b), (c); medians.
2. The share of a training step spent waiting for data: ``unet_lite``, batch 8, 128x128 crops,
   Adam, a ``DataLoader`` with ``num_workers=0`` (the trainer's default), channels_last and
   (``--amp bf16``) bfloat16 autocast as the ``quick`` preset trains; time in ``next(loader)``
   against forward + backward + step, for (b) and (c).

    python benchmarks/bench_camvid_input.py [--images 96] [--repeats 3] [--steps 30] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from fairseg_bench.data import build_dataset
from fairseg_bench.models import build_model

DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
CROP = (128, 128)
HALF = (180, 240)
FILES, MEMORY = "360x480 files, scale 0.25-1", "180x240 in memory, scale 0.5-2"


def pipelines(root: Path) -> dict:
    """The two training datasets: full-resolution frames, and half-resolution frames kept in memory."""
    common = {"root": root, "split": "train", "crop_size": CROP}
    return {FILES: build_dataset("camvid", scale_range=(0.25, 1.0), **common),
            MEMORY: build_dataset("camvid", frame_size=HALF, scale_range=(0.5, 2.0), **common)}


def decode_only(ds, indices) -> None:
    """Pillow decoding of each frame and its label, to arrays: the least any pipeline does."""
    for i in indices:
        with Image.open(ds.images[i]) as img:
            np.asarray(img.convert("RGB"))
        with Image.open(ds.labels[i]) as img:
            np.asarray(img)


def through(ds, indices) -> None:
    for i in indices:
        ds[i]


def images_per_s(work, indices) -> float:
    start = time.perf_counter()
    work(indices)
    return len(indices) / (time.perf_counter() - start)


def fill(ds) -> float:
    """Decode and downscale every frame into memory (the first epoch's extra work); returns images/s."""
    start = time.perf_counter()
    for i in range(len(ds)):
        ds.image(i)
    return len(ds) / (time.perf_counter() - start)


def input_table(sets: dict, count: int, repeats: int) -> None:
    """Images/s of Pillow decoding and of each pipeline on the same images, interleaved rounds."""
    first = next(iter(sets.values()))
    indices = list(range(min(count, len(first))))
    timers = {"Pillow decode (RGB + label), nothing else": lambda ix: decode_only(first, ix)}
    timers.update({f"pipeline, {name}": lambda ix, ds=ds: through(ds, ix) for name, ds in sets.items()})
    rates: dict[str, list[float]] = {name: [] for name in timers}
    for r in range(repeats):
        for name in (list(timers) if r % 2 == 0 else reversed(list(timers))):  # alternate who goes first
            rates[name].append(images_per_s(timers[name], indices))
    base = statistics.median(rates[next(iter(rates))])
    print(f"\ntraining input, {len(indices)} CamVid train images, 128x128 crops, {repeats} rounds (median)")
    print("| path | images/s | vs Pillow decode |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.0f} | {statistics.median(values) / base:.2f}x |")


class Trainer:
    """One training loop over one pipeline, advanced a step at a time; keeps per-step data and compute seconds."""

    def __init__(self, ds, batch: int, amp: str, seed: int = 0):
        torch.manual_seed(seed)
        self.model = build_model("unet_lite", num_classes=ds.num_classes).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=8e-3)
        self.loader = iter(DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0,
                                      generator=torch.Generator().manual_seed(seed)))
        self.amp = amp
        self.data: list[float] = []
        self.compute: list[float] = []

    def step(self) -> None:
        start = time.perf_counter()
        images, target = next(self.loader)
        ready = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp == "bf16"):
            logits = self.model(images.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), target, ignore_index=255)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.data.append(ready - start)
        self.compute.append(time.perf_counter() - ready)


def step_table(sets: dict, steps: int, batch: int, amp: str, warmup: int = 3) -> None:
    """Median seconds per step in ``next(loader)`` and in forward/backward/step; the pipelines alternate steps."""
    trainers = {name: Trainer(ds, batch, amp) for name, ds in sets.items()}
    for _ in range(warmup + steps):
        for trainer in trainers.values():  # alternating, so machine load hits both alike
            trainer.step()
    print(f"\ntraining step, unet_lite, batch {batch}, 128x128, {amp}, DataLoader num_workers=0, "
          f"{steps} steps each, alternating (median per step)")
    print("| pipeline | data ms | forward+backward+step ms | data share |")
    print("|---|---:|---:|---:|")
    for name, trainer in trainers.items():
        data, compute = statistics.median(trainer.data[warmup:]), statistics.median(trainer.compute[warmup:])
        print(f"| {name} | {data * 1e3:.1f} | {compute * 1e3:.1f} | {data / (data + compute):.1%} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="CamVid folder (SegNet's layout)")
    parser.add_argument("--images", type=int, default=96, help="train images per input round")
    parser.add_argument("--repeats", type=int, default=3, help="input rounds per path (median)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per pipeline")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--amp", choices=["bf16", "float32"], default="bf16", help="the quick preset's bf16")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the presets train on one)")
    args = parser.parse_args()
    if not (args.root / "train.txt").is_file():
        print(f"skipped: no CamVid copy at {args.root} (SegNet's CamVid/ folder; pass --root)")
        return 0
    torch.set_num_threads(args.threads)
    print(f"CamVid input pipeline, CPU, {args.threads} torch thread(s), torch {torch.__version__}")
    sets = pipelines(args.root)
    rate = fill(sets[MEMORY])
    print(f"first pass of {MEMORY} (decode + downscale, {len(sets[MEMORY])} images): {rate:.0f} images/s")
    input_table(sets, args.images, args.repeats)
    step_table(sets, args.steps, args.batch_size, args.amp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
