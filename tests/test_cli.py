"""The CLI entry point: help, version, and one-line errors."""
import subprocess
import sys

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
