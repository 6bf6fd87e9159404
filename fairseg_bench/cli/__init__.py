"""Command-line interface: a click group whose sub-commands live in their own modules.

Sub-commands are imported only when invoked (click's lazy-group pattern), so ``--help`` and
``metrics``/``report``/``check`` never pay for importing torch.
"""
from __future__ import annotations

import os
import sys
from importlib import import_module

import click

from fairseg_bench import __version__
from fairseg_bench.errors import UserError

# command name -> "module:attribute"
COMMANDS = {
    "run": "fairseg_bench.cli.run:run",
    "train": "fairseg_bench.cli.run:train",
    "evaluate": "fairseg_bench.cli.evaluate:evaluate",
    "metrics": "fairseg_bench.cli.metrics:metrics",
    "datasets": "fairseg_bench.cli.datasets:datasets",
    "report": "fairseg_bench.cli.report:report",
    "check": "fairseg_bench.cli.check:check",
    "presets": "fairseg_bench.cli.presets:presets",
    "status": "fairseg_bench.cli.status:status",
    "doctor": "fairseg_bench.cli.doctor:doctor",
}


class LazyGroup(click.Group):
    """A group that imports each sub-command's module on first use."""

    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        try:
            return getattr(import_module(module), attr)
        except (ImportError, AttributeError):
            if os.environ.get("FAIRSEG_BENCH_DEBUG"):
                raise
            return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fairseg-bench")
def cli():
    """Fairness across classes in semantic segmentation: train, evaluate, compare, gate."""


# OSErrors that are not about a file the user named (sockets, processes, timeouts): internal errors.
_NOT_ABOUT_FILES = (ConnectionError, TimeoutError, BlockingIOError, ChildProcessError, InterruptedError)


def main(argv=None):
    """Entry point: user mistakes become one line on stderr and exit status 2, never a traceback.

    A user mistake is a ``UserError`` or an ``OSError`` about a file (missing, unreadable,
    corrupt, a full disk); anything else, a ``KeyError`` or ``ValueError`` included, is a bug in
    fairseg-bench and shows its traceback. Set
    FAIRSEG_BENCH_DEBUG=1 to see the traceback of user mistakes too.
    """
    try:
        rv = cli.main(args=argv, prog_name="fairseg-bench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        # one line, like every other user mistake; click's usage block would make it several
        command = exc.ctx.command_path if exc.ctx else "fairseg-bench"
        click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (UserError, OSError) as exc:
        if isinstance(exc, _NOT_ABOUT_FILES) or os.environ.get("FAIRSEG_BENCH_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        click.echo(f"error: {message}", err=True)
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)
