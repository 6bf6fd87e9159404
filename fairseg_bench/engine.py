"""The engine: one training loop over a :class:`TrainState`, one evaluation loop, and predictions.

Modelled on torchvision's segmentation references (``train_one_epoch`` / ``evaluate``), with
what a fairness benchmark adds: the batch sampler's ``update`` is fed every step's loss (the
Stochastic TCE sampler adapts its class draw to it), the loss is checked for NaN/Inf before the
optimizer step (the last good checkpoint stays as it is), and the evaluation keeps per-image
statistics for the bootstrap. The loops run under autocast when asked (``train.amp``: float16 +
GradScaler on CUDA, bfloat16 on any device); training uses channels_last on every device
(oneDNN's CPU convolutions are faster in it too). Checkpoints are :mod:`fairseg_bench.checkpoint`'s.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field

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
    # foreach on every device (torch picks it only on CUDA): on CPU the same per-tensor kernels, bit for
    # bit, with one dispatch per step instead of a Python loop over the parameters (~0.4 ms per step)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)
    raise UserError(f"unknown optimizer {name!r} (choices: sgd, adam, adamw)")


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9):
    """The poly learning-rate schedule ``lr * (1 - step / total) ** power`` (DeepLab)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(1.0 - step / total_steps, 0.0) ** power)


# ----------------------------------------------------------------------------- memory layout
def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` in channels_last (NHWC): its convolutions gain from it (oneDNN on CPU, tensor cores
    on CUDA), and its logits come out NHWC-strided.

    The per-pixel CE losses read NHWC logits in place (``channels_last_logits``); the training
    loop copies them to NCHW for the others (:func:`loss_input`). ``state_dict()`` is unchanged.
    """
    return model.to(memory_format=torch.channels_last)


def loss_input(logits: torch.Tensor, criterion: nn.Module) -> torch.Tensor:
    """The logits as ``criterion`` takes them: float32, and NCHW unless it reads NHWC in place.

    On CPU the class-dimension reductions of the other losses run several times slower on NHWC
    logits than the copy back costs (``benchmarks/bench_step.py --profile``).
    """
    if not getattr(criterion, "channels_last_logits", False):
        logits = logits.contiguous()
    return logits.float()  # the losses' log-sum-exps and tilts in float32


# ----------------------------------------------------------------------------- training
@dataclass
class TrainState:
    """What training changes, as a checkpoint holds it besides the RNGs: six components and the progress.

    ``sampler`` is the loader's batch sampler: training ends when it has yielded ``sampler.num_batches``.
    ``history`` holds one row per step (:class:`TrainLogger`).
    """

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module
    sampler: object
    step: int = 0
    history: list = field(default_factory=list)
    train_time_s: float = 0.0

    COMPONENTS = ("model", "optimizer", "scheduler", "scaler", "criterion", "sampler")

    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in self.COMPONENTS}
        return {**state, "step": self.step, "history": self.history, "train_time_s": self.train_time_s}

    def load_state_dict(self, state: dict) -> None:
        for name in self.COMPONENTS:
            getattr(self, name).load_state_dict(state[name])
        self.step, self.history, self.train_time_s = state["step"], state["history"], state["train_time_s"]


class TrainLogger:
    """Writes a train state's history, one row per step, and shows the progress bar.

    A row: ``step, lr, loss, grad_norm, images_per_s`` (+ ``drawn_class, weights`` for the class
    samplers). ``images_per_s`` counts ``images_per_step`` (the total batch over all ranks; default:
    this rank's batch) over the step's time, checkpoints left out.
    """

    def __init__(self, *, images_per_step: int | None = None, progress: bool = True):
        self.images_per_step, self.progress = images_per_step, progress
        self.history: list[dict] = []
        self.bar = None
        self.tick = 0.0

    def open(self, state: TrainState) -> None:
        """Append to ``state.history``; start the bar at ``state.step`` and the step clock."""
        self.history = state.history
        self.bar = tqdm(total=state.sampler.num_batches, initial=state.step, desc="train",
                        disable=not self.progress, dynamic_ncols=True)
        self.restart_clock()

    def restart_clock(self) -> None:
        self.tick = time.perf_counter()

    def log_step(self, step: int, lr: float, loss: float, grad_norm: float, batch_size: int, sampler) -> None:
        """One history row (and the bar's postfix) for the step just taken."""
        rate = (self.images_per_step or batch_size) / max(time.perf_counter() - self.tick, 1e-9)
        row = {"step": step, "lr": lr, "loss": loss, "grad_norm": grad_norm, "images_per_s": rate}
        if sampler.weights is not None:
            row["drawn_class"] = sampler.last_class
            row["weights"] = sampler.weights.tolist()
        self.history.append(row)
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}", refresh=False)
        self.bar.update()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(state: TrainState, loader, logger: TrainLogger, *, device: torch.device,
          autocast: torch.dtype | None = None, channels_last: bool = False, checkpoint=None,
          checkpoint_every: int = 100) -> None:
    """Train ``state`` from ``state.step`` until the loader's batch sampler (``state.sampler``) runs out.

    ``checkpoint(step)`` is called every ``checkpoint_every`` steps and after the last one. The
    forward runs under ``autocast`` (a dtype, or None for float32); the loss is computed on
    float32 logits. Under torch.distributed the model trains in DistributedDataParallel. Raises
    :class:`NonFiniteLoss` before a step with a NaN/Inf loss (or, without the float16 grad scaler,
    gradient norm) is applied, and instead of checkpointing non-finite parameters, so the
    checkpoint on disk is always the last good one.
    """
    model = _distributed(state.model, device)
    model.train()
    params = [p for p in state.model.parameters() if p.requires_grad]
    logger.open(state)
    try:
        for images, target in loader:
            images, target = _to_device(images, target, device, channels_last)
            lr = state.scheduler.get_last_lr()[0]
            loss, grad_norm = _train_step(state, model, params, images, target, autocast)
            state.step += 1
            logger.log_step(state.step, lr, loss, grad_norm, images.shape[0], state.sampler)
            if checkpoint is not None and (state.step % checkpoint_every == 0
                                           or state.step == state.sampler.num_batches):
                _require_finite_state(params, state.model, state.step)
                checkpoint(state.step)
            logger.restart_clock()  # checkpoint time is not training time
    finally:
        logger.close()


def _distributed(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when torch.distributed runs several processes."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _to_device(images: torch.Tensor, target: torch.Tensor, device: torch.device, channels_last: bool):
    images, target = images.to(device, non_blocking=True), target.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, target


def _train_step(state: TrainState, model: nn.Module, params: list, images, target,
                autocast: torch.dtype | None) -> tuple[float, float]:
    """One optimizer step on a batch (the sampler fed its loss); returns the loss and the gradient norm."""
    with torch.autocast(images.device.type, dtype=autocast, enabled=autocast is not None):
        logits = model(images)
    loss = state.criterion(loss_input(logits, state.criterion), target)
    loss_value = _global_mean(loss)
    if not math.isfinite(loss_value):
        raise NonFiniteLoss(f"step {state.step + 1}: the loss is {loss_value}; training stopped before applying it")
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.unscale_(state.optimizer)
    grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if not state.scaler.is_enabled() and not math.isfinite(grad_norm):  # (AMP's scaler skips such steps itself)
        raise NonFiniteLoss(f"step {state.step + 1}: the gradient norm is {float(grad_norm)}; training stopped "
                            f"before applying it")
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    _feed_sampler(state.sampler, state.criterion, loss_value)
    return loss_value, float(grad_norm)


def _global_mean(value: torch.Tensor) -> float:
    """The step's loss averaged over ranks (every rank then takes the same NaN decision)."""
    value = value.detach()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        value = value.float().reshape(1).clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return float(value)


def _feed_sampler(sampler, criterion: nn.Module, loss: float) -> None:
    """The batch sampler's update: the batch loss, and the per-class CE where the loss keeps it (tce:estimate=class)."""
    if getattr(criterion, "class_stats", None) is not None:
        sampler.update(loss, class_stats=criterion.class_stats)
    else:
        sampler.update(loss)


def _require_finite_state(params: list, model: nn.Module, step: int) -> None:
    """Raise :class:`NonFiniteLoss` if a parameter or buffer overflowed (a finite step can still)."""
    tensors = [t for t in (*params, *model.buffers()) if t.is_floating_point()]
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise NonFiniteLoss(f"step {step}: the parameters or BatchNorm statistics are no longer "
                            f"finite (learning rate too high?); training stopped")


# ----------------------------------------------------------------------------- evaluation
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
