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


def test_doctor_output_in_the_readme_is_what_doctor_prints():
    """The README's ``fairseg-bench doctor`` screen has the lines the command prints, in order, with
    the packaged presets and the precision rule each follows (values differ by machine)."""
    import subprocess
    import sys

    block = re.search(r"```text\n(\$ fairseg-bench doctor\n.*?)```", README.read_text(), re.S).group(1)
    shown = block.splitlines()[1:]
    out = subprocess.run([sys.executable, "-m", "fairseg_bench", "doctor", "--no-bench"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    label = re.compile(r"^(\S+)")
    printed_labels = [label.match(line).group(1) for line in out if label.match(line)]
    shown_labels = [label.match(line).group(1) for line in shown if label.match(line)]
    assert shown_labels[:len(printed_labels)] == printed_labels
    assert shown_labels[len(printed_labels):] == ["step", "make"]  # the benchmark's two lines
    presets = [line.split()[0] for line in out if line.startswith("  ")]
    assert [line.split()[0] for line in shown if line.startswith("  ")] == presets
    for line in shown:  # each preset line names its amp value as the preset file has it
        if line.startswith("  "):
            name, amp = line.split()[0], line.split("amp: ")[1].split()[0]
            assert f"amp: {amp} ->" in next(o for o in out if o.split()[0] == name)
