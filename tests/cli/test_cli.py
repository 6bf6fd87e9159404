"""The CLI entry point: help, version, and one-line errors."""
import subprocess
import sys

import pytest

from fairseg_bench import __version__


def fairseg(*args):
    return subprocess.run([sys.executable, "-m", "fairseg_bench", *args], capture_output=True, text=True)


def test_help_and_version():
    out = fairseg("--help")
    assert out.returncode == 0 and "Usage: fairseg-bench" in out.stdout
    out = fairseg("--version")
    assert out.returncode == 0 and __version__ in out.stdout


def test_unknown_command_is_a_usage_error():
    out = fairseg("no-such-command")
    assert out.returncode == 2 and "No such command" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_bad_option_value_is_one_line():
    out = fairseg("train", "--seed", "-1")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("error: ") and "--seed" in out.stderr


def test_run_help_lists_every_registered_loss():
    from fairseg_bench.loss_specs import available_losses

    out = fairseg("run", "--help")
    listed = [line.split()[0].split(":")[0] for line in out.stdout.split("Loss specs:")[1].strip().splitlines()]
    assert out.returncode == 0 and listed == available_losses()


def _generic_folders(tmp_path):
    """A one-image generic label folder, its prediction folder and class file."""
    import numpy as np
    from PIL import Image

    label = np.zeros((8, 8), np.uint8)
    label[4:] = 1
    for folder in ("gt", "pred"):
        (tmp_path / folder).mkdir()
        Image.fromarray(label).save(tmp_path / folder / "x.png")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    return ["--predictions", tmp_path / "pred", "--labels", tmp_path / "gt", "--classes", tmp_path / "classes.txt"]


def test_workers_means_the_same_in_every_command(tmp_path, capsys):
    """0 = in this process, N = N worker processes, below 0 a usage error: datasets index and evaluate alike."""
    from support.cli import call_main

    evaluate = ["evaluate", *_generic_folders(tmp_path), "--out", tmp_path / "m.json", "--quiet"]
    index = ["datasets", "index", "--dataset", "synthetic", "--num-images", "2", "--cache", tmp_path / "cache"]
    for command in (evaluate, index):
        code, _, err = call_main(capsys, *command, "--workers", "-1")
        assert code == 2 and "--workers" in err and len(err.strip().splitlines()) == 1, err
        code, _, err = call_main(capsys, *command, "--workers", "0")
        assert code == 0, err
    assert (tmp_path / "m.json").is_file()


@pytest.mark.parametrize("given, message", [
    ([], "give exactly one of --checkpoint FILE or --predictions DIR"),
    (["--checkpoint", "x.pt", "--predictions", "p"], "give exactly one of --checkpoint FILE or --predictions DIR"),
    (["--checkpoint", "x.pt", "--workers", "2"], "--workers applies to --predictions only"),
    (["--checkpoint", "x.pt", "--boundary"], "--boundary applies to --predictions only"),
    (["--predictions", "p", "--device", "cpu"], "--device applies to --checkpoint only"),
    (["--predictions", "p", "--save-predictions", "q"], "--save-predictions applies to --checkpoint only"),
])
def test_evaluate_refuses_the_other_sources_options(capsys, given, message):
    from support.cli import call_main

    code, out, err = call_main(capsys, "evaluate", *given)
    assert (code, out, err) == (2, "", f"error: {message}\n")


@pytest.mark.parametrize("value, message", [
    ("nope.txt", "--classes nope.txt: neither a class file (one name a line) nor a dataset name"),
    ("camvid", "--classes camvid: a dataset's labels are read with --dataset camvid"),
    ("empty.txt", "--classes empty.txt: no class names in the file"),
])
def test_evaluate_classes_is_checked_as_every_classes_option(tmp_path, capsys, monkeypatch, value, message):
    from support.cli import call_main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("\n")
    options = _generic_folders(tmp_path)
    code, _, err = call_main(capsys, "evaluate", *options[:-1], value, "--quiet")
    assert code == 2 and err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1, err
