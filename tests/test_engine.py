"""The engine and its checkpoints: poly schedule, checkpoints (weights-only, atomic), RNG states, the
training loop (history, sampler feed, NaN guard, exact resume) and the evaluation loop."""
import math
import random

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fairseg_bench import engine
from fairseg_bench.checkpoint import load_checkpoint, rng_states, save_checkpoint, set_rng_states
from fairseg_bench.core.class_index import ClassIndex
from fairseg_bench.core.sampling import StochasticTCESampler, UniformBatchSampler

K, H, W = 3, 8, 12


class TinySegmentation(torch.utils.data.Dataset):
    """Random images whose label is a function of the image; a random flip uses the global RNG."""

    num_classes, ignore_index, classes = K, 255, ["a", "b", "c"]

    def __init__(self, n=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, H, W, generator=g)
        self.targets = (self.images[:, 0] > 0).long() + (self.images[:, 1] > 0.5).long()
        self.targets[:, 0, 0] = 255

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        image, target = self.images[i], self.targets[i]
        if torch.rand(()) < 0.5:  # augmentation drawn from the global torch RNG, as v2 transforms do
            image, target = image.flip(-1), target.flip(-1)
        return image, target

    def image(self, i):
        return (self.images[i].permute(1, 2, 0).clamp(-2, 2) * 60 + 128).byte().numpy()


def tiny_model():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, K, 1))


class RecordingSampler(UniformBatchSampler):
    """The real uniform sampler, recording what ``update`` receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.received = []

    def update(self, batch_loss=None):
        self.received.append(batch_loss)
        super().update(batch_loss)


def setup(total=6, seed=0, sampler=None, lr=0.05):
    torch.manual_seed(seed)
    ds = TinySegmentation()
    model = tiny_model()
    sampler = sampler or RecordingSampler(len(ds), 4, num_batches=total, seed=seed)
    optimizer = engine.build_optimizer(model, "sgd", lr, momentum=0.9, weight_decay=1e-4)
    scheduler = engine.poly_schedule(optimizer, total, 0.9)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loader = DataLoader(ds, batch_sampler=sampler, generator=torch.Generator().manual_seed(seed))
    return ds, model, sampler, optimizer, scheduler, scaler, loader


def run_train(parts, criterion=None, start=0, checkpoint=None, every=3):
    ds, model, sampler, optimizer, scheduler, scaler, loader = parts
    state = engine.TrainState(model, optimizer, scheduler, scaler, criterion or nn.CrossEntropyLoss(ignore_index=255),
                              sampler, step=start)
    engine.train(state, loader, engine.TrainLogger(progress=False), device=torch.device("cpu"),
                 checkpoint=checkpoint, checkpoint_every=every)
    return state.step, state.history


def test_poly_schedule_matches_formula():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = engine.poly_schedule(opt, 10, 0.9)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.01 * (1 - s / 10) ** 0.9 for s in range(10)], rel=1e-12)
    assert sched.get_last_lr()[0] == 0.0


@pytest.mark.parametrize("name, cls",
                         [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    opt = engine.build_optimizer(tiny_model(), name, 0.1, momentum=0.8, weight_decay=0.01)
    assert isinstance(opt, cls) and opt.defaults["lr"] == 0.1 and opt.defaults["weight_decay"] == 0.01
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        engine.build_optimizer(tiny_model(), "lbfgs", 0.1)


@pytest.mark.parametrize("name, cls",
                         [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_foreach_optimizer_steps_are_the_single_tensor_steps_bit_for_bit(name, cls):
    """build_optimizer's foreach path on CPU against torch's per-parameter loop, five steps."""
    torch.manual_seed(0)
    ours, theirs = tiny_model(), tiny_model()
    theirs.load_state_dict(ours.state_dict())
    options = {"lr": 0.05, "weight_decay": 0.01, **({"momentum": 0.8} if name == "sgd" else {})}
    optimizers = [engine.build_optimizer(ours, name, **options), cls(theirs.parameters(), foreach=False, **options)]
    assert optimizers[0].defaults["foreach"] is True
    images = torch.randn(4, 3, H, W)
    for _ in range(5):
        for model, optimizer in zip((ours, theirs), optimizers):
            optimizer.zero_grad()
            model(images).square().mean().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_round_trip_is_weights_only(tmp_path):
    state = {"step": 3, "arr": np.arange(5, dtype=np.int32), "nested": [{"x": np.float64(2.5)}],
             "t": torch.ones(2), "rng": rng_states()}
    path = tmp_path / "last.pt"
    save_checkpoint(path, state)
    torch.load(path, weights_only=True)  # no arbitrary objects inside
    back = load_checkpoint(path)
    assert back["step"] == 3 and back["nested"][0]["x"] == 2.5
    assert isinstance(back["arr"], np.ndarray) and back["arr"].dtype == np.int32
    assert back["arr"].tolist() == [0, 1, 2, 3, 4]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_unreadable_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"truncated")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_states_restore_every_generator(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    path = tmp_path / "rng.pt"
    save_checkpoint(path, {"rng": rng_states()})
    first = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    set_rng_states(load_checkpoint(path)["rng"])
    second = (torch.rand(3), np.random.rand(3), np.random.randn(), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert first[2:] == second[2:]


def test_train_history_feeds_the_sampler_and_checkpoints():
    parts = setup(total=6)
    saved = []
    step, history = run_train(parts, checkpoint=saved.append, every=4)
    sampler = parts[2]
    assert step == 6 and [r["step"] for r in history] == [1, 2, 3, 4, 5, 6]
    assert saved == [4, 6]  # every 4 steps and after the last
    assert sampler.received == [r["loss"] for r in history]  # the step's loss, a plain float
    assert all(type(v) is float for v in sampler.received)
    assert [r["lr"] for r in history] == pytest.approx([0.05 * (1 - s / 6) ** 0.9 for s in range(6)])
    assert set(history[0]) == {"step", "lr", "loss", "grad_norm", "images_per_s"}
    assert all(r["grad_norm"] > 0 and r["images_per_s"] > 0 for r in history)


def test_grad_norm_is_the_total_norm_of_the_first_step():
    parts = setup(total=1)
    ds, model, sampler, *_ = parts
    reference = tiny_model()
    reference.load_state_dict(model.state_dict())
    torch.manual_seed(123)
    indices = next(iter(UniformBatchSampler(len(ds), 4, num_batches=1, seed=0)))
    state = torch.get_rng_state()
    _, history = run_train(parts)
    torch.set_rng_state(state)  # the same flips as inside the loop
    batch = [ds[i] for i in indices]
    images, target = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    reference.train()
    nn.CrossEntropyLoss(ignore_index=255)(reference(images), target).backward()
    expected = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in reference.parameters()))
    assert history[0]["grad_norm"] == pytest.approx(expected, rel=1e-5)


def test_sampler_weights_are_logged():
    index = ClassIndex.from_labels(TinySegmentation().targets, K)
    sampler = StochasticTCESampler(index, 4, num_batches=3, t=1.0, seed=0)
    _, history = run_train(setup(total=3, sampler=sampler))
    assert all(0 <= r["drawn_class"] < K for r in history)
    assert history[-1]["weights"] == pytest.approx(sampler.weights.tolist())
    assert sum(history[-1]["weights"]) == pytest.approx(1.0)


class NaNAtStep(nn.Module):
    def __init__(self, bad_step):
        super().__init__()
        self.calls, self.bad_step = 0, bad_step

    def forward(self, logits, target):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, target, ignore_index=255)
        return loss * float("nan") if self.calls == self.bad_step else loss


def test_nan_guard_stops_before_the_step_and_keeps_the_checkpoint():
    parts = setup(total=6)
    model = parts[1]
    saved, snapshot = [], {}

    def checkpoint(step):
        saved.append(step)
        snapshot.update({k: v.detach().clone() for k, v in model.named_parameters()})

    with pytest.raises(engine.NonFiniteLoss, match=r"step 5: the loss is nan; training stopped"):
        run_train(parts, criterion=NaNAtStep(5), checkpoint=checkpoint, every=2)
    assert saved == [2, 4]  # nothing written at or after the bad step
    for key, value in model.named_parameters():  # the bad step was never applied
        assert torch.equal(value.detach(), snapshot[key]), key


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    """Stop after step 3, rebuild everything from last.pt, finish: same weights as straight through."""
    full = setup(total=6)
    _, full_history = run_train(full)

    first = setup(total=6)
    path = tmp_path / "last.pt"

    def checkpoint(step):
        ds, model, sampler, optimizer, scheduler, *_ = first
        if step == 3:
            save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "scheduler": scheduler.state_dict(), "sampler": sampler.state_dict(),
                                          "rng": rng_states(), "step": step})
            raise KeyboardInterrupt  # the process dies here

    with pytest.raises(KeyboardInterrupt):
        run_train(first, checkpoint=checkpoint)

    torch.manual_seed(999)  # a fresh process: different RNG until restored
    resumed = setup(total=6, seed=0)
    ds, model, sampler, optimizer, scheduler, *_ = resumed
    state = load_checkpoint(path)
    model.load_state_dict(state["model"]), optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"]), sampler.load_state_dict(state["sampler"])
    set_rng_states(state["rng"])
    _, history = run_train(resumed, start=state["step"])
    assert [r["loss"] for r in history] == [r["loss"] for r in full_history[3:]]
    for (name, a), b in zip(full[1].state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name


def brute_force_cm(preds, target, k):
    valid = target != 255
    return np.bincount(target[valid] * k + preds[valid], minlength=k * k).reshape(k, k)


def test_evaluate_confusion_matrix_and_per_image_stats():
    torch.manual_seed(0)
    ds, model = TinySegmentation(n=7), tiny_model()
    plain = [(ds.images[i], ds.targets[i]) for i in range(len(ds))]  # no augmentation at evaluation
    cm = engine.evaluate(model, DataLoader(plain, batch_size=3), K, device=torch.device("cpu"), progress=False)
    with torch.no_grad():
        model.eval()
        preds = model(ds.images).argmax(1).numpy()
    expected = brute_force_cm(preds, ds.targets.numpy(), K)
    assert np.array_equal(np.asarray(cm.compute()), expected)
    assert expected.sum() == (ds.targets != 255).sum()
    stats = cm.per_image_stats()
    for i in range(len(ds)):
        one = brute_force_cm(preds[i], ds.targets[i].numpy(), K)
        assert np.array_equal(stats["tp"][i], np.diag(one))
        assert np.array_equal(stats["fn"][i], one.sum(1) - np.diag(one))
        assert np.array_equal(stats["fp"][i], one.sum(0) - np.diag(one))


def test_predict_samples_shapes_and_values():
    torch.manual_seed(0)
    ds, model = TinySegmentation(n=5), tiny_model()
    samples = engine.predict_samples(model, ds, 3, device=torch.device("cpu"))
    assert samples["image"].shape == (3, H, W, 3) and samples["target"].shape == samples["pred"].shape == (3, H, W)
    assert all(a.dtype == np.uint8 for a in samples.values())
    assert np.array_equal(samples["image"][0], ds.image(0))
    assert samples["pred"].max() < K
    assert engine.predict_samples(model, ds, 0, device=torch.device("cpu"))["image"].shape[0] == 0
