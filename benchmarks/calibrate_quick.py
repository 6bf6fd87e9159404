"""MCCE's learning curve on the synthetic benchmark: per-class IoU along one training run.

Trains with the presets' components (synthetic data, ``build_model``, the ``mcce`` loss, Adam
and the poly schedule, channels_last, one thread) and evaluates 200 val images at the given
steps; prints mIoU, the worst classes and the CPU time so far. The budgets in
``experiments/quick.yaml`` and ``experiments/trained.yaml`` were chosen from such curves
(docs/datasets.md). Batches are uniform shuffles, as the runner's; the order differs from it.

    OMP_NUM_THREADS=1 python benchmarks/calibrate_quick.py --model unet_lite --batch 2 --lr 4e-3 \
        --iters 6000 --evals 3000,4000,5000,6000 --bf16 --out curve.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from fairseg_bench import engine
from fairseg_bench.data import build_dataset
from fairseg_bench.loss_specs import build_loss
from fairseg_bench.models import LiteUNet, build_model

CL = torch.channels_last


def batches(n: int, batch: int, generator: torch.Generator):
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for i in range(0, n - batch + 1, batch):
            yield order[i:i + batch]


@torch.inference_mode()
def per_class_iou(model, images, labels, num_classes: int) -> np.ndarray:
    model.eval()
    cm = np.zeros((num_classes, num_classes), np.int64)
    for i in range(0, len(images), 50):
        pred, target = model(images[i:i + 50].contiguous(memory_format=CL)).argmax(1), labels[i:i + 50]
        keep = target != 255
        cm += np.bincount(target[keep].numpy() * num_classes + pred[keep].numpy(),
                          minlength=num_classes ** 2).reshape(num_classes, num_classes)
    model.train()
    tp = np.diag(cm)
    return 100 * tp / np.maximum(cm.sum(0) + cm.sum(1) - tp, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="unet_lite")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=8e-3)
    p.add_argument("--iters", type=int, default=900)
    p.add_argument("--evals", default="300,600,900")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast, as train.amp: bf16")
    p.add_argument("--widths", help="unet_lite with these widths, e.g. 12,24,48,96")
    p.add_argument("--out")
    a = p.parse_args()
    torch.set_num_threads(1)
    train = build_dataset("synthetic", split="train", num_images=1000, seed=0)
    val = build_dataset("synthetic", split="val", num_images=200, seed=0)
    vx, vy = (torch.stack([val[i][k] for i in range(len(val))]) for k in (0, 1))
    torch.manual_seed(a.seed)
    if a.widths:
        model = LiteUNet(train.num_classes, tuple(int(w) for w in a.widths.split(",")))
    else:
        model = build_model(a.model, num_classes=train.num_classes)
    model = model.to(memory_format=CL)
    criterion = build_loss("mcce", num_classes=train.num_classes, ignore_index=255,
                           class_pixel_counts=np.ones(train.num_classes))
    optimizer = engine.build_optimizer(model, "adam", a.lr)
    scheduler = engine.poly_schedule(optimizer, a.iters, 0.9)
    evals = {int(s) for s in a.evals.split(",")}
    draws = batches(len(train), a.batch, torch.Generator().manual_seed(a.seed))
    rows, start, eval_cpu = [], time.process_time(), 0.0
    model.train()
    for step in range(1, a.iters + 1):
        index = next(draws)
        images = torch.stack([train[i][0] for i in index]).contiguous(memory_format=CL)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(images)
        loss = criterion(logits.float(), torch.stack([train[i][1] for i in index]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step in evals:
            tick = time.process_time()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
                iou = per_class_iou(model, vx, vy, train.num_classes)
            eval_cpu += time.process_time() - tick
            cpu = time.process_time() - start - eval_cpu
            low = ", ".join(f"{train.classes[c]} {iou[c]:.1f}" for c in np.argsort(iou)[:4])
            print(f"step {step}: train CPU {cpu:.0f} s, mIoU {iou.mean():.1f}, worst {iou.min():.1f}, "
                  f"{(iou < 20).sum()} below 20 | {low}", flush=True)
            rows.append({"step": step, "train_cpu_s": cpu, "iou": iou.round(2).tolist()})
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "classes": list(train.classes), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
