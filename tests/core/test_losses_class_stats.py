"""``tce:estimate=class`` end to end: the MCCE module keeps the batch's per-class CE sums and counts
from its own forward pass, and the training loop hands them to the sampler every step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from fairseg_bench import engine
from fairseg_bench.core.class_index import ClassIndex
from fairseg_bench.core.losses import CrossEntropyLoss, batch_class_means, mcce
from fairseg_bench.loss_specs import build_loss, build_sampler

K, H, W = 3, 8, 12


def test_class_stats_come_with_the_mcce_value():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, K, H, W, generator=gen, requires_grad=True)
    target = torch.randint(K, (2, H, W), generator=gen)
    target[0, :3] = 255
    target[target == 1] = 0  # class 1 absent
    loss = CrossEntropyLoss(class_stats=True)
    value = loss(logits, target)
    torch.testing.assert_close(value, mcce(logits, target))
    sums, counts = loss.class_stats
    means, expected_counts = batch_class_means(logits, target)
    torch.testing.assert_close(counts, expected_counts.to(counts.dtype))
    torch.testing.assert_close(sums / counts.clamp(min=1), means.detach())
    assert not sums.requires_grad and counts[1] == 0
    value.backward()
    reference = logits.detach().clone().requires_grad_(True)
    mcce(reference, target).backward()
    torch.testing.assert_close(logits.grad, reference.grad)
    assert CrossEntropyLoss().class_stats is None  # the default keeps nothing


class Scenes(torch.utils.data.Dataset):
    """Images whose label is a function of the image (every class in most images)."""

    def __init__(self, n=16):
        gen = torch.Generator().manual_seed(1)
        self.images = torch.randn(n, 3, H, W, generator=gen)
        self.targets = (self.images[:, 0] > 0).long() + (self.images[:, 1] > 0.8).long()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], self.targets[i]


class Recording:
    """Wraps a sampler; records what ``update`` receives."""

    def __init__(self, sampler):
        self.sampler, self.received = sampler, []

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self):
        return len(self.sampler)

    def __getattr__(self, name):
        return getattr(self.sampler, name)

    def update(self, batch_loss, class_stats=None):
        self.received.append((batch_loss, class_stats))
        self.sampler.update(batch_loss, class_stats=class_stats)


def test_training_feeds_the_class_estimate_to_the_sampler():
    torch.manual_seed(0)
    ds = Scenes()
    index = ClassIndex.from_labels(ds.targets, K)
    criterion = build_loss("tce:estimate=class", num_classes=K)
    sampler = Recording(build_sampler("tce:estimate=class,gamma=0.5", class_index=index, batch_size=4,
                                      num_batches=5, seed=0))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, K, 1))
    optimizer = engine.build_optimizer(model, "sgd", 0.05)
    scheduler = engine.poly_schedule(optimizer, 5)
    loader = DataLoader(ds, batch_sampler=sampler)
    classes = []
    original_update = sampler.update

    def update(batch_loss, class_stats=None):
        classes.append(sampler.sampler.current_class)
        original_update(batch_loss, class_stats)

    sampler.update = update
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = engine.TrainState(model, optimizer, scheduler, scaler, criterion, sampler)
    engine.train(state, loader, engine.TrainLogger(progress=False), device=torch.device("cpu"))
    assert len(sampler.received) == 5
    log_tilted = None
    for c, (batch_loss, (sums, counts)) in zip(classes, sampler.received):
        assert counts.sum() == 4 * H * W and float(sums.sum() / counts.sum()) == pytest.approx(batch_loss, rel=1e-6)
        estimate = float(sums[c]) / float(counts[c])
        if log_tilted is None:
            log_tilted = np.full(K, estimate)
        log_tilted[c] = np.logaddexp(log_tilted[c] + np.log(0.5), estimate + np.log(0.5))
    np.testing.assert_allclose(sampler.sampler.log_tilted_losses, log_tilted, rtol=1e-12)
    assert [row["drawn_class"] for row in state.history] == classes


def test_class_index_counts_the_images_holding_each_class():
    index = ClassIndex(np.array([[3, 0, 1], [0, 0, 5], [2, 0, 0]]))
    assert index.class_image_counts().tolist() == [2, 0, 2]
    assert index.class_image_counts(min_pixels=3).tolist() == [1, 0, 1]
