"""The engine: one training loop, one evaluation loop, and atomic, weights-only checkpoints.

Modelled on torchvision's segmentation references (``train_one_epoch`` / ``evaluate``), with
what a fairness benchmark adds: the batch sampler's ``update`` is fed every step's loss (the
Stochastic TCE sampler adapts its class draw to it), the loss is checked for NaN/Inf before the
optimizer step (the last good checkpoint stays as it is), and the evaluation keeps per-image
statistics for the bootstrap. The loops run under autocast when asked (``train.amp``: float16 +
GradScaler on CUDA, bfloat16 on any device); training uses channels_last on every device
(oneDNN's CPU convolutions are faster in it too).
"""
from __future__ import annotations

import io
import math
import os
import pickle
import random
import re
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from fairseg_bench.atomic import write_atomic
from fairseg_bench.errors import UserError


class NonFiniteLoss(UserError):
    """The training loss became NaN or infinite; the run stops, its last good checkpoint is kept."""


# ----------------------------------------------------------------------------- optimisation
def build_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD (with momentum), Adam or AdamW over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise UserError(f"unknown optimizer {name!r} (choices: sgd, adam, adamw)")


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9):
    """The poly learning-rate schedule ``lr * (1 - step / total) ** power`` (DeepLab)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(1.0 - step / total_steps, 0.0) ** power)


# ----------------------------------------------------------------------------- memory layout
def _contiguous_output(module: nn.Module, inputs, output):
    return output.contiguous() if torch.is_tensor(output) else output


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` in channels_last (NHWC), its output handed on in the standard (NCHW) layout.

    The convolutions gain from NHWC (oneDNN on CPU, tensor cores on CUDA); the losses reduce
    over the class dimension, which on CPU runs ~7× slower on NHWC logits than the copy back
    costs (``benchmarks/bench_step.py --profile``). A forward hook, so ``state_dict()`` is unchanged.
    """
    model = model.to(memory_format=torch.channels_last)
    model.register_forward_hook(_contiguous_output)
    return model


# ----------------------------------------------------------------------------- checkpoints
# torch.load(weights_only=True) reads tensors, containers and Python scalars only, so numpy
# arrays travel as {"__ndarray__": tensor} and RNG states as tensors/lists.
def to_safe(obj):
    """Numpy arrays/scalars inside ``obj`` -> tensors/Python scalars that weights_only loads."""
    if isinstance(obj, dict):
        return {k: to_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_safe(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj))}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def from_safe(obj):
    """Inverse of :func:`to_safe`."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: from_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_safe(v) for v in obj)
    return obj


def rng_states() -> dict:
    """The torch (CPU and CUDA), numpy and Python RNG states, weights-only safe."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_states(state: dict) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """``torch.save`` to a temporary file, then rename: ``path`` is always a complete checkpoint."""
    buffer = io.BytesIO()
    torch.save(to_safe(state), buffer)
    write_atomic(path, buffer.getvalue())  # fsync'd before the rename: no empty file after a power cut


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary objects) onto the CPU."""
    try:
        return from_safe(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise UserError(f"{path}: not a readable checkpoint ({exc})") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))  # what the file asked the unpickler to import
        what = f" ({found.group(1)})" if found else ""
        raise UserError(f"{path}: not a readable checkpoint: refused, it holds Python objects{what} beyond "
                        f"tensors and plain containers, which could run code (weights_only loading)") from None
    except Exception as exc:  # the unpickler raises many kinds on a truncated or foreign file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from None


# ----------------------------------------------------------------------------- loops
def _global_mean(value: torch.Tensor) -> float:
    """The step's loss averaged over ranks (every rank then takes the same NaN decision)."""
    value = value.detach()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.float().reshape(1).clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)


def train(model: nn.Module, criterion: nn.Module, loader, sampler, optimizer, scheduler, scaler, *,
          device: torch.device, start_step: int, total_steps: int, history: list[dict],
          checkpoint=None, checkpoint_every: int = 100, autocast: torch.dtype | None = None,
          channels_last: bool = False,
          images_per_step: int | None = None, progress: bool = True) -> int:
    """Train from ``start_step`` until the sampler runs out; append one history row per step.

    ``checkpoint(step)`` is called every ``checkpoint_every`` steps and after the last one.
    The forward runs under ``autocast`` (a dtype, or None for float32); the loss is computed on
    float32 logits. Returns the final step. Raises :class:`NonFiniteLoss` before a step with a
    NaN/Inf loss (or, without the float16 grad scaler, gradient norm) is applied, and instead of
    checkpointing non-finite parameters, so the checkpoint on disk is always the last good one.
    """
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=total_steps, initial=start_step, desc="train", disable=not progress, dynamic_ncols=True)
    step, tick = start_step, time.perf_counter()
    for images, target in loader:
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(images)
        loss = criterion(logits.float(), target)  # the losses' log-sum-exps and tilts in float32
        loss_value = _global_mean(loss)
        if not math.isfinite(loss_value):
            bar.close()
            raise NonFiniteLoss(f"step {step + 1}: the loss is {loss_value}; training stopped before applying it")
        lr = scheduler.get_last_lr()[0]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        if not scaler.is_enabled() and not math.isfinite(grad_norm):  # (AMP's scaler skips such steps itself)
            bar.close()
            raise NonFiniteLoss(f"step {step + 1}: the gradient norm is {float(grad_norm)}; training stopped "
                                f"before applying it")
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if getattr(criterion, "class_stats", None) is not None:  # per-class CE of this batch (tce:estimate=class)
            sampler.update(loss_value, class_stats=criterion.class_stats)
        else:
            sampler.update(loss_value)
        step += 1
        now = time.perf_counter()
        rate = (images_per_step or images.shape[0]) / max(now - tick, 1e-9)
        row = {"step": step, "lr": lr, "loss": loss_value, "grad_norm": float(grad_norm), "images_per_s": rate}
        if sampler.weights is not None:
            row["drawn_class"] = sampler.last_class
            row["weights"] = sampler.weights.tolist()
        history.append(row)
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", refresh=False)
        bar.update()
        if checkpoint is not None and (step % checkpoint_every == 0 or step == total_steps):
            state = [t for t in (*params, *model.buffers()) if t.is_floating_point()]
            if not all(bool(torch.isfinite(t).all()) for t in state):  # a finite step can still overflow
                bar.close()
                raise NonFiniteLoss(f"step {step}: the parameters or BatchNorm statistics are no longer "
                                    f"finite (learning rate too high?); training stopped")
            checkpoint(step)
        tick = time.perf_counter()  # checkpoint time is not training time
    bar.close()
    return step


def logits_at(logits: torch.Tensor, size) -> torch.Tensor:
    """``logits`` (B, K, h, w) upsampled bilinearly to the label's ``size`` (H, W) when they differ
    (a model fed downscaled frames, evaluated on the label files' pixels)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return nn.functional.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


@torch.inference_mode()
def evaluate(model: nn.Module, loader, num_classes: int, *, ignore_index: int = 255,
             device: torch.device, autocast: torch.dtype | None = None, channels_last: bool = False,
             progress: bool = True, boundary=None):
    """Accumulate the confusion matrix (with per-image statistics) of ``model`` over ``loader``.

    ``boundary``: a :class:`~fairseg_bench.core.boundary.BoundaryIoU` that also counts every batch's
    Boundary IoU on the same argmax (on the device, no host synchronisation per batch).
    """
    from fairseg_bench.core.confusion import ConfusionMatrix

    model.eval()
    cm = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device, per_image=True)
    for images, target in tqdm(loader, desc="eval", disable=not progress, dynamic_ncols=True):
        images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(images)
        pred = logits_at(logits, target.shape[-2:]).argmax(1)
        cm.update(pred, target)
        if boundary is not None:
            boundary.update(target, pred)
    return cm


@torch.inference_mode()
def save_predictions(model: nn.Module, loader, folder, names: list[str], palette, *, device: torch.device,
                     autocast: torch.dtype | None = None, progress: bool = True) -> int:
    """Write ``<name>.png`` per image of ``loader`` (in order): the predicted class ids at the label's
    size, as a palette PNG (index = class id), the form ``evaluate --predictions`` reads. Returns the count."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    colours = np.asarray(palette, np.uint8).reshape(-1).tolist()
    model.eval()
    written = 0
    for images, target in tqdm(loader, desc="predictions", disable=not progress, dynamic_ncols=True):
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(images.to(device))
        for pred in logits_at(logits, target.shape[-2:]).argmax(1).byte().cpu().numpy():
            png = Image.fromarray(pred, mode="P")
            png.putpalette(colours)
            buffer = io.BytesIO()
            png.save(buffer, format="PNG")
            write_atomic(folder / f"{names[written]}.png", buffer.getvalue())
            written += 1
    return written


@torch.inference_mode()
def predict_samples(model: nn.Module, dataset, count: int, *, device: torch.device) -> dict[str, np.ndarray]:
    """``image`` (S,H,W,3), ``target`` (S,H,W) and ``pred`` (S,H,W) uint8 for the first S images.

    Images of different sizes are padded to the largest (image 0, labels 255).
    """
    model.eval()
    images, targets, preds = [], [], []
    for i in range(min(count, len(dataset))):
        image, target = dataset[i]
        pred = logits_at(model(image[None].to(device)), target.shape).argmax(1)[0].cpu()
        raw = dataset.image(i)
        if raw.shape[:2] != tuple(target.shape):  # val transforms resized it: follow the label's size
            raw = nn.functional.interpolate(torch.tensor(raw).permute(2, 0, 1)[None].float(),
                                            size=tuple(target.shape), mode="bilinear")[0]
            raw = raw.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        images.append(raw)
        targets.append(target.numpy().astype(np.uint8))
        preds.append(pred.numpy().astype(np.uint8))
    if not images:
        return {"image": np.zeros((0, 1, 1, 3), np.uint8), "target": np.zeros((0, 1, 1), np.uint8),
                "pred": np.zeros((0, 1, 1), np.uint8)}
    height = max(t.shape[0] for t in targets)
    width = max(t.shape[1] for t in targets)

    def stack(arrays, fill):
        out = np.full((len(arrays), height, width, *arrays[0].shape[2:]), fill, np.uint8)
        for k, a in enumerate(arrays):
            out[k, : a.shape[0], : a.shape[1]] = a
        return out

    return {"image": stack(images, 0), "target": stack(targets, 255), "pred": stack(preds, 255)}
