"""Bad input across every command: exit status 2, exactly one line on stderr naming the problem,
no traceback, and a pre-populated results folder left byte for byte as it was."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import call_main, fairseg
from support.configs import TINY
from support.fake_datasets import write_cityscapes, write_voc

MCCE_ONLY = TINY.replace("[mcce, tce]", "[mcce]")


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative path -> digest)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cityscapes_labels(size=(8, 8)) -> dict:
    """Two train and one val labelId maps of road (7), sidewalk (8) and car (26)."""
    label = np.full(size, 7, np.uint8)
    label[: size[0] // 2] = 8
    label[0, 0] = 26
    return {"train": {"aachen": [label, label]}, "val": {"lindau": [label]}}


def cityscapes_config(root: Path, name: str) -> str:
    return f"""
name: {name}
losses: [mcce]
data: {{dataset: cityscapes, root: {root}, train_options: {{crop_size: [8, 8]}}}}
model: {{name: unet_small}}
train: {{iters: 2, batch_size: 2, checkpoint_every: 1}}
eval: {{batch_size: 1, samples: 0}}
device: cpu
"""


class Bench:
    """A workspace holding finished runs (the results that must stay untouched) and inputs."""

    def __init__(self, root: Path):
        self.root = root
        self.results = root / "runs"
        self.config = root / "tiny.yaml"
        self.config.write_text(MCCE_ONLY)
        self.run = self.results / "tiny" / "mcce-s0"

    def yaml(self, name: str, text: str) -> Path:
        path = self.root / "cases" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.root / "cases" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def cityscapes(self, name: str, damage=None, labels=None) -> Path:
        """A fresh miniature Cityscapes tree, optionally damaged by ``damage(root)``."""
        root = write_cityscapes(self.root / "data" / name, labels or cityscapes_labels())
        if damage is not None:
            damage(root)
        return root

    def run_cityscapes(self, name: str, **tree) -> list:
        root = self.cityscapes(name, **tree)
        return ["run", "-c", self.yaml(name, cityscapes_config(root, name)), "--out", self.results, "--quiet"]

    def truncated_copy(self, name: str, source: Path, keep: float = 0.5) -> Path:
        data = source.read_bytes()
        return self.file(name, data[: int(len(data) * keep)])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    bench = Bench(tmp_path_factory.mktemp("bench"))
    out = fairseg("run", "-c", bench.config, "--out", bench.results, "--quiet", "--no-report")
    assert out.returncode == 0, out.stderr
    assert (bench.run / "metrics.json").is_file() and (bench.run / "last.pt").is_file()
    return bench


def _first(root: Path, pattern: str) -> Path:
    return sorted(root.rglob(pattern))[0]


def _corrupt_first(pattern: str):
    def damage(root):
        path = _first(root, pattern)
        path.write_bytes(path.read_bytes()[:40])  # a PNG header, then nothing
    return damage


def _resize_first_image(root: Path):
    path = _first(root / "leftImg8bit" / "train", "*.png")
    Image.fromarray(np.zeros((6, 10, 3), np.uint8)).save(path)


def _evaluate_with_config(b: Bench, name: str, config_text: str, checkpoint: bytes | None = None) -> list:
    """A run folder copy holding ``config_text`` (and the run's checkpoint, or ``checkpoint``)."""
    folder = b.root / "cases" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(config_text)
    (folder / "last.pt").write_bytes(checkpoint if checkpoint is not None else (b.run / "last.pt").read_bytes())
    return ["evaluate", "--checkpoint", folder / "last.pt", "--out", folder / "eval", "--quiet"]


def _metrics_json(b: Bench, name: str, edit) -> Path:
    import json

    data = json.loads((b.run / "metrics.json").read_text())
    edit(data)
    return b.file(f"{name}.json", json.dumps(data))


# id -> (build the arguments from the bench, a substring the one error line must contain)
CASES = {
    # run: losses, seeds, options
    "run unknown loss": (lambda b: ["run", "-c", b.config, "--losses", "mcce,nosuchloss"], "unknown loss 'nosuchloss'"),
    "run spec without value": (lambda b: ["run", "-c", b.config, "--losses", "tce:t="], "tce:t="),
    "run spec non-numeric t": (lambda b: ["run", "-c", b.config, "--losses", "tce:t=abc"], "abc"),
    "run spec unknown parameter": (lambda b: ["run", "-c", b.config, "--losses", "focal:beta=2"], "beta"),
    "run seeds not numbers": (lambda b: ["run", "-c", b.config, "--seeds", "x"], "seeds must be a non-empty list"),
    "run seeds repeated": (lambda b: ["run", "-c", b.config, "--seeds", "1,1"], "got '1,1'"),
    "run iters zero": (lambda b: ["run", "-c", b.config, "--iters", "0"], "train.iters must be a positive integer"),
    "run other config into results": (lambda b: ["run", "-c", b.config, "--batch-size", "2", "--out", b.results],
                                      "holds runs of a different config"),
    "run output under a file": (lambda b: ["run", "-c", b.config, "--out", b.file("plain-file", "x") / "sub"],
                                "plain-file"),
    "run no such config": (lambda b: ["run", "-c", b.root / "absent.yaml"], "no such config file"),
    # run: YAML types, ranges and shapes
    "yaml not a mapping": (lambda b: ["run", "-c", b.yaml("list", "- mcce\n- focal\n")], "must be a mapping"),
    "yaml section not a mapping": (lambda b: ["run", "-c", b.yaml("section", "train: 5\n")], "train must be a mapping"),
    "yaml unknown key": (lambda b: ["run", "-c", b.yaml("key", "train: {iterations: 5}\n")],
                         "unknown key train.iterations"),
    "yaml negative lr": (lambda b: ["run", "-c", b.yaml("lr", "optim: {lr: -0.1}\n")], "optim.lr must be a number > 0"),
    "yaml momentum above 1": (lambda b: ["run", "-c", b.yaml("mom", "optim: {momentum: 2}\n")], "optim.momentum"),
    "yaml bool for int": (lambda b: ["run", "-c", b.yaml("bool", "train: {batch_size: true}\n")], "train.batch_size"),
    "yaml string seeds": (lambda b: ["run", "-c", b.yaml("seeds", "seeds: [a]\n")], "seeds must be"),
    "yaml syntax": (lambda b: ["run", "-c", b.yaml("syntax", "train: {iters: [}\n")], "not valid YAML"),
    "yaml python tag": (lambda b: ["run", "-c", b.yaml("tag", "name: !!python/object/apply:os.getcwd []\n")],
                        "not valid YAML"),
    "yaml unknown model": (lambda b: ["run", "-c", b.yaml("model", MCCE_ONLY.replace("unet_small", "nosuchnet")),
                                      "--out", b.results], "nosuchnet"),
    "yaml unknown dataset": (lambda b: ["run", "-c", b.yaml("dataset", "data: {dataset: nosuchdata}\n"),
                                        "--out", b.results], "unknown dataset 'nosuchdata'"),
    "yaml unknown optimizer": (lambda b: ["run", "-c", b.yaml("optim", "optim: {name: lbfgs}\n")], "optim.name"),
    # run: dataset roots and files
    "root missing": (lambda b: ["run", "-c", "cityscapes_dlv3p_r101", "--data-root", b.root / "no-such-root",
                                "--out", b.results], "no-such-root"),
    "root half present": (lambda b: b.run_cityscapes("half", damage=lambda r: shutil.rmtree(r / "gtFine" / "val")),
                          "gtFine/val is missing"),
    "label outside class set": (lambda b: b.run_cityscapes(
        "outside", labels={"train": {"aachen": [np.full((8, 8), 200, np.uint8)]},
                           "val": {"lindau": [np.full((8, 8), 7, np.uint8)]}}),
        "label values [200]"),
    "label png corrupted": (lambda b: b.run_cityscapes("badlabel", damage=_corrupt_first("*_labelIds.png")),
                            "_labelIds.png"),
    "image png corrupted": (lambda b: b.run_cityscapes("badimage", damage=_corrupt_first("*_leftImg8bit.png")),
                            "_leftImg8bit.png"),
    "image and label sizes differ": (lambda b: b.run_cityscapes("sizes", damage=_resize_first_image),
                                     "image size 10x6 differs from its label"),
    # train
    "train unknown loss": (lambda b: ["train", "-c", b.config, "--loss", "nosuchloss", "--out", b.results],
                           "unknown loss"),
    "train malformed spec": (lambda b: ["train", "-c", b.config, "--loss", "tce:t", "--out", b.results], "tce:t"),
    # evaluate
    "evaluate missing checkpoint": (lambda b: ["evaluate", "--checkpoint", b.root / "absent.pt"], "no such checkpoint"),
    "evaluate truncated checkpoint": (lambda b: _evaluate_with_config(
        b, "trunc", (b.run / "config.yaml").read_text(), (b.run / "last.pt").read_bytes()[:2000]),
        "not a readable checkpoint"),
    "evaluate without config": (lambda b: ["evaluate", "--checkpoint", b.file("lonely/last.pt", b"x")], "config.yaml"),
    "evaluate bad config beside": (lambda b: _evaluate_with_config(b, "badcfg", "train: {iters: -1}\n"), "train.iters"),
    "evaluate unknown split": (lambda b: ["evaluate", "--checkpoint", b.run / "last.pt", "--split", "nosplit",
                                          "--out", b.root / "cases" / "split"], "nosplit"),
    # metrics
    "metrics empty csv": (lambda b: ["metrics", b.file("empty.csv", "")], "empty file"),
    "metrics nan everywhere": (lambda b: ["metrics", b.file("nan.csv", "method,a,b\nx,50,60\ny,nan,NaN\n")],
                               "method 'y' has no IoU value"),
    "metrics nan in json confusion": (lambda b: ["metrics", b.file("cm.json",
                                                                   '{"x": {"confusion_matrix": [[1, NaN], [0, 2]]}}')],
                                      "confusion matrix"),
    "metrics truncated metrics.json": (lambda b: ["metrics", b.truncated_copy("trunc-metrics.json",
                                                                              b.run / "metrics.json")],
                                       "not valid JSON"),
    # report
    "report no runs": (lambda b: ["report", b.root / "cases", "--out", b.root / "rep"], "no "),
    "report truncated metrics.json": (lambda b: ["report", b.truncated_copy("tm/metrics.json", b.run / "metrics.json"),
                                                 "--out", b.root / "rep"], "not valid JSON"),
    "report nan iou": (lambda b: ["report",
                                  _metrics_json(b, "nan-iou", lambda d: d["iou"].__setitem__(2, float("nan"))),
                                  "--out", b.root / "rep"], "iou of class 'building' is nan"),
    "check iou above one": (lambda b: ["check", _metrics_json(b, "big-iou", lambda d: d["iou"].__setitem__(0, 1.5)),
                                       "--baseline", b.root / "cases" / "new-baseline.json", "--update"],
                            "iou of class 'road' is 1.5"),
    "report bad format": (lambda b: ["report", b.results, "--format", "pdf", "--out", b.root / "rep"], "pdf"),
    "report unknown reference": (lambda b: ["report", b.results, "--reference", "nosuch", "--out", b.root / "rep"],
                                 "nosuch"),
    # check
    "check truncated baseline": (lambda b: ["check", b.results, "--baseline", b.file("base.json", '{"kind": "fairseg')],
                                 "not valid JSON"),
    "check missing baseline": (lambda b: ["check", b.results, "--baseline", b.root / "absent.json"], "no such file"),
    "check negative tolerance": (lambda b: ["check", b.results, "--baseline", b.file("b2.json", "{}"),
                                            "--tolerance", "worst=-1"], "worst"),
    # datasets
    "datasets index missing root": (lambda b: ["datasets", "index", "--dataset", "cityscapes",
                                               "--root", b.root / "nothing", "--cache", b.root / "cache"], "nothing"),
    "datasets index bad label": (lambda b: ["datasets", "index", "--dataset", "voc", "--cache", b.root / "cache",
                                            "--root", write_voc(b.root / "data" / "voc",
                                                                {"train": [np.full((4, 4), 30, np.uint8)],
                                                                 "val": [np.zeros((4, 4), np.uint8)]})],
                                 "label values [30]"),
}


# Found only when a training batch is read: the runner's status line for the run comes first.
MID_RUN = {"image png corrupted", "image and label sizes differ"}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_touches_no_results(bench, capsys, monkeypatch, case):
    build, message = CASES[case]
    monkeypatch.chdir(bench.root)  # a relative default output folder would land here, never in the tree
    monkeypatch.delenv("FAIRSEG_BENCH_DEBUG", raising=False)
    args = build(bench)
    before = checksums(bench.results)
    code, _, err = call_main(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2, (code, err)
    assert "Traceback" not in err
    if case in MID_RUN:
        status, lines = lines[:-1], lines[-1:]
        assert all(line.startswith(str(bench.results)) and ": training " in line for line in status), err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], err
    after = checksums(bench.results)
    assert {k: after.get(k) for k in before} == before  # nothing changed or removed


@pytest.mark.parametrize("case", ["run unknown loss", "evaluate truncated checkpoint", "metrics empty csv",
                                  "check truncated baseline"])
def test_bad_input_in_a_subprocess(bench, case):
    """The installed entry point behaves the same outside pytest (no traceback, one line)."""
    build, message = CASES[case]
    before = checksums(bench.results)
    out = fairseg(*build(bench))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and message in lines[0], out.stderr
    assert checksums(bench.results) == before

