"""Running the CLI from tests: in this process (fast) or as a subprocess (as users and CI do)."""
import os
import subprocess
import sys

import pytest


def call_main(capsys, *args) -> tuple[int, str, str]:
    """``fairseg_bench.cli.main`` in this process: (exit status, stdout, stderr)."""
    from fairseg_bench.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def fairseg(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """``python -m fairseg_bench ARGS`` in a subprocess, one torch thread, no debug tracebacks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FAIRSEG_BENCH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "fairseg_bench", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)
