"""The runner: every loss × seed of an experiment, each in its own resumable run folder.

``<out>/<experiment>/<label>-s<seed>/`` holds ``config.yaml`` (the run's resolved config),
``last.pt`` (written every ``train.checkpoint_every`` steps), ``history.csv``, ``samples.npz``
and, last, ``metrics.json``: a run with a valid ``metrics.json`` of the same config hash is
finished and skipped; one with only ``last.pt`` resumes from it. On CPU with
``data.num_workers: 0`` a resumed run ends bit-identical to an uninterrupted one: the
checkpoint holds the model, optimizer, scheduler, sampler (with its prefetched batches), loss
state and every RNG, and the DataLoader draws its base seed from its own generator so creating
a new iterator does not move the global RNG. With workers, the workers' RNG streams restart.

A lock file per run (created with O_EXCL, holding ``pid host [scheduler job]``; a dead pid's
lock is taken over, and so is the lock of a requeued Slurm task's earlier attempt) lets several
processes share an output folder: the second skips runs the first holds. ``run --jobs N`` and
``--launcher local|slurm`` start those processes (``fairseg_bench.launch.sweep``, above this module); each run keeps a
status record (``fairseg_bench.run_status``) that the launchers and ``fairseg-bench status`` read.

One run is a list of named steps (:func:`_train_and_evaluate`) around a :class:`TrainState`,
whose ``state_dict()`` is the checkpoint.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from fairseg_bench import engine
from fairseg_bench.config import ExperimentConfig, LauncherConfig, config_hash, dump_config, load_config
from fairseg_bench.errors import UserError
from fairseg_bench.precision import Precision, emulation_warning, resolve_precision
from fairseg_bench.results import METRICS_FILE, SCHEMA_VERSION, read_metrics, write_atomic, write_json_atomic
from fairseg_bench.results.environment import environment, git_commit  # noqa: F401 - runner's names
from fairseg_bench.run_status import LOCK, lock_holder_alive, lock_text, write_status

CHECKPOINT = "last.pt"


def log(message: str) -> None:
    """A status line on stderr (stdout carries the tables)."""
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- set-up
@dataclass
class Experiment:
    """What every run of one experiment shares: config, device, datasets, class index."""

    cfg: ExperimentConfig
    device: torch.device
    train_set: object
    val_set: object
    class_index: object
    folder: Path
    config_hash: str
    rank: int = 0
    world_size: int = 1

    @property
    def progress(self) -> bool:
        return not self.cfg.quiet and self.rank == 0 and sys.stderr.isatty()


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return torch.device(name)


def parse_losses(cfg: ExperimentConfig) -> list:
    """Parse every loss spec (``LossSpec``) up front: an unknown loss fails before anything is written."""
    from fairseg_bench.loss_specs import parse_loss_spec

    losses = [parse_loss_spec(text) for text in cfg.losses]
    labels = [loss.label for loss in losses]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise UserError(f"losses: {', '.join(duplicates)} given more than once")
    return losses


def check_output_folder(folder: Path, expected_hash: str) -> None:
    """Refuse a folder holding runs of another config (nothing there is touched)."""
    if not folder.is_dir():
        return
    for config_file in sorted(folder.glob("*/config.yaml")):
        try:
            other = config_hash(load_config(config_file))
        except UserError:
            other = None
        if other != expected_hash:
            raise UserError(f"{folder} holds runs of a different config ({config_file.parent.name}); "
                            f"use another --out or experiment name, or remove them")


def prepare(cfg: ExperimentConfig, *, rank: int = 0, world_size: int = 1,
            device: torch.device | None = None) -> Experiment:
    """Check the output folder, build the datasets and the (cached) class index."""
    from fairseg_bench.data import build_dataset
    from fairseg_bench.data.index import build_class_index

    folder = Path(cfg.out) / cfg.name
    digest = config_hash(cfg)
    check_output_folder(folder, digest)
    device = device or resolve_device(cfg.device)
    data = cfg.data
    train_set = build_dataset(data.dataset, root=data.root, split="train", **data.train_options)
    val_set = build_dataset(data.dataset, root=data.root, split=data.eval_split, **data.val_options)
    cache = folder / ".cache"
    if rank == 0:
        class_index = build_class_index(train_set, cache_dir=cache)
    if world_size > 1:
        dist.barrier()  # rank 0 has written the cache; the others read it
    if rank != 0:
        class_index = build_class_index(train_set, cache_dir=cache)
    return Experiment(cfg, device, train_set, val_set, class_index, folder, digest, rank, world_size)


# ----------------------------------------------------------------------------- locking
@contextmanager
def run_lock(run_dir: Path):
    """Yield True while this process holds the run's lock, False if a live process holds it."""
    path = run_dir / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                text = path.read_text().strip()
                alive = bool(text) and lock_holder_alive(text)
                fresh = not text and time.time() - path.stat().st_mtime < 10
            except (OSError, ValueError):
                alive, fresh = False, False
            if fresh or alive:  # (an empty, fresh lock: its creator has yet to write its pid)
                yield False
                return
            path.unlink(missing_ok=True)  # stale: its process is gone
    else:
        yield False
        return
    with os.fdopen(fd, "w") as f:
        f.write(lock_text())
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- one run
def run_folder(exp: Experiment, loss, seed: int) -> Path:
    return exp.folder / f"{loss.label}-s{seed}"


def is_finished(run_dir: Path, digest: str) -> bool:
    """A valid ``metrics.json`` with the same config hash."""
    if not (run_dir / METRICS_FILE).is_file():
        return False
    try:
        return read_metrics(run_dir).data.get("config_hash") == digest
    except UserError as exc:  # truncated or damaged: not trusted, the run is evaluated again
        log(f"warning: {exc}; not counted as finished")
        return False


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def train_run(exp: Experiment, loss, seed: int) -> str:
    """Train and evaluate one (loss, seed), resuming from ``last.pt``; returns what happened."""
    run_dir = run_folder(exp, loss, seed)
    status = None
    if exp.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        if is_finished(run_dir, exp.config_hash):
            status = "finished"
    if exp.world_size > 1:
        box = [status]
        dist.broadcast_object_list(box, src=0)
        status = box[0]
    if status:
        log(f"{run_dir}: finished, skipped")
        return "skipped"
    if exp.world_size > 1:  # torchrun launches one run; no lock between its own ranks
        return _train_marking_failures(exp, loss, seed, run_dir)
    with run_lock(run_dir) as held:
        if not held:
            log(f"{run_dir}: locked by another process, skipped")
            return "locked"
        if is_finished(run_dir, exp.config_hash):  # finished by another process since the check above
            log(f"{run_dir}: finished, skipped")
            return "skipped"
        return _train_marking_failures(exp, loss, seed, run_dir)


def _train_marking_failures(exp: Experiment, loss, seed: int, run_dir: Path) -> str:
    """:func:`_train_and_evaluate`, recording a failure in the run's status record."""
    try:
        return _train_and_evaluate(exp, loss, seed, run_dir)
    except Exception as exc:  # (an interrupt or a requeue signal is no failure: the run resumes)
        if exp.rank == 0:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            write_status(run_dir, "failed", error=reason)
        raise


def _run_config(exp: Experiment, loss, seed: int) -> ExperimentConfig:
    """The experiment's config narrowed to this run (reloadable with ``-c``); where it ran is left out."""
    return replace(exp.cfg, losses=(loss.text,), seeds=(seed,), launcher=LauncherConfig())


@dataclass
class TrainState:
    """What a run's checkpoint holds besides the RNGs: its six components and its progress."""

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


def use_channels_last(cfg: ExperimentConfig, device: torch.device, *, training: bool = True) -> bool:
    """channels_last (NHWC) for training on every device: oneDNN's CPU convolutions are faster
    in it too (``benchmarks/bench_step.py``). CPU evaluation stays contiguous, the layout
    ``fairseg-bench evaluate`` uses, so that it reproduces a run's confusion matrix bit for bit."""
    return cfg.train.channels_last and (training or device.type == "cuda")


def run_precision(cfg: ExperimentConfig, device: torch.device) -> Precision:
    """The precision of ``train.amp`` on ``device`` (``fairseg_bench.precision``); warns once if emulated."""
    precision = resolve_precision(cfg.train.amp, device)
    warning = emulation_warning(precision)
    if warning:
        log(f"warning: {warning}")
    return precision


def build_train_state(exp: Experiment, loss, seed: int) -> TrainState:
    """Seed, then build the model, loss, batch sampler, optimizer, schedule and grad scaler of one run."""
    from fairseg_bench.loss_specs import build_loss, build_sampler
    from fairseg_bench.models import build_model

    cfg, device, ds = exp.cfg, exp.device, exp.train_set
    seed_everything(seed + exp.rank)
    model = build_model(cfg.model.name, num_classes=ds.num_classes, pretrained=cfg.model.pretrained).to(device)
    if use_channels_last(cfg, device):
        model = engine.to_channels_last(model)
    criterion = build_loss(loss, num_classes=ds.num_classes, ignore_index=ds.ignore_index,
                           class_pixel_counts=exp.class_index.class_pixel_counts(),
                           class_image_counts=exp.class_index.class_image_counts()).to(device)
    sampler = build_sampler(loss, class_index=exp.class_index, batch_size=cfg.train.batch_size // exp.world_size,
                            num_batches=cfg.train.iters, seed=seed, rank=exp.rank, world_size=exp.world_size,
                            class_names=list(ds.classes))
    o = cfg.optim
    optimizer = engine.build_optimizer(model, o.name, o.lr, o.momentum, o.weight_decay)
    scheduler = engine.poly_schedule(optimizer, cfg.train.iters, o.poly_power)
    scaler = torch.amp.GradScaler(device.type, enabled=run_precision(cfg, device).grad_scaler)
    return TrainState(model, optimizer, scheduler, scaler, criterion, sampler)


def resume(state: TrainState, exp: Experiment, ckpt_path: Path) -> bool:
    """Load ``last.pt`` into ``state`` (and this rank's RNGs) if it exists; True if it did."""
    if not ckpt_path.is_file():
        return False
    saved = engine.load_checkpoint(ckpt_path)
    if saved.get("config_hash") != exp.config_hash:
        raise UserError(f"{ckpt_path} was written by a different config; remove it or use another --out")
    state.load_state_dict(saved)
    rngs = saved["rng"]
    engine.set_rng_states(rngs[exp.rank] if exp.rank < len(rngs) else rngs[0])
    log(f"{ckpt_path.parent}: resuming from step {state.step}")
    return True


class Checkpointer:
    """Called by the training loop at every checkpoint step: saves ``state`` with every rank's RNGs."""

    def __init__(self, state: TrainState, exp: Experiment, path: Path, resumed: bool):
        self.state, self.exp, self.path = state, exp, path
        self.session_start = time.perf_counter()
        self.time_before = state.train_time_s  # training time of earlier sessions
        self.saved_step = state.step if resumed else None

    def session_time(self) -> float:
        return time.perf_counter() - self.session_start

    def __call__(self, step: int) -> None:
        exp, state = self.exp, self.state
        rngs = [engine.rng_states()]
        if exp.world_size > 1:
            rngs = [None] * exp.world_size
            dist.all_gather_object(rngs, engine.rng_states())
        state.step, state.train_time_s = step, self.time_before + self.session_time()
        if exp.rank == 0:
            engine.save_checkpoint(self.path, {**state.state_dict(), "rng": rngs, "config_hash": exp.config_hash})
            write_status(self.path.parent, "running", step=step, total=exp.cfg.train.iters)
        self.saved_step = step


def train_steps(state: TrainState, exp: Experiment, seed: int, run_dir: Path, resumed: bool) -> None:
    """Train ``state`` up to ``train.iters`` steps, checkpointing as configured."""
    cfg, device = exp.cfg, exp.device
    if state.step >= cfg.train.iters:
        return
    net = state.model
    if exp.world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            state.model, device_ids=[device.index] if device.type == "cuda" else None)
    loader = DataLoader(exp.train_set, batch_sampler=state.sampler, num_workers=cfg.data.num_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed))
    checkpoint = Checkpointer(state, exp, run_dir / CHECKPOINT, resumed)
    try:
        state.step = engine.train(
            net, state.criterion, loader, state.sampler, state.optimizer, state.scheduler, state.scaler,
            device=device, start_step=state.step, total_steps=cfg.train.iters, history=state.history,
            checkpoint=checkpoint, checkpoint_every=cfg.train.checkpoint_every,
            autocast=run_precision(cfg, device).dtype,
            channels_last=use_channels_last(cfg, device), images_per_step=cfg.train.batch_size,
            progress=exp.progress)
    except engine.NonFiniteLoss as exc:
        saved = checkpoint.saved_step
        kept = f"{checkpoint.path} (step {saved})" if saved is not None else "none written yet"
        raise engine.NonFiniteLoss(f"{run_dir}: {exc}; last good checkpoint kept: {kept}") from None
    state.train_time_s = checkpoint.time_before + checkpoint.session_time()


def _train_and_evaluate(exp: Experiment, loss, seed: int, run_dir: Path) -> str:
    """The named steps of one run: config, state, resume, train, evaluate, write."""
    cfg = exp.cfg
    if cfg.train.batch_size % exp.world_size:
        raise UserError(f"train.batch_size {cfg.train.batch_size} is not divisible by {exp.world_size} processes")
    if exp.rank == 0:
        write_atomic(run_dir / "config.yaml", dump_config(_run_config(exp, loss, seed)))
    state = build_train_state(exp, loss, seed)
    resumed = resume(state, exp, run_dir / CHECKPOINT)
    log(f"{run_dir}: training {loss.label} seed {seed} on {exp.device} ({state.step}/{cfg.train.iters} steps done)")
    if exp.rank == 0:
        write_status(run_dir, "running", step=state.step, total=cfg.train.iters,
                     precision=run_precision(cfg, exp.device).describe())
    train_steps(state, exp, seed, run_dir, resumed)
    evaluate_and_write(state, exp, loss, seed, run_dir)
    return "trained"


def evaluate_and_write(state: TrainState, exp: Experiment, loss, seed: int, run_dir: Path) -> None:
    """Evaluate the trained model on the val split; rank 0 writes history, samples and metrics.json."""
    cfg, model = exp.cfg, state.model
    if exp.world_size > 1:  # DDP syncs buffers at the start of a forward: after the last step
        for buffer in model.buffers():  # each rank's BatchNorm statistics are its own; use rank 0's,
            dist.broadcast(buffer, src=0)  # the ones in the checkpoint
    channels_last = use_channels_last(cfg, exp.device, training=False)
    if not channels_last:
        model.to(memory_format=torch.contiguous_format)
    eval_start = time.perf_counter()
    cm, per_image = _evaluate(exp, model, autocast=run_precision(cfg, exp.device).dtype,
                              channels_last=channels_last)
    eval_time = time.perf_counter() - eval_start
    if exp.rank == 0:
        samples = engine.predict_samples(model, exp.val_set, cfg.eval.samples, device=exp.device)
        train_time, trained = state.train_time_s, len(state.history) * cfg.train.batch_size
        _write_results(exp, loss, seed, run_dir, state.sampler, state.history, cm, per_image, samples,
                       timing={"wall_time_s": train_time + eval_time,
                               "train_images_per_s": trained / train_time if train_time else None,
                               "eval_images_per_s": len(exp.val_set) / eval_time})
        write_status(run_dir, "done", step=len(state.history), total=cfg.train.iters)
        log(f"{run_dir}: done")
    if exp.world_size > 1:
        _check_sampler_consistency(state.sampler, run_dir, exp)


def _evaluate(exp: Experiment, model, *, autocast: torch.dtype | None, channels_last: bool):
    """Confusion matrix over the val split (sharded over ranks, then all-reduced) and per-image stats."""
    # a contiguous shard per rank: all_reduce gathers the per-image statistics in rank order
    indices = np.array_split(np.arange(len(exp.val_set)), exp.world_size)[exp.rank].tolist()
    loader = DataLoader(Subset(exp.val_set, indices), batch_size=exp.cfg.eval.batch_size,
                        num_workers=exp.cfg.data.num_workers, pin_memory=exp.device.type == "cuda")
    from fairseg_bench.core.boundary import BoundaryIoU

    boundary = BoundaryIoU(exp.val_set.num_classes, exp.val_set.ignore_index, per_image=True)
    cm = engine.evaluate(model, loader, exp.val_set.num_classes, ignore_index=exp.val_set.ignore_index,
                         device=exp.device, autocast=autocast, channels_last=channels_last, progress=exp.progress,
                         boundary=boundary)
    cm.all_reduce()  # a no-op in a single process
    per_image = cm.per_image_stats()
    counts = boundary.per_image_counts()
    if exp.world_size > 1:  # every rank's images, in rank order, as the confusion matrix gathers them
        gathered: list = [None] * exp.world_size
        dist.all_gather_object(gathered, counts)
        counts = {k: np.concatenate([c[k] for c in gathered]) for k in counts}
    # the Boundary IoU counts travel with the per-image statistics; metrics_record files them apart
    per_image.update({f"boundary_{k}": v for k, v in counts.items()})
    return cm.compute().cpu().numpy(), per_image


def _sampler_digest(sampler) -> str:
    """A hash of the sampler's state (its pending queue is empty at the end of training)."""
    state = {k: v.tolist() if torch.is_tensor(v) else v for k, v in sampler.state_dict().items()}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def _check_sampler_consistency(sampler, run_dir: Path, exp: Experiment) -> None:
    """Gather every rank's sampler-state digest; rank 0 records them next to the metrics."""
    digests = [None] * exp.world_size
    dist.all_gather_object(digests, _sampler_digest(sampler))
    if exp.rank == 0:
        write_json_atomic(run_dir / "ranks.json", {"world_size": exp.world_size, "sampler_state_sha256": digests})
        if len(set(digests)) != 1:
            raise RuntimeError(f"{run_dir}: the ranks' sampler states differ at the end of training")


# ----------------------------------------------------------------------------- results


def metrics_record(exp: Experiment, loss, seed: int, cm: np.ndarray, per_image: dict, sampler,
                   steps: int, timing: dict) -> dict:
    """The ``metrics.json`` content (schema in ``fairseg_bench.results``)."""
    from fairseg_bench.core.fairness import fairness_metrics
    from fairseg_bench.core.iou import class_accuracy, mean_iou, per_class_iou, pixel_accuracy
    from fairseg_bench.results import boundary_record

    ds = exp.val_set
    iou = per_class_iou(cm)
    per_image = dict(per_image)
    boundary = boundary_record(per_image.pop("boundary_intersection", None), per_image.pop("boundary_union", None))
    sampler_info = None
    if loss.sampler is not None and sampler is not None:
        sampler_info = {"name": loss.sampler, "draw_histogram": sampler.draw_histogram,
                        "final_weights": sampler.weights}
    return {
        "schema_version": SCHEMA_VERSION, "experiment": exp.cfg.name, "method": loss.label,
        "loss_spec": loss.text, "seed": seed, "config_hash": exp.config_hash,
        "config": _run_config(exp, loss, seed).resolved_dict(), "dataset": ds.name, "split": exp.cfg.data.eval_split,
        "steps": steps, "classes": list(ds.classes), "ignore_index": ds.ignore_index,
        "palette": np.asarray(ds.palette).tolist(), "confusion_matrix": cm, "per_image": per_image,
        "iou": iou, "miou": mean_iou(cm), "pixel_accuracy": pixel_accuracy(cm),
        "class_accuracy": class_accuracy(cm), "fairness": fairness_metrics(iou), **boundary,
        "sampler": sampler_info, "timing": timing, "environment": environment(exp.device),
        "precision": resolve_precision(exp.cfg.train.amp, exp.device).record(),
        **image_keys(ds),
    }


def image_keys(dataset) -> dict:
    """``image_names`` (N stems, the order of ``per_image``) and ``image_attributes`` (e.g. CamVid's
    ``{"sequence": [...]}``, Cityscapes' ``{"city": [...]}``) of a file dataset; {} for generated data."""
    if not hasattr(dataset, "image_names"):
        return {}
    return {"image_names": dataset.image_names(), "image_attributes": dataset.image_attributes()}


def history_frame(history: list[dict], classes: list[str]):
    """``step, lr, loss, grad_norm, images_per_s`` (+ ``drawn_class, w_<class>`` for samplers)."""
    import pandas as pd

    rows = []
    for row in history:
        row = dict(row)
        weights = row.pop("weights", None)
        if weights is not None:
            row.update({f"w_{name}": float(w) for name, w in zip(classes, weights)})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["step", "lr", "loss", "grad_norm", "images_per_s"])
    if "drawn_class" in frame:
        frame["drawn_class"] = frame["drawn_class"].astype("Int64")
    return frame


def _write_results(exp, loss, seed, run_dir, sampler, history, cm, per_image, samples, timing) -> None:
    classes = list(exp.val_set.classes)
    write_atomic(run_dir / "history.csv", history_frame(history, classes).to_csv(index=False))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **samples)
    write_atomic(run_dir / "samples.npz", buffer.getvalue())
    # metrics.json last: its presence marks the run finished
    write_json_atomic(run_dir / METRICS_FILE,
                      metrics_record(exp, loss, seed, cm, per_image, sampler, len(history), timing))


# ----------------------------------------------------------------------------- entry points
def train_here(exp: Experiment, losses) -> list[str]:
    """Every run one after the other in this process; the names of those stopped by a NaN/Inf loss."""
    failures = []
    for loss in losses:
        for seed in exp.cfg.seeds:
            try:
                train_run(exp, loss, seed)
            except engine.NonFiniteLoss as exc:  # the other runs go on
                log(f"error: {exc}")
                failures.append(run_folder(exp, loss, seed).name)
    return failures


def summarize_runs(exp: Experiment, folders: list[Path], report: bool) -> None:
    """The tables of the finished runs (and the report)."""
    finished = [f for f in folders if is_finished(f, exp.config_hash)]
    if finished:  # the default reference is the reader's rule (Results.resolve), the one `report` uses
        print_tables(finished)
        if report:
            write_report(exp.folder)


def train_single(cfg: ExperimentConfig, loss: str, seed: int) -> Path:
    """One loss and seed; under torchrun (WORLD_SIZE > 1) with DistributedDataParallel."""
    cfg = replace(cfg, losses=(loss,), seeds=(seed,))
    losses = parse_losses(cfg)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(cfg.device)
    rank = 0
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
    try:
        exp = prepare(cfg, rank=rank, world_size=world_size, device=device)
        train_run(exp, losses[0], seed)
        return run_folder(exp, losses[0], seed)
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def evaluate_checkpoint(checkpoint: str | os.PathLike, *, split: str = "val", out: str | None = None,
                        data_root: str | None = None, device: str = "auto", quiet: bool = False,
                        save_predictions: str | os.PathLike | None = None) -> Path:
    """Evaluate a saved model on ``split``; writes ``metrics.json`` (to ``out`` or beside the checkpoint).

    Without ``out`` the file is ``metrics-<split>.json`` next to the checkpoint, so a finished
    run's own ``metrics.json`` is never replaced. ``save_predictions``: a folder for one prediction
    PNG per image (``<image name>.png``, class ids; file datasets only), which ``evaluate
    --predictions`` reads back to the same confusion matrix.
    """
    from fairseg_bench.data import build_dataset, dataset_info
    from fairseg_bench.models import build_model

    checkpoint = Path(checkpoint)
    config_file = checkpoint.parent / "config.yaml"
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: no such checkpoint")
    if not config_file.is_file():
        raise UserError(f"{config_file}: not found; evaluate needs the config.yaml written beside the checkpoint")
    run_cfg = load_config(config_file)
    cfg = run_cfg.override(data_root=data_root, device=device, quiet=quiet)
    state = engine.load_checkpoint(checkpoint)
    dev = resolve_device(cfg.device)
    options = dict(cfg.data.val_options)  # evaluation transforms on any split
    if split == "train" and dataset_info(cfg.data.dataset).needs_root:
        options.setdefault("augment", False)  # the file datasets augment their train split by default
    dataset = build_dataset(cfg.data.dataset, root=cfg.data.root, split=split, **options)
    model = build_model(cfg.model.name, num_classes=dataset.num_classes).to(dev)
    model.load_state_dict(state["model"])
    exp = Experiment(cfg, dev, None, dataset, None, checkpoint.parent.parent, config_hash(run_cfg))
    loss = parse_losses(cfg)[0]
    start = time.perf_counter()
    # the run's precision rule on this device: on the machine it trained on (or one of its kind), its
    # confusion matrix is reproduced bit for bit
    cm, per_image = _evaluate(exp, model, autocast=run_precision(cfg, dev).dtype, channels_last=False)
    elapsed = time.perf_counter() - start
    record = metrics_record(exp, loss, cfg.seeds[0], cm, per_image, None, int(state["step"]),
                            {"wall_time_s": elapsed, "train_images_per_s": None,
                             "eval_images_per_s": len(dataset) / elapsed})
    record["split"], record["sampler"] = split, None
    if save_predictions is not None:
        _save_predictions(exp, model, Path(save_predictions), run_precision(cfg, dev).dtype)
    target = Path(out) / METRICS_FILE if out else checkpoint.parent / f"metrics-{split}.json"
    write_json_atomic(target, record)
    log(f"wrote {target}")
    print_tables([target])
    return target


def _save_predictions(exp: Experiment, model, folder: Path, autocast) -> None:
    """One prediction PNG per image of ``exp.val_set`` (named by its image file) in ``folder``."""
    dataset = exp.val_set
    if not hasattr(dataset, "image_names"):
        raise UserError(f"--save-predictions needs a dataset of image files; {dataset.name} images have no names")
    if getattr(dataset, "frame_size", None) and not dataset.full_size_labels:
        raise UserError(f"--save-predictions: this run evaluates on labels downscaled to frame_size "
                        f"{list(dataset.frame_size)}, not the label files; add full_size_labels: true to "
                        f"its val_options")
    loader = DataLoader(dataset, batch_size=exp.cfg.eval.batch_size, num_workers=exp.cfg.data.num_workers)
    count = engine.save_predictions(model, loader, folder, dataset.image_names(), dataset.palette,
                                    device=exp.device, autocast=autocast, progress=exp.progress)
    log(f"wrote {count} prediction PNGs to {folder}")


# ----------------------------------------------------------------------------- summary
def print_tables(paths: list[Path], reference: str | None = None) -> None:
    """Print Table 1 and Table 3 of ``paths`` through the report layer (its warnings on stderr)."""
    from fairseg_bench.report import print_tables as report_print_tables

    report_print_tables(paths, reference)


def write_report(folder: Path, reference: str | None = None) -> None:
    """Write ``<folder>/report`` (tables, figures, HTML); a failure only warns."""
    try:
        from fairseg_bench.report import build_report

        build_report([folder], reference=reference, out=folder / "report")
        log(f"report: {folder / 'report'}")
    except Exception as exc:  # the results are on disk; a report problem must not lose them
        log(f"warning: the report could not be written ({type(exc).__name__}: {exc})")
