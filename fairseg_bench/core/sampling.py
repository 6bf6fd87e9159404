"""Batch samplers: uniform, Stochastic TCE (Algorithm 1 of the TCE paper) and Rare Class Sampling.

All three are *batch samplers*: ``DataLoader(dataset, batch_sampler=sampler)``. Each
``__iter__`` yields lists of dataset indices until ``num_batches`` batches have been consumed in
total (counting across ``load_state_dict``), and the training loop calls ``update(batch_loss)``
once per step, in step order.

Stochastic TCE (Algorithm 1): each step draws a class ``c ~ Categorical(w)``, a minibatch
uniformly from ``D_c`` (the images holding class c), and after the step updates
``L~_c <- (1-γ) L~_c + γ exp(t L_B)`` and ``w_c = L~_c / Σ_l L~_l``. What the paper leaves open
is resolved here as follows:

* **Log space.** The sampler keeps ``log L~_c`` and updates it with
  :func:`fairseg_bench.core.tilt.log_ema_update` (a ``logaddexp``), so ``t L_B`` of 1e3 or
  ``t < 0`` never overflows; ``w = softmax(log L~)`` over the eligible classes.
* **Initialisation.** The paper's ``L~_c = 0`` is undefined (0/0, and in log space the first
  drawn class would keep all the mass forever); starting from 1 lets the first drawn class take
  over at large ``t L``; a round-robin warm-up biases the draw by visit order. Here the first
  update sets *every* eligible class's ``log L~`` to the same shared estimate ``t L_B`` of that
  first batch (then applies the EMA, which leaves the drawn class unchanged). The weights are
  uniform until then and afterwards each class departs from the common level only through its
  own losses. Note that ``L~_c`` moves only when c is drawn, so stale estimates of rarely
  drawn classes pull the draw toward where they were last seen; ``gamma`` and the floor set how
  fast and how far the draw can move.
* **EMA rate.** ``gamma`` defaults to 0.2, the value in TERM's reference code; the alternative compared was
  0.05. On the quick benchmark the two cannot be told apart at 2 seeds (the seed spread is far
  larger; docs/datasets.md), so TERM's value stays the default.
* **Floor.** Optional ``floor`` ε: ``w <- (1-ε) w + ε/K_e`` over the ``K_e`` eligible classes, so
  no class's draw probability falls below ``ε/K_e``.
* **Empty D_c.** A class with fewer than ``min_pixels`` pixels in every image cannot be drawn
  from; it is left out of the draw (weight 0) with one warning naming all such classes.
* **Batch within D_c.** ``batch_size`` distinct images drawn uniformly from ``D_c`` when
  ``|D_c| >= batch_size``; otherwise all of ``D_c`` in random order, filled up with uniform draws
  with replacement.
* **Where the sampler lives, and the prefetch lag.** A batch sampler runs in the main process
  (the DataLoader sends index lists to its workers), so the adaptive weights never need to reach
  worker copies. But the DataLoader draws ``prefetch_factor × num_workers`` batches ahead of
  training, so the class of step s+1 is drawn with weights that lack the last few updates: the
  weights lag by the prefetch depth. Keep it small (e.g. ``prefetch_factor=2``); with 80k steps a
  lag of a few steps is immaterial. The lag never attributes a loss to the wrong class: batches
  yielded but not yet ``update``-d wait in a queue, and ``update`` applies to the oldest.
* **Exact resume.** ``state_dict`` holds the step counters, the class RNG state, ``log L~``,
  the draw histogram, the trajectory records and the pending (prefetched, not yet updated)
  batches, which ``__iter__`` re-yields first after ``load_state_dict``. It holds only tensors
  and Python scalars/lists, so ``torch.load(weights_only=True)`` reads it.
* **Distributed.** Every rank draws the same class (the class RNG is seeded by ``seed`` only)
  and its own images: the images of batch ``i`` come from a generator seeded by
  ``(seed, rank, i)``. Seeding per batch, rather than keeping one image RNG per rank, makes the
  state identical on every rank, so a checkpoint written by rank 0 resumes every rank exactly
  (pending batches are re-drawn for the loading rank from their batch number and class).
  ``update`` all-reduces (mean) the loss when ``torch.distributed`` is initialised with more
  than one process, so ``log L~`` and the class RNG stay identical on all ranks.
* **Class estimate** (``estimate="class"``, beyond the paper). Line 7 with ``L_B`` lets the
  classes present in every image dominate every update, so the weights stay near uniform. With
  ``estimate="class"`` the drawn class's estimate is updated with ``exp(t L_{B,c})``, ``L_{B,c}``
  the mean CE over the batch's class-c pixels, read from the per-class CE sums and counts the
  loss module keeps of the same forward pass (``CrossEntropyLoss(class_stats=True)``); the
  gradient step is still the batch MCCE. A batch whose crop lost every class-c pixel falls back
  to ``L_B``. Under torch.distributed class c's sum and count are summed over ranks before the
  division, so every rank keeps the same state.
* **Trajectory.** ``.weights`` is the current draw distribution (the engine may log it every
  step); ``trajectory()`` rebuilds the whole ``(steps, K)`` history on demand from two numbers
  recorded per step (the drawn class and its new ``log L~``), so logging costs O(1) per step.

Rare Class Sampling (RCS, DAFormer): a static class draw ``P(c) ∝ exp((1 - f_c)/T)`` with
``f_c`` the pixel frequency of class c in the class index (DAFormer's ``T = 0.01``), then the
images uniformly from ``D_c`` as above.

The uniform sampler shuffles the images once per epoch (a permutation seeded by
``(seed, epoch)``); rank r takes ``perm[r::world_size]`` truncated to ``N // world_size`` images,
so ranks see disjoint images in each epoch, and the batches run on across epoch boundaries.
"""
from __future__ import annotations

import bisect
import math
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Sampler

from fairseg_bench.core.class_index import ClassIndex
from fairseg_bench.core.tilt import log_ema_update

DEFAULT_GAMMA = 0.2
"""EMA rate of Stochastic TCE (TERM's reference code; 0.05 was indistinguishable on the quick benchmark)."""
ESTIMATES = ("batch", "class")
"""What updates the drawn class's estimate in Stochastic TCE: the batch MCCE (Algorithm 1) or the class's own CE."""
DEFAULT_RCS_TEMPERATURE = 0.01
"""Rare Class Sampling temperature (DAFormer's default)."""
_STATE_VERSION = 1
_MASK64 = (1 << 64) - 1


def _mix64(*words: int) -> int:
    """Hash integers to one well-spread 64-bit seed (splitmix64 over the words)."""
    state = 0x9E3779B97F4A7C15
    for word in words:
        state = (state ^ (word & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state


@dataclass(frozen=True)
class _Batch:
    """One drawn batch: its number in the run, its class (-1 for none) and its image indices."""

    number: int
    class_id: int
    indices: tuple[int, ...]


def _require_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _BatchSampler(Sampler[list[int]]):
    """Step counter, pending-batch queue, resume and rank bookkeeping shared by every sampler."""

    def __init__(self, batch_size: int, *, num_batches: int, seed: int, rank: int, world_size: int):
        super().__init__()
        self.batch_size = _require_int("batch_size", batch_size, 1)
        self.num_batches = _require_int("num_batches", num_batches, 1)
        self.world_size = _require_int("world_size", world_size, 1)
        self.rank = _require_int("rank", rank, 0)
        if self.rank >= self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {rank!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.seed = int(seed)
        self._drawn = 0  # batches drawn so far (each yielded at least once)
        self._step = 0  # batches whose loss went through update()
        self._pending: deque[_Batch] = deque()
        self.last_class: int | None = None

    # -- what subclasses provide ---------------------------------------------------------------
    def _draw_class(self) -> int:
        return -1

    def _images(self, number: int, class_id: int) -> list[int]:
        raise NotImplementedError

    def _apply_update(self, batch: _Batch, batch_loss, class_stats) -> None:
        """Static samplers ignore the loss."""

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    # -- the batch-sampler protocol ------------------------------------------------------------
    @property
    def step(self) -> int:
        """Number of training steps done (``update`` calls)."""
        return self._step

    @property
    def current_class(self) -> int | None:
        """Class of the oldest yielded batch not yet updated (the one being trained on), or None."""
        if not self._pending or self._pending[0].class_id < 0:
            return None
        return self._pending[0].class_id

    @property
    def pending(self) -> list[list[int]]:
        """Batches yielded but not yet ``update``-d (DataLoader prefetch), oldest first."""
        return [list(batch.indices) for batch in self._pending]

    def __len__(self) -> int:
        """Batches a fresh ``__iter__`` yields: ``num_batches`` minus the steps already done."""
        return max(self.num_batches - self._step, 0)

    def __iter__(self) -> Iterator[list[int]]:
        # Batches drawn earlier but never trained on (prefetched by an iterator that is gone, or
        # restored by load_state_dict) come first, so no draw is lost or repeated.
        for batch in list(self._pending):
            yield list(batch.indices)
        while self._drawn < self.num_batches:
            class_id = self._draw_class()
            batch = _Batch(self._drawn, class_id, tuple(self._images(self._drawn, class_id)))
            self._drawn += 1
            self._pending.append(batch)
            yield list(batch.indices)

    def update(self, batch_loss: torch.Tensor | float | None = None,
               class_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """Close the oldest pending batch with its training loss (a no-op for static samplers).

        ``class_stats``: optional ``(sums, counts)``, the batch's per-class CE sums and pixel
        counts, shape ``(K,)`` each (what ``CrossEntropyLoss(class_stats=True)`` keeps); only
        Stochastic TCE with ``estimate="class"`` reads them.
        """
        if not self._pending:
            raise RuntimeError("update() called with no pending batch: call it once per batch drawn")
        batch = self._pending[0]
        self._apply_update(batch, batch_loss, class_stats)
        self._pending.popleft()
        self._step += 1
        self.last_class = batch.class_id if batch.class_id >= 0 else None

    # -- resume --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue the identical sequence (tensors and Python scalars only)."""
        return {
            "sampler": type(self).__name__,
            "version": _STATE_VERSION,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "step": self._step,
            "drawn": self._drawn,
            "last_class": self.last_class,
            "pending": [[b.number, b.class_id, list(b.indices)] for b in self._pending],
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`; pending batches are re-yielded first by ``__iter__``."""
        if state.get("sampler") != type(self).__name__:
            raise ValueError(f"state is for sampler {state.get('sampler')!r}, not {type(self).__name__}")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported sampler state version {state.get('version')!r}")
        # The images of a batch depend on seed and batch size: resuming with others is another run.
        for key in ("seed", "batch_size"):
            if state[key] != getattr(self, key):
                raise ValueError(f"state has {key}={state[key]!r}, this sampler has {getattr(self, key)!r}")
        self._step = int(state["step"])
        self._drawn = int(state["drawn"])
        self.last_class = state["last_class"]
        self._load_extra_state(state)
        # Re-draw each pending batch's images for *this* rank (the images depend only on seed,
        # rank, batch number and class), so a checkpoint from rank 0 resumes every rank exactly.
        self._pending = deque(
            _Batch(int(number), int(class_id), tuple(self._images(int(number), int(class_id))))
            for number, class_id, _ in state["pending"]
        )

    def _image_generator(self, number: int) -> torch.Generator:
        """The generator of batch ``number``'s images on this rank."""
        return torch.Generator().manual_seed(_mix64(self.seed, self.rank, number))


class UniformBatchSampler(_BatchSampler):
    """Uniform image batches: a fresh shuffle per epoch, disjoint images across ranks.

    Args:
        num_images: dataset size N.
        batch_size: images per batch (per rank).
        num_batches: total batches to yield over the whole run.
        seed: shuffling seed (shared by all ranks).
        rank, world_size: this process's place in distributed training.
    """

    def __init__(self, num_images: int, batch_size: int, *, num_batches: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        super().__init__(batch_size, num_batches=num_batches, seed=seed, rank=rank, world_size=world_size)
        self.num_images = _require_int("num_images", num_images, 1)
        if self.num_images < self.world_size:
            raise ValueError(f"num_images={num_images} is smaller than world_size={self.world_size}")
        self._per_rank = self.num_images // self.world_size
        self._epoch_cache: tuple[int, list[int]] | None = None

    weights = None
    draw_histogram = None

    def _extra_state(self) -> dict:
        return {"num_images": self.num_images}

    def _load_extra_state(self, state: dict) -> None:
        if int(state["num_images"]) != self.num_images:
            raise ValueError(f"state has num_images={state['num_images']}, sampler has {self.num_images}")

    def _epoch_images(self, epoch: int) -> list[int]:
        """This rank's share of epoch ``epoch``'s permutation (cached for the current epoch)."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            generator = torch.Generator().manual_seed(_mix64(self.seed, epoch))
            perm = torch.randperm(self.num_images, generator=generator)
            share = perm[self.rank::self.world_size][: self._per_rank]
            self._epoch_cache = (epoch, share.tolist())
        return self._epoch_cache[1]

    def _images(self, number: int, class_id: int) -> list[int]:
        start = number * self.batch_size
        images = []
        for position in range(start, start + self.batch_size):
            epoch, offset = divmod(position, self._per_rank)
            images.append(self._epoch_images(epoch)[offset])
        return images


class _ClassBatchSampler(_BatchSampler):
    """Draw a class from the current weights, then a batch uniformly from its ``D_c``."""

    def __init__(self, class_index: ClassIndex, batch_size: int, *, num_batches: int, min_pixels: int,
                 seed: int, rank: int, world_size: int, class_names: Sequence[str] | None = None):
        super().__init__(batch_size, num_batches=num_batches, seed=seed, rank=rank, world_size=world_size)
        if not isinstance(class_index, ClassIndex):
            raise ValueError(f"class_index must be a ClassIndex, got {type(class_index).__name__}")
        if class_index.num_images == 0 or class_index.num_classes == 0:
            raise ValueError(f"class_index is empty: {class_index.num_images} images, "
                             f"{class_index.num_classes} classes")
        self.min_pixels = _require_int("min_pixels", min_pixels, 1)
        self.num_classes = class_index.num_classes
        self._images_of = [torch.from_numpy(class_index.images_with(c, self.min_pixels))
                           for c in range(self.num_classes)]
        self.eligible = np.array([len(images) > 0 for images in self._images_of])
        if not self.eligible.any():
            raise ValueError(f"no class has min_pixels={self.min_pixels} pixels in any image")
        if not self.eligible.all():
            empty = np.flatnonzero(~self.eligible)
            named = [class_names[int(c)] if class_names else str(c) for c in empty]
            warnings.warn(f"classes present (>= {self.min_pixels} pixels) in no image are left out of "
                          f"the class draw: {', '.join(named)}", stacklevel=3)
        self._class_generator = torch.Generator().manual_seed(_mix64(self.seed))
        self._histogram = np.zeros(self.num_classes, dtype=np.int64)
        self._set_weights(self.eligible / self.eligible.sum())

    @property
    def weights(self) -> np.ndarray:
        """Current class-draw probabilities, shape ``(K,)`` (0 for classes left out)."""
        return self._weights.copy()

    @property
    def draw_histogram(self) -> np.ndarray:
        """How many batches were drawn for each class, shape ``(K,)`` int64 (prefetched included)."""
        return self._histogram.copy()

    def _draw_class(self) -> int:
        # Inverse CDF on one uniform from the shared class generator (a third of the cost of
        # torch.multinomial); a class of weight 0 has an empty interval and is never drawn.
        u = float(torch.rand((), generator=self._class_generator, dtype=torch.float64))
        cumulative = self._cumulative
        class_id = min(bisect.bisect_right(cumulative, u * cumulative[-1]), self._last_drawable)
        self._histogram[class_id] += 1
        return class_id

    def _set_weights(self, weights: np.ndarray) -> None:
        """Install new draw probabilities (shape ``(K,)``) and their cumulative sums."""
        self._weights = weights
        self._cumulative = np.cumsum(weights).tolist()
        self._last_drawable = int(np.flatnonzero(weights > 0)[-1])

    def _images(self, number: int, class_id: int) -> list[int]:
        candidates = self._images_of[class_id]
        generator = self._image_generator(number)
        count = len(candidates)
        if count >= self.batch_size:
            chosen = torch.randperm(count, generator=generator)[: self.batch_size]
        else:  # fewer images than the batch: all of them, then uniform repeats
            extra = torch.randint(count, (self.batch_size - count,), generator=generator)
            chosen = torch.cat([torch.randperm(count, generator=generator), extra])
        return candidates[chosen].tolist()

    def _extra_state(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "class_rng": self._class_generator.get_state(),
            "draw_histogram": torch.from_numpy(self._histogram.copy()),
        }

    def _load_extra_state(self, state: dict) -> None:
        if int(state["num_classes"]) != self.num_classes:
            raise ValueError(f"state has num_classes={state['num_classes']}, sampler has {self.num_classes}")
        self._class_generator.set_state(state["class_rng"])
        self._histogram = state["draw_histogram"].numpy().astype(np.int64).copy()


class ClassUniformSampler(_ClassBatchSampler):
    """Class-uniform image sampling: a class drawn uniformly, then a batch uniformly from its ``D_c``.

    Stochastic TCE at fixed uniform weights (its ``t -> 0`` limit): the ablation that says what the
    adaptive weights add. Classes present in no image (``D_c`` empty) are left out of the draw.

    Args:
        class_index: per-image class pixel counts.
        batch_size: images per batch (per rank).
        num_batches: total batches to yield over the whole run.
        min_pixels: an image belongs to ``D_c`` if it holds at least this many pixels of c.
        seed: class draws use ``seed`` (same on all ranks), images ``(seed, rank, batch)``.
        rank, world_size: this process's place in distributed training.
        class_names: optional names, used in the warning about classes left out.
    """

    def __init__(self, class_index: ClassIndex, batch_size: int, *, num_batches: int, min_pixels: int = 1,
                 seed: int = 0, rank: int = 0, world_size: int = 1, class_names: Sequence[str] | None = None):
        super().__init__(class_index, batch_size, num_batches=num_batches, min_pixels=min_pixels,
                         seed=seed, rank=rank, world_size=world_size, class_names=class_names)


class RareClassSampler(_ClassBatchSampler):
    """Rare Class Sampling (DAFormer): static ``P(c) ∝ exp((1 - f_c) / T)``, then images from ``D_c``.

    Args:
        class_index: per-image class pixel counts; ``f_c`` is its class pixel frequency.
        batch_size: images per batch (per rank).
        num_batches: total batches to yield over the whole run.
        temperature: T > 0; smaller T concentrates the draw on the rarest classes.
        min_pixels: an image belongs to ``D_c`` if it holds at least this many pixels of c.
        seed: class draws use ``seed`` (same on all ranks), images ``(seed, rank, batch)``.
        rank, world_size: this process's place in distributed training.
        class_names: optional names, used in the warning about classes left out.
    """

    def __init__(self, class_index: ClassIndex, batch_size: int, *, num_batches: int,
                 temperature: float = DEFAULT_RCS_TEMPERATURE, min_pixels: int = 1, seed: int = 0,
                 rank: int = 0, world_size: int = 1, class_names: Sequence[str] | None = None):
        temperature = float(temperature)
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        super().__init__(class_index, batch_size, num_batches=num_batches, min_pixels=min_pixels,
                         seed=seed, rank=rank, world_size=world_size, class_names=class_names)
        self.temperature = temperature
        self._set_weights(rcs_probabilities(class_index.class_frequencies(), temperature, self.eligible))


def rcs_probabilities(frequencies: np.ndarray, temperature: float, eligible: np.ndarray | None = None) -> np.ndarray:
    """``P(c) ∝ exp((1 - f_c)/T)`` over the eligible classes, computed stably. Shape ``(K,)``."""
    logits = (1.0 - np.asarray(frequencies, dtype=np.float64)) / temperature
    if eligible is not None:
        logits = np.where(eligible, logits, -np.inf)
    return _softmax(logits)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; ``-inf`` entries get exactly 0."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=-1, keepdims=True)


def tce_weights(log_tilted_losses: np.ndarray, eligible: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """Line 8 of Algorithm 1 in log space, with the optional floor.

    ``w_c = L~_c / Σ_l L~_l = softmax(log L~)_c`` over the eligible classes, then
    ``w <- (1 - ε) w + ε / K_e`` with ``K_e`` the number of eligible classes.

    Shape:
        log_tilted_losses ``(..., K)``, eligible ``(K,)`` bool -> ``(..., K)`` float64.
    """
    logits = np.where(eligible, np.asarray(log_tilted_losses, dtype=np.float64), -np.inf)
    weights = _softmax(logits)
    if floor > 0:
        weights = (1.0 - floor) * weights + np.where(eligible, floor / eligible.sum(), 0.0)
    return weights


class StochasticTCESampler(_ClassBatchSampler):
    """Stochastic TCE (Algorithm 1): draw the class in proportion to its tilted loss estimate.

    Args:
        class_index: per-image class pixel counts; gives ``D_c``.
        batch_size: images per batch (per rank).
        num_batches: total batches to yield over the whole run.
        t: the tilt (any finite value; 0 keeps the draw uniform over the eligible classes).
        gamma: EMA rate γ in (0, 1] (default 0.2, TERM's reference code).
        estimate: what updates the drawn class's estimate: ``"batch"`` (default, the paper's
            line 7: the batch MCCE ``L_B``) or ``"class"`` (the mean CE ``L_{B,c}`` over the
            batch's pixels of the drawn class c, which ``update`` then needs as ``class_stats``;
            when c has no valid pixel in the batch, e.g. cropped out, ``L_B`` stands in).
        floor: ε in [0, 1); every eligible class keeps at least ``ε / K_e`` of the draw.
        min_pixels: an image belongs to ``D_c`` if it holds at least this many pixels of c.
        seed: class draws use ``seed`` (same on all ranks), images ``(seed, rank, batch)``.
        rank, world_size: this process's place in distributed training.
        class_names: optional names, used in the warning about classes left out.

    Call ``update(batch_loss)`` after every training step with the batch's MCCE (a float or 0-d
    tensor), and with ``class_stats=(sums, counts)`` for ``estimate="class"``; under
    ``torch.distributed`` with more than one process the loss is averaged across ranks and the
    drawn class's CE sum and pixel count are summed across ranks (one all-reduce either way).
    """

    def __init__(self, class_index: ClassIndex, batch_size: int, *, num_batches: int, t: float = 1.0,
                 gamma: float = DEFAULT_GAMMA, floor: float = 0.0, min_pixels: int = 1, seed: int = 0,
                 rank: int = 0, world_size: int = 1, class_names: Sequence[str] | None = None,
                 estimate: str = "batch"):
        if estimate not in ESTIMATES:
            raise ValueError(f"estimate must be one of {ESTIMATES}, got {estimate!r}")
        t, gamma, floor = _as_float("t", t), _as_float("gamma", gamma), _as_float("floor", floor)
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t!r}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma!r}")
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor!r}")
        super().__init__(class_index, batch_size, num_batches=num_batches, min_pixels=min_pixels,
                         seed=seed, rank=rank, world_size=world_size, class_names=class_names)
        self.t, self.gamma, self.floor, self.estimate = t, gamma, floor, estimate
        # log L~_c: equal (hence uniform weights) until the first update sets the shared estimate.
        self._log_tilted = torch.zeros(self.num_classes, dtype=torch.float64)
        self._initialised = False
        self._trajectory_classes: list[int] = []
        self._trajectory_values: list[float] = []
        self._initial_value = 0.0
        self._refresh_weights()

    @property
    def log_tilted_losses(self) -> np.ndarray:
        """``log L~_c`` for every class, shape ``(K,)`` (-inf for classes left out)."""
        return np.where(self.eligible, self._log_tilted.numpy(), -np.inf)

    def _refresh_weights(self) -> None:
        self._set_weights(tce_weights(self._log_tilted.numpy(), self.eligible, self.floor))

    def _apply_update(self, batch: _Batch, batch_loss, class_stats) -> None:
        if batch_loss is None:
            raise ValueError("StochasticTCESampler.update needs the batch loss, got None")
        if self.estimate == "batch":
            loss = _all_reduce_mean(batch_loss)
        else:
            loss = _class_estimate(batch_loss, class_stats, batch.class_id)
        log_value = self.t * loss
        if not math.isfinite(log_value):
            raise ValueError(f"batch loss must be finite, got {loss!r} (t * loss = {log_value!r})")
        if not self._initialised:
            # The shared first estimate: every class starts from this batch's tilted loss.
            self._log_tilted.fill_(log_value)
            self._initial_value = log_value
            self._initialised = True
        c = batch.class_id
        self._log_tilted[c] = log_ema_update(self._log_tilted[c], torch.tensor(log_value, dtype=torch.float64),
                                             self.gamma)
        self._refresh_weights()
        self._trajectory_classes.append(c)
        self._trajectory_values.append(float(self._log_tilted[c]))

    def trajectory(self) -> np.ndarray:
        """The draw weights after each update so far, shape ``(steps, K)`` float64.

        Row s is ``.weights`` right after the (s+1)-th ``update``; rebuilt from the recorded
        (class, new ``log L~_c``) pairs, with the same function that computes ``.weights``.
        """
        steps = len(self._trajectory_classes)
        if steps == 0:
            return np.empty((0, self.num_classes))
        classes = np.asarray(self._trajectory_classes)
        values = np.asarray(self._trajectory_values, dtype=np.float64)
        rows = np.arange(steps)
        updated_at = np.full((steps, self.num_classes), -1)
        updated_at[rows, classes] = rows
        last_update = np.maximum.accumulate(updated_at, axis=0)  # last step <= s that moved class c
        log_tilted = np.where(last_update >= 0, values[np.maximum(last_update, 0)], self._initial_value)
        return tce_weights(log_tilted, self.eligible, self.floor)

    def _extra_state(self) -> dict:
        return {
            **super()._extra_state(),
            "t": self.t,
            "gamma": self.gamma,
            "floor": self.floor,
            "estimate": self.estimate,
            "log_tilted_losses": self._log_tilted.clone(),
            "initialised": self._initialised,
            "initial_value": self._initial_value,
            "trajectory_classes": torch.tensor(self._trajectory_classes, dtype=torch.int64),
            "trajectory_values": torch.tensor(self._trajectory_values, dtype=torch.float64),
        }

    def _load_extra_state(self, state: dict) -> None:
        super()._load_extra_state(state)
        self._log_tilted = state["log_tilted_losses"].to(torch.float64).clone()
        self._initialised = bool(state["initialised"])
        self._initial_value = float(state["initial_value"])
        self._trajectory_classes = state["trajectory_classes"].tolist()
        self._trajectory_values = state["trajectory_values"].tolist()
        self._refresh_weights()


def _as_float(name: str, value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _scalar(batch_loss) -> float:
    if torch.is_tensor(batch_loss) and batch_loss.numel() != 1:
        raise ValueError(f"batch loss must be a scalar, got shape {tuple(batch_loss.shape)}")
    return float(batch_loss)  # float64 throughout: a Python float never passes through float32


def _all_reduce_sum(values: list[float]) -> list[float]:
    """Sum each value over ranks when torch.distributed runs several processes (one all-reduce)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        total = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.tolist()
    return values


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _all_reduce_mean(batch_loss) -> float:
    """The loss as a float, averaged over ranks when torch.distributed runs several processes."""
    return _all_reduce_sum([_scalar(batch_loss)])[0] / _world_size()


def _class_estimate(batch_loss, class_stats, class_id: int) -> float:
    """``L_{B,c}``: the mean CE over the batch's pixels of class c (all ranks), else ``L_B``.

    ``class_stats`` is ``(sums, counts)`` of shape ``(K,)``; one all-reduce of the batch loss
    and class c's sum and count keeps every rank's state identical.
    """
    if class_stats is None:
        raise ValueError("StochasticTCESampler(estimate='class').update needs class_stats=(sums, counts), "
                         "the batch's per-class CE sums and pixel counts (CrossEntropyLoss(class_stats=True))")
    sums, counts = class_stats
    loss, total, count = _all_reduce_sum([_scalar(batch_loss), float(sums[class_id]), float(counts[class_id])])
    return total / count if count > 0 else loss / _world_size()
