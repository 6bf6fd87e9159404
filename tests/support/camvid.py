"""A fabricated CamVid tree in the distributed layout: names by split, blocky label maps."""
from pathlib import Path

import numpy as np
from PIL import Image

SHAPE = (24, 40)
# list-file order on purpose not sorted: the dataset keeps it
NAMES = {
    "train": ["0016E5_00390", "0001TP_006690", "0006R0_f02400", "Seq05VD_f00000"],
    "val": ["0016E5_07959", "0016E5_07961"],
    "test": ["Seq05VD_f05100", "0001TP_008550", "Seq05VD_f05130"],
}


def blocky(rng, values, shape=SHAPE, block=4) -> np.ndarray:
    """A spatially coherent map drawn from ``values`` (blocks of ``block`` pixels), uint8 ``shape``."""
    small = rng.choice(np.asarray(values), (shape[0] // block + 1, shape[1] // block + 1))
    return np.kron(small, np.ones((block, block), np.int64))[: shape[0], : shape[1]].astype(np.uint8)


def labels_of(root) -> list[np.ndarray]:
    """The raw test labels of a fabricated tree, in list order."""
    return [np.asarray(Image.open(root / "testannot" / f"{name}.png")) for name in NAMES["test"]]


def write_tiny_config(root: Path, folder: Path, iters: int) -> Path:
    """The ``camvid`` preset cut to a few steps on 12x20 frames of the tree at ``root``; its YAML file."""
    import yaml

    from fairseg_bench.config import load_config

    raw = load_config("camvid").override(losses=["mcce"], seeds=[0], data_root=str(root), out=str(folder / "runs"),
                                         quiet=True).resolved_dict()
    raw["data"]["train_options"].update(frame_size=[12, 20], crop_size=[8, 8])
    raw["data"]["val_options"].update(frame_size=[12, 20])
    raw["train"].update(iters=iters, batch_size=2, checkpoint_every=iters)
    raw["eval"].update(batch_size=2, samples=1)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
