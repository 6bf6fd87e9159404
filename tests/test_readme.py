"""The README's library example runs as written (with tiny stand-ins for the user's data and model)."""
import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_library_example_runs():
    code = re.search(r"## Library use\s+```python\n(.*?)```", README.read_text(), re.S).group(1)
    code = code.replace("...", "pass")
    torch.manual_seed(0)
    labels = [torch.randint(0, 19, (16, 32)) for _ in range(6)]
    images = [torch.randn(3, 16, 32) for _ in range(6)]
    model = torch.nn.Conv2d(3, 19, 1)
    namespace = {
        "train_label_maps": [label.numpy() for label in labels],
        "train_set": list(zip(images, labels)),
        "model": model,
        "mcce_iou": torch.rand(19).numpy(),
    }
    code = code.replace("num_batches=80_000", "num_batches=3")
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["sampler"].draw_histogram.sum() == 3
    # the confusion matrix saw the last batch: 8 images of 16x32 pixels, none ignored
    assert int(namespace["cm"].compute().sum()) == 8 * 16 * 32
