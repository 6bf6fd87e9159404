"""The device check's Python part (``benchmarks/gpu_check.sh`` runs it): what only a GPU can show.

``confusion``: the CUDA confusion matrix equals the CPU one on the same coherent
Cityscapes-shaped maps (bit for bit), and its update time per map against a ``clone()`` of the
same label bytes on the device (the bandwidth limit), with CUDA events.

``train``: the paper's model (``deeplabv3plus_resnet101``) on synthetic data at its crop size
(512×1024, batch 8, AMP, channels_last) for ``--steps`` steps, once through the harness
(``engine.train`` with the batch sampler, loss module, schedule, NaN guard, grad norm and
history) and once as a bare loop with the same model, data, optimizer and precision; images/s
(after ``--warmup`` steps) and peak GPU memory of each.

``--dry`` runs the same code on the CPU at toy sizes (``unet_tiny``, 32×64 crops, a few steps),
so that the tests cover everything that does not need CUDA. Prints one Markdown table per part.

    python benchmarks/gpu_check.py confusion [--dry]
    python benchmarks/gpu_check.py train [--dry] [--steps 100]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_confusion import coherent_maps  # noqa: E402

from fairseg_bench import engine  # noqa: E402
from fairseg_bench.core.confusion import ConfusionMatrix  # noqa: E402
from fairseg_bench.core.sampling import UniformBatchSampler  # noqa: E402
from fairseg_bench.data import build_dataset  # noqa: E402
from fairseg_bench.loss_specs import build_loss, parse_loss_spec  # noqa: E402
from fairseg_bench.models import build_model  # noqa: E402


def device_for(dry: bool) -> torch.device:
    if dry:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device (use --dry to run this check on the CPU at toy sizes)")
    return torch.device("cuda")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_per_map(fn, n: int, device: torch.device, repeats: int) -> float:
    """Median seconds per call over ``repeats`` rounds of ``n`` calls (CUDA events on the GPU)."""
    times = []
    fn(0)
    for _ in range(repeats):
        sync(device)
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for i in range(n):
                fn(i)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000 / n)
        else:
            t = time.perf_counter()
            for i in range(n):
                fn(i)
            times.append((time.perf_counter() - t) / n)
    return statistics.median(times)


def check_confusion(dry: bool, maps: int, repeats: int, k: int = 19) -> bool:
    """CUDA == CPU, and update time vs a copy of the same bytes. Returns whether they agree."""
    device = device_for(dry)
    size = (64, 128) if dry else (1024, 2048)
    targets, preds = coherent_maps(maps, k, size=size)
    cpu = ConfusionMatrix(k, ignore_index=255)
    for p, t in zip(preds, targets):
        cpu.update(p, t)
    dev_targets = [t.to(device) for t in targets]
    dev_preds = [p.to(device) for p in preds]
    dev = ConfusionMatrix(k, ignore_index=255, device=device)
    for p, t in zip(dev_preds, dev_targets):
        dev.update(p, t)
    same = torch.equal(cpu.compute(), dev.compute().cpu())

    def update(i):
        dev.update(dev_preds[i % maps], dev_targets[i % maps])

    def copy(i):
        dev_targets[i % maps].clone()
        dev_preds[i % maps].clone()

    t_update = timed_per_map(update, maps, device, repeats)
    t_copy = timed_per_map(copy, maps, device, repeats)
    print(f"\n### confusion matrix on {device} ({maps} coherent {size[0]}×{size[1]} maps, K = {k})\n")
    print("| check | value |\n|---|---|")
    print(f"| {device} matrix == CPU matrix | {'yes' if same else 'NO'} |")
    print(f"| update, ms per map | {1000 * t_update:.3f} |")
    print(f"| clone of the same bytes, ms per map | {1000 * t_copy:.3f} |")
    print(f"| update / copy | {t_update / t_copy:.1f}× |")
    return same


def _data(dry: bool, batch: int):
    size = [32, 64] if dry else [512, 1024]
    return build_dataset("synthetic", split="train", num_images=2 * batch, size=size, seed=0)


def bare_loop(model, ds, steps: int, warmup: int, batch: int, device, amp: bool) -> float:
    """Plain PyTorch: the same model, data, optimizer and precision; images/s after warm-up."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
    model.train()
    done, start = 0, None
    while done < steps:
        for images, target in loader:
            if done == warmup:
                sync(device)
                start = time.perf_counter()
            images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            target = target.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = F.cross_entropy(model(images), target, ignore_index=255)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            done += 1
            if done == steps:
                break
    sync(device)
    return (steps - warmup) * batch / (time.perf_counter() - start)


def harness_loop(model, ds, steps: int, warmup: int, batch: int, device, amp: bool) -> float:
    """``engine.train`` as the runner calls it; images/s after warm-up (from its history rows)."""
    optimizer = engine.build_optimizer(model, "sgd", 0.01, 0.9, 5e-4)
    scheduler = engine.poly_schedule(optimizer, steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    criterion = build_loss(parse_loss_spec("mcce"), num_classes=ds.num_classes).to(device)
    sampler = UniformBatchSampler(len(ds), batch, num_batches=steps, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, pin_memory=device.type == "cuda")
    marks = {}

    def mark(step):
        sync(device)
        marks[step] = time.perf_counter()

    state = engine.TrainState(model, optimizer, scheduler, scaler, criterion, sampler)
    engine.train(state, loader, engine.TrainLogger(images_per_step=batch, progress=False), device=device,
                 autocast=torch.float16 if amp else None, channels_last=True, checkpoint=mark,
                 checkpoint_every=warmup)
    return (steps - warmup) * batch / (marks[steps] - marks[warmup])


def check_train(dry: bool, steps: int, warmup: int, batch: int) -> None:
    device = device_for(dry)
    name = "unet_tiny" if dry else "deeplabv3plus_resnet101"
    amp = device.type == "cuda"
    ds = _data(dry, batch)
    cached = [ds[i] for i in range(len(ds))]  # decode once: this measures training, not the generator

    class Cached(torch.utils.data.Dataset):
        num_classes = ds.num_classes

        def __len__(self):
            return len(cached)

        def __getitem__(self, i):
            return cached[i]

    rows = []
    for label, loop in (("bare loop", bare_loop), ("harness (engine.train)", harness_loop)):
        torch.manual_seed(0)
        model = build_model(name, num_classes=ds.num_classes).to(device).to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rate = loop(model, Cached(), steps, warmup, batch, device, amp)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        rows.append((label, rate, peak))
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    size = "32×64" if dry else "512×1024"
    print(f"\n### training: {name}, batch {batch} × {size}, AMP {'on' if amp else 'off'}, channels_last, "
          f"{steps} steps ({warmup} warm-up) on {device}\n")
    print("| loop | images/s | peak memory GiB | vs bare |\n|---|---:|---:|---:|")
    for label, rate, peak in rows:
        print(f"| {label} | {rate:.2f} | {peak:.2f} | {rate / rows[0][1]:.3f}× |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["confusion", "train"])
    parser.add_argument("--dry", action="store_true", help="on the CPU at toy sizes (what the tests run)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 100; dry 6)")
    parser.add_argument("--warmup", type=int, default=None, help="steps before timing (default 10; dry 2)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8; dry 2)")
    parser.add_argument("--maps", type=int, default=None, help="label maps (default 20; dry 4)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.part == "confusion":
        return 0 if check_confusion(args.dry, args.maps or (4 if args.dry else 20), args.repeats) else 1
    steps = args.steps or (6 if args.dry else 100)
    warmup = args.warmup or (2 if args.dry else 10)
    check_train(args.dry, steps, warmup, args.batch or (2 if args.dry else 8))
    return 0


if __name__ == "__main__":
    sys.exit(main())
