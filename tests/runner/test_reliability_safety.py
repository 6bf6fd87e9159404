"""Safe loading: a checkpoint carrying a pickled code payload is refused (and never runs) by
``evaluate`` and by resume; YAML tags that build Python objects are refused; and the package
source holds no eval/exec, pickle loads, unsafe YAML loads or non-weights-only torch.load."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.cli import call_main as cli
from support.configs import TINY

import fairseg_bench

PACKAGE = Path(fairseg_bench.__file__).parent
MCCE_ONLY = TINY.replace("[mcce, tce]", "[mcce]")


class Payload:
    """Unpickling this runs ``touch <marker>``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("safe")
    config = root / "safe.yaml"
    config.write_text(MCCE_ONLY)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "fairseg_bench", "run", "-c", config, "--out", root / "runs",
                          "--quiet", "--no-report"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return config, root / "runs" / "safe" / "mcce-s0"


def poisoned_checkpoint(path: Path, marker: Path, clean: Path) -> None:
    """The run's real checkpoint with the payload added beside the model weights."""
    state = torch.load(clean, weights_only=True)
    state["extra"] = Payload(marker)
    torch.save(state, path)


def test_the_payload_is_real(tmp_path):
    """The crafted file does run code when loaded unsafely (so the refusals below mean something)."""
    marker = tmp_path / "pwned-unsafe"
    torch.save({"x": Payload(marker)}, tmp_path / "p.pt")
    torch.load(tmp_path / "p.pt", weights_only=False)
    assert marker.exists()


def test_evaluate_refuses_a_code_payload(finished_run, tmp_path, capsys):
    _, run_dir = finished_run
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(run_dir / "config.yaml", folder / "config.yaml")
    marker = tmp_path / "pwned-evaluate"
    poisoned_checkpoint(folder / "last.pt", marker, run_dir / "last.pt")
    code, _, err = cli(capsys, "evaluate", "--checkpoint", folder / "last.pt", "--out", tmp_path / "eval", "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert "last.pt: not a readable checkpoint: refused" in lines[0] and "(posix.system)" in lines[0], err
    assert not marker.exists() and not (tmp_path / "eval").exists()


def test_resume_refuses_a_code_payload(finished_run, tmp_path, capsys):
    config, run_dir = finished_run
    resumed = tmp_path / "runs" / "safe" / "mcce-s0"
    resumed.mkdir(parents=True)
    shutil.copy(run_dir / "config.yaml", resumed / "config.yaml")
    marker = tmp_path / "pwned-resume"
    poisoned_checkpoint(resumed / "last.pt", marker, run_dir / "last.pt")
    code, _, err = cli(capsys, "run", "-c", config, "--out", tmp_path / "runs", "--quiet", "--no-report")
    assert code == 2 and "Traceback" not in err
    assert "last.pt: not a readable checkpoint: refused" in err.strip().splitlines()[-1], err
    assert not marker.exists() and not (resumed / "metrics.json").exists()


def test_yaml_object_tags_are_refused(tmp_path, capsys):
    marker = tmp_path / "pwned-yaml"
    config = tmp_path / "evil.yaml"
    config.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    code, _, err = cli(capsys, "run", "-c", config, "--out", tmp_path / "runs")
    assert code == 2 and err.startswith("error: ") and "not valid YAML" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- static scan
def _call_name(node: ast.Call) -> str:
    """``torch.load`` / ``eval`` / ``np.load`` ... as written at the call site."""
    parts, target = [], node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def _keyword(node: ast.Call, name: str):
    for kw in node.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def unsafe_calls(source: str) -> list[str]:
    """Every call that can execute code from data, as ``'<line>: <call>'``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        last = name.rsplit(".", 1)[-1]
        bad = (
            name in ("eval", "exec", "compile", "__import__")
            or (last in ("load", "loads") and name.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve"))
            or name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all")
            or (name == "yaml.load" and "Safe" not in ast.unparse(_keyword(node, "Loader") or ast.Constant(None)))
            or (last == "load" and name.split(".")[0] == "torch" and _keyword(node, "weights_only") is not True)
            or (name.split(".")[0] in ("np", "numpy") and _keyword(node, "allow_pickle") not in (None, False))
        )
        if bad:
            found.append(f"{node.lineno}: {name}")
    return found


def test_the_scan_finds_what_it_forbids():
    snippet = ("eval('1')\nexec('x=1')\npickle.load(f)\nyaml.load(s)\ntorch.load(p)\n"
               "torch.load(p, weights_only=False)\n"
               "np.load(p, allow_pickle=True)\nyaml.load(s, Loader=yaml.SafeLoader)\ntorch.load(p, weights_only=True)\n"
               "model.eval()\nnp.load(p)\n")
    assert [line.split(": ")[1] for line in unsafe_calls(snippet)] == [
        "eval", "exec", "pickle.load", "yaml.load", "torch.load", "torch.load", "np.load"]


def test_package_has_no_unsafe_loading_or_eval():
    problems = {str(path.relative_to(PACKAGE)): calls for path in sorted(PACKAGE.rglob("*.py"))
                if (calls := unsafe_calls(path.read_text()))}
    assert problems == {}
    # the one place checkpoints are read asks for weights only
    assert "weights_only=True" in (PACKAGE / "checkpoint.py").read_text()
