"""Fixtures shared across the test folders."""
import os

import numpy as np
import pytest
from support.camvid import NAMES, blocky
from support.fake_datasets import write_camvid

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core (pytest-xdist): one torch thread each, or the workers'
    # thread pools would fight over the same cores. Set before any test imports torch.
    os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="module")
def labels():
    """The fabricated CamVid tree's raw label maps by split (values 0-11, 11 = void)."""
    rng = np.random.default_rng(0)
    return {split: [blocky(rng, range(12)) for _ in names] for split, names in NAMES.items()}


@pytest.fixture
def root(tmp_path, labels):
    """A fabricated CamVid tree (``CamVid/`` with the list files) under ``tmp_path``."""
    items = {split: list(zip(NAMES[split], labels[split], strict=True)) for split in NAMES}
    return write_camvid(tmp_path / "CamVid", items)
