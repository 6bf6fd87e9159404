"""The ``environment`` block of a result: package versions, Python, device and git commit.

Torch-free at import: a prediction folder is counted with numpy alone, so torch is asked only when
it is already loaded (or for a CUDA device, which needs it anyway); otherwise its version is read
from its installed ``torch/version.py`` without running the package.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from fairseg_bench import __version__

__all__ = ["environment", "device_description", "git_commit", "torch_version"]


def git_commit() -> str | None:
    """The source tree's commit, if it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version_file_value() -> str | None:
    """``__version__`` of the installed ``torch/version.py``, read as text (keeps any local tag, e.g. +cu130)."""
    spec = importlib.util.find_spec("torch")  # a top-level find_spec does not import the package
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        tree = ast.parse((Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text())
    except (OSError, SyntaxError, StopIteration):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and any(
                isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets):
            return str(node.value.value)
    return None


def torch_version() -> str | None:
    """``torch.__version__`` without importing torch; None if torch is not installed."""
    if "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    found = _version_file_value()
    if found is not None:
        return found
    try:  # the distribution's version lacks a local tag, but is better than none
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def device_description(device: Any = "cpu") -> str:
    """``"<type>: <name>"`` of a ``torch.device`` or a device string, e.g. ``"cpu: x86_64"``."""
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if kind == "cuda":
        import torch  # a CUDA device means torch is in use already

        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or "cpu"
    return f"{kind}: {name}"


def environment(device: Any = "cpu") -> dict:
    """The record's ``environment``: ``{"fairseg_bench", "torch", "python", "device", "git_commit"}``."""
    return {"fairseg_bench": __version__, "torch": torch_version(), "python": platform.python_version(),
            "device": device_description(device), "git_commit": git_commit()}
