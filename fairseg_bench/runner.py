"""The runner: the runs of an experiment, every loss × seed, each in its own resumable run folder.

``<out>/<experiment>/<label>-s<seed>/`` holds ``config.yaml`` (the run's resolved config),
``last.pt`` (written every ``train.checkpoint_every`` steps; :mod:`fairseg_bench.checkpoint`),
``history.csv``, ``samples.npz`` and, last, ``metrics.json``: a finished run
(:func:`fairseg_bench.run_status.is_finished`) is skipped; one with only ``last.pt`` resumes from
it. On CPU with ``data.num_workers: 0`` a resumed run ends bit-identical to an uninterrupted one:
the checkpoint holds the model, optimizer, scheduler, sampler (with its prefetched batches), loss
state and every RNG, and the DataLoader draws its base seed from its own generator so creating
a new iterator does not move the global RNG. With workers, the workers' RNG streams restart.

A run is trained by the process that holds its lock (:func:`fairseg_bench.run_status.run_lock`),
so several processes can share an output folder: the second skips runs the first holds.
``run --jobs N`` and ``--launcher local|slurm`` start those processes (:mod:`fairseg_bench.launch`,
above this module); each run keeps a status record that the launchers and ``fairseg-bench
status`` read. The callers print the tables and write the report.

One run is a list of named steps (:func:`_run_steps`) around a
:class:`~fairseg_bench.engine.TrainState`, whose ``state_dict()`` is the checkpoint;
:func:`evaluate_checkpoint` evaluates a run's checkpoint again, on any split.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Subset

from fairseg_bench import engine
from fairseg_bench.checkpoint import CHECKPOINT, Checkpointer, load_checkpoint, resume
from fairseg_bench.config import ExperimentConfig, LauncherConfig, config_hash, dump_config, load_config
from fairseg_bench.errors import UserError
from fairseg_bench.precision import Precision, emulation_warning, resolve_precision
from fairseg_bench.results import METRICS_FILE, write_atomic, write_json_atomic
from fairseg_bench.results.environment import environment
from fairseg_bench.run_status import is_finished, run_lock, write_status


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
    """Check the output folder, build the datasets, draw a generated one once (cached for the
    experiment's other processes) and build the (cached) class index."""
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
        _draw_generated(train_set, val_set, cache)
        class_index = build_class_index(train_set, cache_dir=cache)
    if world_size > 1:
        dist.barrier()  # rank 0 has written the caches; the others read them
    if rank != 0:
        _draw_generated(train_set, val_set, cache)
        class_index = build_class_index(train_set, cache_dir=cache)
    return Experiment(cfg, device, train_set, val_set, class_index, folder, digest, rank, world_size)


def _draw_generated(train_set, val_set, cache: Path) -> None:
    """Every image of a generated data set drawn now, in parallel, and shared through ``cache``.

    A sweep's run processes then read one drawing instead of each drawing every image (``make
    run``: 1,200 scenes, ~4 s of CPU, in each of three processes). File data sets are left as they are.
    """
    from fairseg_bench.cpu_process import cpu_cores

    for dataset in (train_set, val_set):
        if getattr(dataset, "generated", False):
            dataset.draw_all(cache_dir=cache, workers=cpu_cores())


# ----------------------------------------------------------------------------- one run
def run_folder(exp: Experiment, loss, seed: int) -> Path:
    return exp.folder / f"{loss.label}-s{seed}"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def run_one(exp: Experiment, loss, seed: int) -> str:
    """Train and evaluate one (loss, seed), resuming from ``last.pt``, unless it is finished or another
    process holds it; returns what happened: ``trained``, ``skipped`` or ``locked``."""
    run_dir = run_folder(exp, loss, seed)
    if _finished_on_rank0(exp, run_dir):
        log(f"{run_dir}: finished, skipped")
        return "skipped"
    with _lock(exp, run_dir) as held:
        if not held:
            log(f"{run_dir}: locked by another process, skipped")
            return "locked"
        if _finished_on_rank0(exp, run_dir):  # finished by another process since the check above
            log(f"{run_dir}: finished, skipped")
            return "skipped"
        try:
            return _run_steps(exp, loss, seed, run_dir)
        except Exception as exc:  # (an interrupt or a requeue signal is no failure: the run resumes)
            if exp.rank == 0:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                write_status(run_dir, "failed", error=reason)
            raise


def _finished_on_rank0(exp: Experiment, run_dir: Path) -> bool:
    """Rank 0's :func:`~fairseg_bench.run_status.is_finished` (it creates the folder), shared with every rank."""
    finished = [None]
    if exp.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        finished = [is_finished(run_dir, exp.config_hash)]
    if exp.world_size > 1:
        dist.broadcast_object_list(finished, src=0)
    return bool(finished[0])


def _lock(exp: Experiment, run_dir: Path):
    """The run's lock (:func:`~fairseg_bench.run_status.run_lock`); torchrun's ranks share their one run, unlocked."""
    return run_lock(run_dir) if exp.world_size == 1 else nullcontext(True)


def _run_config(exp: Experiment, loss, seed: int) -> ExperimentConfig:
    """The experiment's config narrowed to this run (reloadable with ``-c``); where it ran is left out."""
    return replace(exp.cfg, losses=(loss.text,), seeds=(seed,), launcher=LauncherConfig())


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


def build_train_state(exp: Experiment, loss, seed: int) -> engine.TrainState:
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
    return engine.TrainState(model, optimizer, scheduler, scaler, criterion, sampler)


def train_with_checkpoints(state: engine.TrainState, exp: Experiment, seed: int, run_dir: Path,
                           resumed: bool) -> None:
    """Train ``state`` up to ``train.iters`` steps, checkpointing (and updating the status record) as configured."""
    cfg, device = exp.cfg, exp.device
    if state.step >= cfg.train.iters:
        return
    loader = DataLoader(exp.train_set, batch_sampler=state.sampler, num_workers=cfg.data.num_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed))
    checkpointer = Checkpointer(state, run_dir / CHECKPOINT, exp.config_hash, resumed=resumed, rank=exp.rank,
                                world_size=exp.world_size)

    def checkpoint(step: int) -> None:
        checkpointer(step)
        if exp.rank == 0:
            write_status(run_dir, "running", step=step, total=cfg.train.iters)

    logger = engine.TrainLogger(images_per_step=cfg.train.batch_size, progress=exp.progress)
    try:
        engine.train(state, loader, logger, device=device, autocast=run_precision(cfg, device).dtype,
                     channels_last=use_channels_last(cfg, device), checkpoint=checkpoint,
                     checkpoint_every=cfg.train.checkpoint_every)
    except engine.NonFiniteLoss as exc:
        saved = checkpointer.saved_step
        kept = f"{checkpointer.path} (step {saved})" if saved is not None else "none written yet"
        raise engine.NonFiniteLoss(f"{run_dir}: {exc}; last good checkpoint kept: {kept}") from None
    state.train_time_s = checkpointer.training_time()


def _run_steps(exp: Experiment, loss, seed: int, run_dir: Path) -> str:
    """The named steps of one run: config, state, resume, train, evaluate, write."""
    cfg = exp.cfg
    if cfg.train.batch_size % exp.world_size:
        raise UserError(f"train.batch_size {cfg.train.batch_size} is not divisible by {exp.world_size} processes")
    if exp.rank == 0:
        write_atomic(run_dir / "config.yaml", dump_config(_run_config(exp, loss, seed)))
    state = build_train_state(exp, loss, seed)
    resumed = resume(state, run_dir / CHECKPOINT, exp.config_hash, exp.rank)
    if resumed:
        log(f"{run_dir}: resuming from step {state.step}")
    log(f"{run_dir}: training {loss.label} seed {seed} on {exp.device} ({state.step}/{cfg.train.iters} steps done)")
    if exp.rank == 0:
        write_status(run_dir, "running", step=state.step, total=cfg.train.iters,
                     precision=run_precision(cfg, exp.device).describe())
    train_with_checkpoints(state, exp, seed, run_dir, resumed)
    _evaluate_and_record(state, exp, loss, seed, run_dir)
    return "trained"


def _evaluate_and_record(state: engine.TrainState, exp: Experiment, loss, seed: int, run_dir: Path) -> None:
    """Evaluate the trained model on the val split; rank 0 writes history, samples and metrics.json."""
    cfg, model = exp.cfg, state.model
    if exp.world_size > 1:  # DDP syncs buffers at the start of a forward: after the last step
        for buffer in model.buffers():  # each rank's BatchNorm statistics are its own; use rank 0's,
            dist.broadcast(buffer, src=0)  # the ones in the checkpoint
    channels_last = use_channels_last(cfg, exp.device, training=False)
    if not channels_last:
        model.to(memory_format=torch.contiguous_format)
    eval_start = time.perf_counter()
    cm, per_image = _val_confusion(exp, model, autocast=run_precision(cfg, exp.device).dtype,
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


def _val_confusion(exp: Experiment, model, *, autocast: torch.dtype | None, channels_last: bool):
    """The confusion matrix (K, K) of ``model`` over ``exp.val_set`` (sharded over ranks, then
    all-reduced) and the per-image statistics (each N_images x K, the Boundary IoU counts among them)."""
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
                   steps: int, timing: dict, split: str | None = None) -> dict:
    """The ``metrics.json`` content of a run, or of a checkpoint evaluated on ``split`` (default: the
    config's eval split), by the one builder (:func:`fairseg_bench.results.record.build_record`)."""
    from fairseg_bench.results.record import Counts, build_record

    ds = exp.val_set
    per_image = dict(per_image)  # the Boundary IoU counts travel with the per-image statistics (_val_confusion)
    boundary = per_image.pop("boundary_intersection", None), per_image.pop("boundary_union", None)
    identity = {"experiment": exp.cfg.name, "method": loss.label, "loss_spec": loss.text, "seed": seed,
                "config_hash": exp.config_hash, "config": _run_config(exp, loss, seed).resolved_dict(),
                "dataset": ds.name, "split": split or exp.cfg.data.eval_split, "steps": steps,
                "classes": list(ds.classes), "ignore_index": ds.ignore_index, "palette": ds.palette}
    counts = Counts(cm, per_image, boundary=None if boundary[0] is None else boundary, **image_keys(ds))
    sampler_info = None
    if loss.sampler is not None and sampler is not None:
        sampler_info = {"name": loss.sampler, "draw_histogram": sampler.draw_histogram,
                        "final_weights": sampler.weights}
    return build_record(identity, counts, sampler=sampler_info, timing=timing, environment=environment(exp.device),
                        extra={"precision": resolve_precision(exp.cfg.train.amp, exp.device).record()})


def image_keys(dataset) -> dict:
    """``image_names`` (N stems, the order of ``per_image``) and ``image_attributes`` (e.g. CamVid's
    ``{"sequence": [...]}``, Cityscapes' ``{"city": [...]}``) of a file dataset; {} for generated data."""
    if not hasattr(dataset, "image_names"):
        return {}
    return {"image_names": dataset.image_names(), "image_attributes": dataset.image_attributes()}


def _write_results(exp, loss, seed, run_dir, sampler, history, cm, per_image, samples, timing) -> None:
    from fairseg_bench.results.run_files import write_history, write_samples

    write_history(run_dir, history, list(exp.val_set.classes))
    write_samples(run_dir, samples)
    # metrics.json last: its presence marks the run finished
    write_json_atomic(run_dir / METRICS_FILE,
                      metrics_record(exp, loss, seed, cm, per_image, sampler, len(history), timing))


# ----------------------------------------------------------------------------- entry points
def run_sequentially(exp: Experiment, losses) -> list[str]:
    """Every run one after the other in this process; the names of those stopped by a NaN/Inf loss."""
    failures = []
    for loss in losses:
        for seed in exp.cfg.seeds:
            try:
                run_one(exp, loss, seed)
            except engine.NonFiniteLoss as exc:  # the other runs go on
                log(f"error: {exc}")
                failures.append(run_folder(exp, loss, seed).name)
    return failures


def run_task(cfg: ExperimentConfig, loss: str, seed: int) -> Path:
    """One loss and seed as this process's task (``fairseg-bench train``, a launcher's process or array
    task); under torchrun (WORLD_SIZE > 1) with DistributedDataParallel. Returns the run folder."""
    cfg = replace(cfg, losses=(loss,), seeds=(seed,))
    losses = parse_losses(cfg)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(cfg.device)
    if device.type == "cpu":  # a process of its own, CPU-bound: a batch job (fairseg_bench.cpu_process)
        from fairseg_bench.cpu_process import tune_training_process

        tune_training_process()
    rank = 0
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
    try:
        exp = prepare(cfg, rank=rank, world_size=world_size, device=device)
        run_one(exp, losses[0], seed)
        if world_size > 1:
            # every rank past its last collective before the group is torn down: a rank that exits
            # while another's gloo work is in flight can abort at interpreter shutdown
            dist.barrier()
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
    checkpoint = Path(checkpoint)
    exp, model, state = _checkpoint_run(checkpoint, split, data_root=data_root, device=device, quiet=quiet)
    cfg, dev, dataset = exp.cfg, exp.device, exp.val_set
    loss = parse_losses(cfg)[0]
    start = time.perf_counter()
    # the run's precision rule on this device: on the machine it trained on (or one of its kind), its
    # confusion matrix is reproduced bit for bit
    cm, per_image = _val_confusion(exp, model, autocast=run_precision(cfg, dev).dtype, channels_last=False)
    elapsed = time.perf_counter() - start
    record = metrics_record(exp, loss, cfg.seeds[0], cm, per_image, None, int(state["step"]),
                            {"wall_time_s": elapsed, "train_images_per_s": None,
                             "eval_images_per_s": len(dataset) / elapsed}, split=split)
    if save_predictions is not None:
        _save_predictions(exp, model, Path(save_predictions), run_precision(cfg, dev).dtype)
    target = Path(out) / METRICS_FILE if out else checkpoint.parent / f"metrics-{split}.json"
    write_json_atomic(target, record)
    log(f"wrote {target}")
    return target


def _checkpoint_run(checkpoint: Path, split: str, **overrides) -> tuple[Experiment, torch.nn.Module, dict]:
    """The run of ``checkpoint`` (its config.yaml with ``overrides``) with ``split`` as its val set, its
    model with the checkpoint's weights, and the checkpoint."""
    from fairseg_bench.data import build_dataset, dataset_info
    from fairseg_bench.models import build_model

    config_file = checkpoint.parent / "config.yaml"
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: no such checkpoint")
    if not config_file.is_file():
        raise UserError(f"{config_file}: not found; evaluate needs the config.yaml written beside the checkpoint")
    run_cfg = load_config(config_file)
    cfg = run_cfg.override(**overrides)
    state = load_checkpoint(checkpoint)
    device = resolve_device(cfg.device)
    options = dict(cfg.data.val_options)  # evaluation transforms on any split
    if split == "train" and dataset_info(cfg.data.dataset).needs_root:
        options.setdefault("augment", False)  # the file datasets augment their train split by default
    dataset = build_dataset(cfg.data.dataset, root=cfg.data.root, split=split, **options)
    model = build_model(cfg.model.name, num_classes=dataset.num_classes).to(device)
    model.load_state_dict(state["model"])
    exp = Experiment(cfg, device, None, dataset, None, checkpoint.parent.parent, config_hash(run_cfg))
    return exp, model, state


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

