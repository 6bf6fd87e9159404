"""MCCE's learning curve on CamVid: per-class IoU on val along one run, and on test at the end.

Val is scored on the downscaled labels (a cheap curve), test on the label files' own pixels
(the model's logits upsampled), as the ``camvid`` preset evaluates.

Trains with the harness's components (the ``camvid`` dataset with ``frame_size`` frames in
memory, ``build_model``, the ``mcce`` loss, Adam and the poly schedule, channels_last, one thread,
``train.amp: auto``'s precision unless ``--float32``) and evaluates at the given steps; prints
mIoU, every class and the training CPU time so far. The ``camvid`` preset's budget was chosen
from such curves (docs/datasets.md). Batches are uniform shuffles, as the runner's.

    OMP_NUM_THREADS=1 python benchmarks/calibrate_camvid.py --root ../shared/data/camvid \
        --model unet_lite --batch 8 --crop 128 --lr 4e-3 --iters 6000 --evals 2000,4000,6000 --out curve.json
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from calibrate_quick import batches  # the same uniform shuffles (run from benchmarks/ or with it on the path)
from torch.utils.data import DataLoader

from fairseg_bench import engine
from fairseg_bench.core.iou import per_class_iou
from fairseg_bench.data import build_dataset
from fairseg_bench.loss_specs import build_loss
from fairseg_bench.models import build_model
from fairseg_bench.precision import resolve_precision

CL = torch.channels_last


def evaluate(model, dataset, autocast) -> np.ndarray:
    """Per-class IoU (percent) of ``model`` on ``dataset``."""
    loader = DataLoader(dataset, batch_size=16)
    cm = engine.evaluate(model, loader, dataset.num_classes, device=torch.device("cpu"), autocast=autocast,
                         progress=False)
    model.train()
    return 100 * per_class_iou(cm.compute().numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/camvid")
    p.add_argument("--model", default="unet_lite")
    p.add_argument("--frame", default="180,240", help="frame_size H,W")
    p.add_argument("--crop", default="128", help="crop H[,W]")
    p.add_argument("--scale", default="0.75,1.5", help="random scale range")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--iters", type=int, default=6000)
    p.add_argument("--evals", default="2000,4000,6000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float32", action="store_true", help="float32 even where bfloat16 is native")
    p.add_argument("--out")
    a = p.parse_args()
    torch.set_num_threads(1)
    frame = [int(v) for v in a.frame.split(",")]
    crop = [int(v) for v in a.crop.split(",")] * (2 if "," not in a.crop else 1)
    train = build_dataset("camvid", root=a.root, split="train", frame_size=frame, crop_size=crop,
                          scale_range=[float(v) for v in a.scale.split(",")])
    val = build_dataset("camvid", root=a.root, split="val", frame_size=frame)
    # test as the preset evaluates it: the model on the small frames, the label files' own pixels
    test = build_dataset("camvid", root=a.root, split="test", frame_size=frame, full_size_labels=True)
    precision = resolve_precision(False if a.float32 else "auto", torch.device("cpu"))
    torch.manual_seed(a.seed)
    model = engine.to_channels_last(build_model(a.model, num_classes=train.num_classes))
    criterion = build_loss("mcce", num_classes=train.num_classes, ignore_index=255,
                           class_pixel_counts=np.ones(train.num_classes))
    optimizer = engine.build_optimizer(model, "adam", a.lr)
    scheduler = engine.poly_schedule(optimizer, a.iters, 0.9)
    evals = {int(s) for s in a.evals.split(",")}
    draws = batches(len(train), a.batch, torch.Generator().manual_seed(a.seed))
    rows, start, eval_cpu = [], time.process_time(), 0.0
    print(f"{a.model}, batch {a.batch}, crop {crop}, frame {frame}, lr {a.lr}, {a.iters} steps, "
          f"{precision.describe()}", flush=True)
    model.train()
    for step in range(1, a.iters + 1):
        items = [train[i] for i in next(draws)]
        images = torch.stack([x for x, _ in items]).contiguous(memory_format=CL)
        with torch.autocast("cpu", dtype=precision.dtype, enabled=precision.dtype is not None):
            logits = model(images)
        loss = criterion(engine.loss_input(logits, criterion), torch.stack([y for _, y in items]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step in evals:
            tick = time.process_time()
            split, dataset = ("test", test) if step == a.iters else ("val", val)
            iou = evaluate(model, dataset, precision.dtype)
            eval_cpu += time.process_time() - tick
            cpu = time.process_time() - start - eval_cpu
            classes = ", ".join(f"{train.classes[c]} {iou[c]:.1f}" for c in np.argsort(iou))
            print(f"step {step} ({split}): train CPU {cpu:.0f} s, mIoU {np.nanmean(iou):.1f} | {classes}", flush=True)
            rows.append({"step": step, "split": split, "train_cpu_s": cpu, "iou": np.round(iou, 2).tolist()})
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "precision": precision.record(), "classes": list(train.classes),
                       "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
