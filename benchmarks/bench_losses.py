"""Forward+backward time of every loss against ``F.cross_entropy`` at the same shape and threads.

Run: ``python benchmarks/bench_losses.py`` (the paper's (8, 19, 512, 1024) logits) or
``python benchmarks/bench_losses.py --shape 2,19,256,512`` for a quicker look. Every round
times each loss once, interleaved with the reference, so that load from other processes hits
all of them alike; each loss run is paired with a reference run just before it. Two ratios are
printed: the best loss time over the best of its paired reference times (the least disturbed
runs, the steadiest figure on a shared machine) and the median over rounds of the paired ratio.
``--naive`` adds a per-class mask loop and a one-hot version of class-level TCE, the slow idioms
the vectorised losses avoid. When segmentation_models_pytorch is installed (the dev extra), its
``LovaszLoss`` is timed too, and a last column gives Lovász-softmax's median ratio to it.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from fairseg_bench.core.tilt import tilted_mean
from fairseg_bench.loss_specs import available_losses, build_loss, parse_loss_spec

IGNORE = 255
EXTRA_SPECS = ["focal:gamma=2,alpha=sum", "tce-image:t=0.1", "tce-class:t=0.1", "tce-class:t=-1", "tce:estimate=class",
               "lovasz:per_image=true", "cb:unit=pixel"]
SMP_LOVASZ = "(reference) smp LovaszLoss"


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``"8,19,512,1024"`` -> (N, C, H, W)."""
    shape = tuple(int(v) for v in text.split(","))
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"shape must be N,C,H,W positive integers, got {text!r}")
    return shape


def cityscapes_like_target(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Spatially coherent labels (16-pixel blocks), imbalanced classes, ~8 % of blocks ignored."""
    rng = np.random.default_rng(seed)
    probs = np.geomspace(1.0, 0.01, c)
    coarse = rng.choice(c, size=(n, max(h // 16, 1), max(w // 16, 1)), p=probs / probs.sum())
    coarse[rng.random(coarse.shape) < 0.08] = IGNORE
    target = torch.from_numpy(coarse).repeat_interleave(16, 1).repeat_interleave(16, 2)
    target = F.pad(target, (0, max(w - target.shape[2], 0), 0, max(h - target.shape[1], 0)), value=IGNORE)
    return target[:, :h, :w].contiguous().long()


def class_tce_mask_loop(logits, target, t=1.0):
    """Class-level TCE with a Python loop over classes (the idiom to avoid)."""
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    n, c = logits.shape[:2]
    per_class, present = [], []
    for k in range(c):
        mask = (target == k).flatten(1)
        count = mask.sum(1)
        per_class.append((ce.flatten(1) * mask).sum(1) / count.clamp(min=1))
        present.append(count > 0)
    values, mask = torch.stack(per_class, 1), torch.stack(present, 1)
    return tilted_mean(values, t, dim=1, mask=mask).nanmean()


def class_tce_one_hot(logits, target, t=1.0):
    """Class-level TCE through a one-hot (N, C, H, W) mask (the other idiom to avoid)."""
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction="none")
    c = logits.shape[1]
    one_hot = F.one_hot(target.clamp(max=c), c + 1)[..., :c].permute(0, 3, 1, 2).to(ce.dtype)
    counts = one_hot.sum((2, 3))
    values = (one_hot * ce.unsqueeze(1)).sum((2, 3)) / counts.clamp(min=1)
    return tilted_mean(values, t, dim=1, mask=counts > 0).nanmean()


def candidates(num_classes: int, specs: list[str], naive: bool) -> dict[str, callable]:
    """label -> loss function(logits, target), built through the registry."""
    counts = np.geomspace(1e7, 1e4, num_classes).astype(np.int64)
    image_counts = np.geomspace(3000, 30, num_classes).astype(np.int64)
    fns = {}
    for text in specs:
        spec = parse_loss_spec(text)
        fns[spec.text] = build_loss(spec, num_classes=num_classes, class_pixel_counts=counts,
                                    class_image_counts=image_counts)
    try:
        from segmentation_models_pytorch.losses import LovaszLoss
    except ImportError:
        pass
    else:
        if any(name.startswith("lovasz") for name in fns):
            fns[SMP_LOVASZ] = LovaszLoss("multiclass", ignore_index=IGNORE)
    if naive:
        fns["(naive) class tce, per-class loop"] = class_tce_mask_loop
        fns["(naive) class tce, one-hot"] = class_tce_one_hot
    return fns


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_once(fn, logits, target, clock=time.perf_counter) -> float:
    """Seconds for one forward+backward."""
    logits.grad = None
    start = clock()
    fn(logits, target).backward()
    return clock() - start


def run(shape, specs, repeats: int, naive: bool, clock=time.perf_counter) -> list[tuple]:
    """Rows (name, best ms, best / best of its paired reference runs, median of the paired ratios,
    median ratio to smp's LovaszLoss of the same round or None)."""
    torch.manual_seed(0)
    n, c, h, w = shape
    logits = torch.randn(shape, requires_grad=True)
    target = cityscapes_like_target(n, c, h, w)
    reference = lambda x, y: F.cross_entropy(x, y, ignore_index=IGNORE)  # noqa: E731
    fns = {"F.cross_entropy": reference, **candidates(c, specs, naive)}
    for fn in fns.values():  # warm-up (allocator, thread pool)
        time_once(fn, logits, target)
    times = {name: [] for name in fns}
    paired_reference = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            paired_reference[name].append(time_once(reference, logits, target, clock))
            times[name].append(time_once(fn, logits, target, clock))
    rows = []
    for name in fns:
        ratios = [t / r for t, r in zip(times[name], paired_reference[name])]
        to_smp = None
        if name.startswith("lovasz") and SMP_LOVASZ in times:
            to_smp = statistics.median(t / s for t, s in zip(times[name], times[SMP_LOVASZ]))
        rows.append((name, min(times[name]) * 1e3, min(times[name]) / min(paired_reference[name]),
                     statistics.median(ratios), to_smp))
    return rows


def main() -> None:
    """Parse flags, time every loss, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=parse_shape, default=(8, 19, 512, 1024), help="N,C,H,W (default 8,19,512,1024)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    parser.add_argument("--losses", default=None,
                        help="loss specs separated by ';' (default: every registered loss and a few variants)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or process CPU time (summed over threads; steadier on a loaded machine)")
    parser.add_argument("--naive", action="store_true", help="also time a per-class loop and a one-hot class-level TCE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = args.losses.split(";") if args.losses else available_losses() + EXTRA_SPECS
    rows = run(args.shape, specs, args.repeats, args.naive, CLOCKS[args.clock])
    print(f"forward+backward, logits {tuple(args.shape)} float32, CPU, {args.threads} threads, {args.clock} clock, "
          f"torch {torch.__version__}, {args.repeats} interleaved rounds\n")
    print("| loss | best ms | ratio, best / best | ratio, median of pairs | vs smp LovaszLoss, median |")
    print("|---|---:|---:|---:|---:|")
    for name, ms, best_ratio, median_ratio, to_smp in rows:
        smp = "" if to_smp is None else f"{to_smp:.3f}"
        print(f"| `{name}` | {ms:.1f} | {best_ratio:.3f} | {median_ratio:.3f} | {smp} |")


if __name__ == "__main__":
    main()
