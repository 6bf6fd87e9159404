"""Batch samplers: Algorithm 1 step by step, draw statistics, resume, distributed consistency."""
from __future__ import annotations

import io
import math
import socket

import numpy as np
import pytest
import torch

from fairseg_bench.core.class_index import ClassIndex
from fairseg_bench.core.sampling import RareClassSampler, StochasticTCESampler, UniformBatchSampler

# ---------------------------------------------------------------------------------------------
# Fixtures and the plain-Python re-statement of Algorithm 1 (log space, lists, math only)
# ---------------------------------------------------------------------------------------------


def disjoint_index(images_per_class=(6, 5, 4, 3), pixels=10) -> ClassIndex:
    """Each image holds exactly one class, so a batch tells which class it was drawn for."""
    rows = []
    for c, n in enumerate(images_per_class):
        for _ in range(n):
            row = [0] * len(images_per_class)
            row[c] = pixels
            rows.append(row)
    return ClassIndex(np.array(rows))


def random_index(num_images=40, num_classes=6, seed=0) -> ClassIndex:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, size=(num_images, num_classes)) * (rng.random((num_images, num_classes)) < 0.4)
    counts[0, :] = 5  # every class present somewhere
    return ClassIndex(counts)


def class_of(batch, index: ClassIndex) -> int:
    classes = {int(np.flatnonzero(index.pixel_counts[i])[0]) for i in batch}
    assert len(classes) == 1, f"batch {batch} mixes classes {classes}"
    return classes.pop()


class ReferenceAlgorithm1:
    """Lines 7-8 of Algorithm 1 with log L~ in lists; shared first estimate; floor over eligible."""

    def __init__(self, num_classes, t, gamma, floor=0.0, eligible=None):
        self.t, self.gamma, self.floor = t, gamma, floor
        self.eligible = eligible or [True] * num_classes
        self.log_tilted = [0.0] * num_classes
        self.started = False

    def update(self, c, batch_loss):
        value = self.t * batch_loss
        if not self.started:
            self.log_tilted = [value] * len(self.log_tilted)
            self.started = True
        a = self.log_tilted[c] + math.log(1 - self.gamma) if self.gamma < 1 else -math.inf
        b = value + math.log(self.gamma)
        top = max(a, b)
        self.log_tilted[c] = top + math.log(math.exp(a - top) + math.exp(b - top))

    def weights(self):
        live = [v for v, ok in zip(self.log_tilted, self.eligible) if ok]
        top = max(live)
        total = sum(math.exp(v - top) for v in live)
        k = len(live)
        return [((1 - self.floor) * math.exp(v - top) / total + self.floor / k) if ok else 0.0
                for v, ok in zip(self.log_tilted, self.eligible)]


def toy_loss(c, step):
    return 0.4 + 0.35 * c + 0.2 * math.sin(1.7 * step)


def roundtrip(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---------------------------------------------------------------------------------------------
# Algorithm 1
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t, gamma, floor", [(0.7, 0.3, 0.1), (2.0, 0.2, 0.0), (-1.5, 1.0, 0.0)])
def test_tce_follows_algorithm_1_step_by_step_with_prefetch(t, gamma, floor):
    index = disjoint_index()
    sampler = StochasticTCESampler(index, 2, num_batches=40, t=t, gamma=gamma, floor=floor, seed=3)
    reference = ReferenceAlgorithm1(4, t, gamma, floor)
    linear = None  # the same EMA in linear space, as the paper writes it (values are moderate here)
    drawn, history = [], []
    iterator = iter(sampler)
    drawn.extend(class_of(next(iterator), index) for _ in range(2))  # prefetch depth 2
    for step in range(38):
        drawn.append(class_of(next(iterator), index))
        c = drawn[step]
        assert sampler.current_class == c
        loss = toy_loss(c, step)
        sampler.update(torch.tensor(loss, dtype=torch.float64))
        reference.update(c, loss)
        if linear is None:
            linear = [math.exp(t * loss)] * 4
        linear[c] = (1 - gamma) * linear[c] + gamma * math.exp(t * loss)
        assert sampler.last_class == c
        np.testing.assert_allclose(sampler.log_tilted_losses, reference.log_tilted, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sampler.weights, reference.weights(), rtol=1e-12, atol=1e-14)
        linear_w = [(1 - floor) * v / sum(linear) + floor / 4 for v in linear]
        np.testing.assert_allclose(sampler.weights, linear_w, rtol=1e-9)
        history.append(sampler.weights)
    np.testing.assert_allclose(sampler.trajectory(), np.array(history), rtol=1e-12, atol=1e-15)
    assert sampler.draw_histogram.sum() == 40 and sampler.step == 38
    assert len(set(drawn)) > 1


@pytest.mark.parametrize("t, gamma, floor", [(0.7, 0.3, 0.1), (2.0, 0.2, 0.0), (-1.5, 1.0, 0.0)])
def test_class_estimate_follows_its_plain_python_restatement_step_by_step(t, gamma, floor):
    """estimate=class: line 7 with L_{B,c} = (CE sum of class c) / (its pixels); L_B when c is absent."""
    index = random_index(num_classes=6, seed=2)
    sampler = StochasticTCESampler(index, 3, num_batches=30, t=t, gamma=gamma, floor=floor, seed=1, estimate="class")
    reference = ReferenceAlgorithm1(6, t, gamma, floor)
    history = []
    for step, _ in enumerate(sampler):
        c = sampler.current_class
        sums, counts = toy_class_stats(step)
        batch_loss = float(sums.sum() / counts.sum())
        sampler.update(batch_loss, class_stats=(sums, counts))
        # the plain-Python statement of the class estimate, from the same numbers
        estimate = float(sums[c]) / float(counts[c]) if float(counts[c]) > 0 else batch_loss
        reference.update(c, estimate)
        np.testing.assert_allclose(sampler.log_tilted_losses, reference.log_tilted, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(sampler.weights, reference.weights(), rtol=1e-12, atol=1e-14)
        history.append(sampler.weights)
    np.testing.assert_allclose(sampler.trajectory(), np.array(history), rtol=1e-12, atol=1e-15)
    assert sampler.state_dict()["estimate"] == "class"


def _skewed_run(estimate, steps=300):
    """Every batch holds every class; class 3's few pixels carry a CE of 3.0, every other pixel
    0.3 (the drawn class brings 50 extra pixels). Returns the weights after ``steps`` updates."""
    index = random_index(num_images=60, num_classes=6, seed=4)
    sampler = StochasticTCESampler(index, 4, num_batches=steps, t=1.0, gamma=0.2, seed=0, estimate=estimate)
    for _ in sampler:
        counts = torch.tensor([400.0, 300.0, 200.0, 6.0, 150.0, 100.0])
        counts[sampler.current_class] += 50
        means = torch.full((6,), 0.3)
        means[3] = 3.0
        sums = means * counts
        sampler.update(float(sums.sum() / counts.sum()), class_stats=(sums, counts))
    return sampler.weights


def test_class_estimate_raises_the_weight_of_a_class_with_high_loss_where_batch_estimate_stays_uniform():
    by_batch, by_class = _skewed_run("batch"), _skewed_run("class")
    uniform = 1 / 6
    assert np.abs(by_batch - uniform).max() < 0.03  # the whole-batch loss barely tells the classes apart
    others = np.delete(by_class, 3)
    assert by_class[3] > 3 * others.max()  # e^{3.0} vs e^{0.3} once every class was drawn
    np.testing.assert_allclose(others, others.mean(), rtol=0.2)


def test_class_estimate_needs_class_stats_and_falls_back_to_the_batch_loss_for_an_absent_class():
    index = disjoint_index()
    sampler = StochasticTCESampler(index, 2, num_batches=5, t=1.0, gamma=0.5, estimate="class")
    iterator = iter(sampler)
    next(iterator)
    with pytest.raises(ValueError, match=r"estimate='class'\).update needs class_stats"):
        sampler.update(0.5)
    c = sampler.current_class
    sampler.update(0.5, class_stats=(torch.zeros(4), torch.zeros(4)))  # the crop lost class c
    np.testing.assert_allclose(sampler.log_tilted_losses, [0.5] * 4)
    next(iterator)
    c = sampler.current_class
    sums, counts = torch.zeros(4), torch.zeros(4)
    sums[c], counts[c] = 6.0, 4.0
    sampler.update(0.2, class_stats=(sums, counts))
    expected = math.log(0.5 * math.exp(0.5) + 0.5 * math.exp(1.5))
    assert sampler.log_tilted_losses[c] == pytest.approx(expected, rel=1e-12)


def test_weights_uniform_before_first_update_and_after_shared_init():
    sampler = StochasticTCESampler(disjoint_index(), 1, num_batches=5, t=3.0)
    np.testing.assert_allclose(sampler.weights, [0.25] * 4)
    batch = next(iter(sampler))
    sampler.update(1.3)
    # The first loss sets every class to t * L_B, and the EMA of equal values changes nothing.
    np.testing.assert_allclose(sampler.log_tilted_losses, [3.9] * 4, rtol=1e-14)
    np.testing.assert_allclose(sampler.weights, [0.25] * 4)
    assert sampler.last_class == class_of(batch, disjoint_index())


@pytest.mark.parametrize("t, losses", [(1e3, [1.0, 0.999, 0.98, 0.5]), (-5.0, [80.0, 3.0, 0.01, 40.0])])
def test_extreme_tilt_keeps_weights_finite(t, losses):
    sampler = StochasticTCESampler(disjoint_index(), 2, num_batches=60, t=t, gamma=0.5)
    for batch in sampler:
        sampler.update(losses[class_of(batch, disjoint_index())])
        weights = sampler.weights
        assert np.isfinite(weights).all() and np.isfinite(sampler.log_tilted_losses).all()
        assert (weights >= 0).all() and weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.isfinite(sampler.trajectory()).all()


# ---------------------------------------------------------------------------------------------
# Draw statistics
# ---------------------------------------------------------------------------------------------


def chi_square_p(observed, probabilities):
    from scipy import stats  # imported here so that the spawned distributed workers skip it

    expected = np.asarray(probabilities) * observed.sum()
    keep = expected > 0
    assert observed[~keep].sum() == 0, "a class with probability 0 was drawn"
    return stats.chisquare(observed[keep], expected[keep]).pvalue


def test_tce_draw_frequencies_match_frozen_weights():
    index = disjoint_index((3, 3, 3, 3, 3))
    sampler = StochasticTCESampler(index, 1, num_batches=100_000, t=1.5, gamma=0.5, floor=0.05, seed=11)
    iterator = iter(sampler)
    for _step in range(40):
        c = class_of(next(iterator), index)
        sampler.update(0.2 + 0.5 * c)
    weights = sampler.weights
    assert weights.max() / weights.min() > 3  # far from uniform, so the test has power
    before = sampler.draw_histogram
    for _ in range(6000):  # no further update: the weights stay fixed
        next(iterator)
    observed = sampler.draw_histogram - before
    assert chi_square_p(observed, weights) > 1e-3
    assert chi_square_p(observed, np.full(5, 0.2)) < 1e-6  # and it would notice the wrong law


def test_rcs_draw_frequencies_match_probabilities():
    index = random_index(seed=4)
    sampler = RareClassSampler(index, 1, num_batches=6000, temperature=0.1, seed=5)
    for _ in sampler:
        pass
    assert chi_square_p(sampler.draw_histogram, sampler.weights) > 1e-3


def test_rcs_probabilities_match_formula():
    counts = np.array([[900, 50, 0, 3], [800, 0, 20, 0], [700, 30, 0, 0]])
    total = counts.sum()
    for temperature in (0.01, 0.3):
        sampler = RareClassSampler(ClassIndex(counts), 2, num_batches=1, temperature=temperature)
        scores = [math.exp((1 - counts[:, c].sum() / total) / temperature) for c in range(4)]
        np.testing.assert_allclose(sampler.weights, [s / sum(scores) for s in scores], rtol=1e-12)
    with pytest.warns(UserWarning, match="left out of the class draw: 3"):
        sampler = RareClassSampler(ClassIndex(counts), 2, num_batches=1, temperature=0.3, min_pixels=5)
    scores = [math.exp((1 - counts[:, c].sum() / total) / 0.3) for c in range(3)]
    np.testing.assert_allclose(sampler.weights, [s / sum(scores) for s in scores] + [0.0], rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda index: StochasticTCESampler(index, 4, num_batches=30, t=1.0, min_pixels=3, seed=2),
    lambda index: RareClassSampler(index, 4, num_batches=30, temperature=0.05, min_pixels=3, seed=2),
])
def test_every_image_of_a_batch_holds_the_drawn_class(make):
    index = random_index()
    sampler = make(index)
    for step, batch in enumerate(sampler):
        c = sampler.current_class
        assert len(batch) == 4
        assert (index.pixel_counts[batch, c] >= 3).all(), (batch, c)
        if len(index.images_with(c, 3)) >= 4:
            assert len(set(batch)) == 4  # distinct images when D_c is large enough
        sampler.update(0.5 + 0.1 * c + 0.01 * step)


def test_empty_class_is_warned_once_and_never_drawn():
    counts = disjoint_index((4, 4, 4)).pixel_counts
    counts = np.concatenate([counts, np.zeros((len(counts), 1), np.int64)], axis=1)
    with pytest.warns(UserWarning, match="left out of the class draw: bus") as record:
        sampler = StochasticTCESampler(ClassIndex(counts), 2, num_batches=50, t=2.0, floor=0.2,
                                       class_names=["road", "car", "person", "bus"])
    assert len(record) == 1
    index = ClassIndex(counts)
    for batch in sampler:
        sampler.update(1.0 + class_of(batch, index))
        assert sampler.weights[3] == 0.0
    assert sampler.draw_histogram[3] == 0
    assert sampler.weights[:3].min() >= 0.2 / 3 - 1e-12  # the floor spreads over eligible classes only
    assert (sampler.trajectory()[:, 3] == 0).all()


# ---------------------------------------------------------------------------------------------
# Determinism and resume
# ---------------------------------------------------------------------------------------------


def toy_class_stats(step, num_classes=6):
    """Per-class CE sums and pixel counts of a batch (class 2 absent on odd steps)."""
    counts = torch.tensor([(3 + c) * (0 if c == 2 and step % 2 else 1) for c in range(num_classes)],
                          dtype=torch.float32)
    means = torch.tensor([0.3 + 0.4 * c + 0.1 * math.cos(step + c) for c in range(num_classes)])
    return means * counts, counts


def run_sampler(sampler, index, steps, prefetch=0):
    """Feed class-dependent losses with the iterator ``prefetch`` batches ahead; return the batches."""
    iterator = iter(sampler)
    batches = [next(iterator) for _ in range(prefetch)]
    for _ in range(steps):
        batches.append(next(iterator))
        c = sampler.current_class if sampler.current_class is not None else 0
        sampler.update(toy_loss(c, sampler.step), class_stats=toy_class_stats(sampler.step, index.num_classes))
    return batches


SAMPLERS = {
    "tce": lambda index, seed=0, **kw: StochasticTCESampler(index, 3, num_batches=40, t=1.0, gamma=0.3, seed=seed,
                                                           **kw),
    "tce-class": lambda index, seed=0, **kw: StochasticTCESampler(index, 3, num_batches=40, t=1.0, gamma=0.3,
                                                                 seed=seed, estimate="class", **kw),
    "rcs": lambda index, seed=0, **kw: RareClassSampler(index, 3, num_batches=40, temperature=0.2, seed=seed, **kw),
    "uniform": lambda index, seed=0, **kw: UniformBatchSampler(index.num_images, 3, num_batches=40, seed=seed, **kw),
}


@pytest.mark.parametrize("kind", SAMPLERS)
def test_same_seed_same_sequence_other_seed_differs(kind):
    index = random_index()
    first = run_sampler(SAMPLERS[kind](index, seed=7), index, 30)
    again = run_sampler(SAMPLERS[kind](index, seed=7), index, 30)
    other = run_sampler(SAMPLERS[kind](index, seed=8), index, 30)
    assert first == again
    assert first != other


@pytest.mark.parametrize("kind", SAMPLERS)
def test_state_dict_round_trip_resumes_identically_with_pending_batches(kind):
    index = random_index()
    uninterrupted = SAMPLERS[kind](index)
    expected = run_sampler(uninterrupted, index, 40 - 2, prefetch=2)

    interrupted = SAMPLERS[kind](index)
    head = run_sampler(interrupted, index, 15, prefetch=2)  # 17 drawn, 15 updated, 2 pending
    state = roundtrip(interrupted.state_dict())
    assert len(state["pending"]) == 2
    resumed = SAMPLERS[kind](index)
    resumed.load_state_dict(state)
    assert len(resumed) == 40 - 15
    tail = run_sampler(resumed, index, 40 - 15 - 2, prefetch=2)  # the same prefetch depth
    assert tail[:2] == head[-2:]  # the prefetched batches come back first
    assert head[:-2] + tail == expected
    if kind != "uniform":
        np.testing.assert_array_equal(resumed.weights, uninterrupted.weights)
        np.testing.assert_array_equal(resumed.draw_histogram, uninterrupted.draw_histogram)
    if kind.startswith("tce"):
        np.testing.assert_array_equal(resumed.trajectory(), uninterrupted.trajectory())


def test_checkpoint_of_rank_0_resumes_rank_1_with_its_own_images():
    index = random_index()
    rank0 = SAMPLERS["tce"](index, rank=0, world_size=2)
    rank1 = SAMPLERS["tce"](index, rank=1, world_size=2)
    run_sampler(rank0, index, 10, prefetch=2)
    expected = run_sampler(rank1, index, 10, prefetch=2)
    pending = rank1.pending
    expected = list(rank1)  # the two pending batches, then the rest
    assert expected[:2] == pending
    resumed = SAMPLERS["tce"](index, rank=1, world_size=2)
    resumed.load_state_dict(roundtrip(rank0.state_dict()))
    assert list(resumed) == expected


def test_works_as_dataloader_batch_sampler():
    index = random_index()
    dataset = torch.utils.data.TensorDataset(torch.arange(index.num_images))
    sampler = SAMPLERS["tce"](index)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    assert len(loader) == 40
    seen = 0
    for (images,) in loader:
        assert (index.pixel_counts[images.numpy(), sampler.current_class] > 0).all()
        sampler.update(torch.tensor(0.7))
        seen += 1
    assert seen == 40 and len(loader) == 0 and list(sampler) == []


def test_dataloader_worker_prefetch_never_misattributes_a_loss():
    index = disjoint_index()
    sampler = StochasticTCESampler(index, 2, num_batches=30, t=1.0, gamma=0.3, seed=1)
    reference = ReferenceAlgorithm1(4, 1.0, 0.3)
    dataset = torch.utils.data.TensorDataset(torch.arange(index.num_images))
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=2, prefetch_factor=2)
    depth = 0
    for (images,) in loader:
        depth = max(depth, len(sampler.pending))
        c = class_of(images.tolist(), index)  # the class of the batch actually trained on
        sampler.update(0.5 + c)
        reference.update(c, 0.5 + c)
        np.testing.assert_allclose(sampler.weights, reference.weights(), rtol=1e-12)
    assert depth > 2  # the workers really drew ahead


def test_uniform_sampler_covers_images_uniformly():
    sampler = UniformBatchSampler(10, 3, num_batches=100, seed=1)
    counts = np.bincount(np.concatenate(list(sampler)), minlength=10)
    np.testing.assert_array_equal(counts, np.full(10, 30))  # 30 whole epochs
    epochs = [UniformBatchSampler(11, 5, num_batches=3, seed=1, rank=r, world_size=2) for r in (0, 1)]
    flat = [np.concatenate(list(s)) for s in epochs]  # 15 images = 3 epochs of 5 per rank
    for epoch in range(3):
        shares = [set(f[5 * epoch: 5 * epoch + 5].tolist()) for f in flat]
        assert len(shares[0]) == len(shares[1]) == 5 and not shares[0] & shares[1]


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"t": float("nan")}, "t must be finite, got nan"),
    ({"t": float("inf")}, "t must be finite, got inf"),
    ({"gamma": 0.0}, r"gamma must be in \(0, 1\], got 0.0"),
    ({"gamma": 1.5}, "got 1.5"),
    ({"floor": 1.0}, r"floor must be in \[0, 1\), got 1.0"),
    ({"floor": -0.1}, "got -0.1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
    ({"num_batches": 0}, "num_batches must be an integer >= 1, got 0"),
    ({"rank": 2, "world_size": 2}, "rank must be in"),
    ({"min_pixels": 1000}, "no class has min_pixels=1000"),
    ({"estimate": "image"}, r"estimate must be one of \('batch', 'class'\), got 'image'"),
])
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, match):
    args = {"batch_size": 2, "num_batches": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        StochasticTCESampler(disjoint_index(), args.pop("batch_size"), **args)


def test_bad_index_and_bad_updates():
    with pytest.raises(ValueError, match="class_index is empty: 0 images"):
        StochasticTCESampler(ClassIndex(np.zeros((0, 3), np.int64)), 2, num_batches=5)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0, got 0.0"):
        RareClassSampler(disjoint_index(), 2, num_batches=5, temperature=0.0)
    with pytest.raises(ValueError, match="num_images must be an integer >= 1, got 0"):
        UniformBatchSampler(0, 2, num_batches=5)
    sampler = StochasticTCESampler(disjoint_index(), 2, num_batches=5)
    with pytest.raises(RuntimeError, match="no pending batch"):
        sampler.update(1.0)
    next(iter(sampler))
    with pytest.raises(ValueError, match="batch loss must be finite, got nan"):
        sampler.update(float("nan"))
    with pytest.raises(ValueError, match="state is for sampler 'RareClassSampler'"):
        sampler.load_state_dict(RareClassSampler(disjoint_index(), 2, num_batches=5).state_dict())
    with pytest.raises(ValueError, match="state has seed=1, this sampler has 0"):
        sampler.load_state_dict(StochasticTCESampler(disjoint_index(), 2, num_batches=5, seed=1).state_dict())
    with pytest.raises(ValueError, match="state has num_images=7, sampler has 9"):
        UniformBatchSampler(9, 2, num_batches=5).load_state_dict(UniformBatchSampler(7, 2, num_batches=5).state_dict())


# ---------------------------------------------------------------------------------------------
# Distributed: two gloo processes on CPU
# ---------------------------------------------------------------------------------------------


def _rank_class_stats(rank, c):
    """Rank-dependent class-c CE sum and count: over both ranks class c's mean is (1.2 + 0.5 c) / 5
    (rank 0: 2 pixels of mean 0.1 c; rank 1: 3 pixels of mean 0.4 + 0.1 c)."""
    sums, counts = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    counts[c] = 2 + rank
    sums[c] = counts[c] * (0.1 * c + 0.4 * rank)
    return sums, counts


def _distributed_worker(rank, world_size, port, out_path, estimate="batch"):
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}",
                                         rank=rank, world_size=world_size)
    try:
        index = disjoint_index((12, 10, 8, 6))
        sampler = StochasticTCESampler(index, 3, num_batches=20, t=1.0, gamma=0.3, seed=5,
                                       rank=rank, world_size=world_size, estimate=estimate)
        batches, classes = [], []
        for batch in sampler:
            classes.append(class_of(batch, index))
            batches.append(batch)
            # Different local losses per rank; their mean is 0.8 + 0.3 c.
            sampler.update(torch.tensor(0.3 + rank + 0.3 * classes[-1], dtype=torch.float64),
                           class_stats=_rank_class_stats(rank, classes[-1]))
        torch.save({"batches": batches, "classes": classes, "state": sampler.state_dict()},
                   f"{out_path}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("estimate", ["batch", "class"])
def test_two_gloo_processes_keep_identical_state_and_draw_different_images(tmp_path, estimate):
    out = str(tmp_path / "rank")
    torch.multiprocessing.spawn(_distributed_worker, args=(2, _free_port(), out, estimate), nprocs=2, join=True)
    results = [torch.load(f"{out}.{rank}", weights_only=True) for rank in (0, 1)]
    states = [r["state"] for r in results]
    assert results[0]["classes"] == results[1]["classes"]
    assert torch.equal(states[0]["log_tilted_losses"], states[1]["log_tilted_losses"])
    assert torch.equal(states[0]["class_rng"], states[1]["class_rng"])
    assert results[0]["batches"] != results[1]["batches"]
    # The shared state is the single-process state fed with the mean of the two ranks' losses
    # (estimate=batch), or with class c's CE pooled over the pixels of both ranks (estimate=class).
    reference = ReferenceAlgorithm1(4, 1.0, 0.3)
    for c in results[0]["classes"]:
        reference.update(c, 0.8 + 0.3 * c if estimate == "batch" else (1.2 + 0.5 * c) / 5)
    np.testing.assert_allclose(states[0]["log_tilted_losses"].numpy(), reference.log_tilted, rtol=1e-12)


def test_class_uniform_sampler_draws_every_eligible_class_equally_and_never_moves():
    """``cus``: the class draw is uniform over the classes present in some image, whatever the losses."""
    from fairseg_bench.core.class_index import ClassIndex
    from fairseg_bench.core.sampling import ClassUniformSampler

    counts = np.zeros((30, 5), np.int64)
    counts[:, 0] = 100          # in every image
    counts[:3, 1] = 2           # in 3 images
    counts[10:20, 2] = 7
    counts[5, 4] = 1            # class 3 in none: left out of the draw
    with pytest.warns(UserWarning, match="left out"):
        sampler = ClassUniformSampler(ClassIndex(counts), 4, num_batches=4000, seed=0)
    expected = np.array([0.25, 0.25, 0.25, 0.0, 0.25])
    np.testing.assert_array_equal(sampler.weights, expected)
    draws = []
    for batch in sampler:
        c = sampler.current_class
        draws.append(c)
        assert all(counts[i, c] >= 1 for i in batch)  # every image holds the drawn class
        sampler.update(float(c))  # a loss that would move an adaptive sampler
    np.testing.assert_array_equal(sampler.weights, expected)
    shares = np.bincount(draws, minlength=5) / len(draws)
    assert shares[3] == 0 and np.abs(shares - expected).max() < 0.03  # 4000 draws: sd ~0.007
