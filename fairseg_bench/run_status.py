"""Where each run stands: finished, held by a live process, and its status record.

Two facts decide what is done with a run folder, and every reader (the runner, the launchers,
``fairseg-bench status``, the report's list of unfinished runs) asks them here:

- **finished** (:func:`is_finished`): a readable ``metrics.json``, the run's last file (of the
  given config hash, when one is given); a damaged one is not trusted and the run is evaluated again;
- **held** (:func:`run_lock`): a lock file ``.lock`` in the run folder, created with O_EXCL and
  holding ``pid host [scheduler job]``. A second process skips a run whose holder lives; a dead
  pid's lock is taken over, and so is the lock of a requeued Slurm task's earlier attempt.

The status record ``<out>/<experiment>/.sweep/<run>.json`` holds ``state`` (``queued``,
``running``, ``done`` or ``failed``), ``step`` and ``total``, the ``pid`` and ``host`` of the
process training it, the ``log`` file a launcher sends its output to, ``precision`` (what the run
trains in there, e.g. ``bfloat16 (native)``), ``error`` for a failed run, the scheduler's
``job_id`` and ``updated`` (a Unix time), written atomically. The runner writes it as a run
starts, at every checkpoint and at the end; launchers write ``queued`` at submission and read it
to print one progress line per change; ``fairseg-bench status`` reads it. It never decides
anything: it is for display.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from fairseg_bench.errors import UserError
from fairseg_bench.results import METRICS_FILE, read_record

SWEEP_DIR = ".sweep"
STATES = ("queued", "running", "done", "failed")
LOCK = ".lock"


# ----------------------------------------------------------------------------- finished
def is_finished(run_dir: Path, digest: str | None = None) -> bool:
    """A readable ``metrics.json`` in ``run_dir`` (written by the config of hash ``digest``, when given)."""
    if not (Path(run_dir) / METRICS_FILE).is_file():
        return False
    try:
        record = read_record(run_dir)
    except UserError as exc:  # truncated or damaged: not trusted, the run is evaluated again
        print(f"warning: {exc}; not counted as finished", file=sys.stderr, flush=True)
        return False
    return digest is None or record.get("config_hash") == digest


# ----------------------------------------------------------------------------- who holds a run
def job_id() -> str:
    """The scheduler's id for this task (``<array>_<task>``, stable across a Slurm requeue), or ''."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array:
        return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return os.environ.get("SLURM_JOB_ID", "")


def lock_text() -> str:
    """A run lock's content, ``pid host [job]`` (a lock holding a bare pid is read as this host's)."""
    return " ".join(filter(None, [str(os.getpid()), socket.gethostname(), job_id()]))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder_alive(text: str) -> bool:
    """Whether a lock's holder may still run: a live pid on this host, or any process of another
    host, unless it is this very scheduler task (a requeued task takes its own lock back).

    Raises ValueError on a lock that is not ``pid [host [job]]``.
    """
    pid, host, job = (text.split() + ["", "", ""])[:3]
    pid = int(pid or 0)
    if job and job == job_id():
        return False
    if host and host != socket.gethostname():
        return True  # cannot be checked from here
    return bool(pid) and pid_alive(pid)


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (an empty lock younger than 10 s counts: its
    creator has yet to write its pid); a lock that cannot be read holds nothing."""
    path = Path(run_dir) / LOCK
    try:
        text = path.read_text().strip()
        if not text:
            return time.time() - path.stat().st_mtime < 10
        return lock_holder_alive(text)
    except (OSError, ValueError):
        return False


@contextmanager
def run_lock(run_dir: Path):
    """Yield True while this process holds the run's lock, False if a live process holds it."""
    path = Path(run_dir) / LOCK
    fd = _create_lock(path)
    if fd is None:
        yield False
        return
    with os.fdopen(fd, "w") as f:
        f.write(lock_text())
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)


def _create_lock(path: Path) -> int | None:
    """The new lock file's descriptor, a stale lock taken over first; None while a live process holds it."""
    for _ in range(2):
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if is_locked(path.parent):
                return None
            path.unlink(missing_ok=True)  # stale: its process is gone
    return None


# ----------------------------------------------------------------------------- the status record
def status_file(run_dir: Path) -> Path:
    """``<experiment>/.sweep/<run>.json`` for the run folder ``<experiment>/<run>``."""
    run_dir = Path(run_dir)
    return run_dir.parent / SWEEP_DIR / f"{run_dir.name}.json"


def log_file(run_dir: Path) -> Path:
    """``<experiment>/.sweep/<run>.log``: where a launcher sends the run's output."""
    run_dir = Path(run_dir)
    return run_dir.parent / SWEEP_DIR / f"{run_dir.name}.log"


def read_status(run_dir: Path) -> dict:
    """The run's status record, or ``{}`` when there is none (or it cannot be read)."""
    try:
        data = json.loads(status_file(run_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_status(run_dir: Path, state: str, **fields) -> None:
    """Merge ``fields`` into the run's record with ``state``; a failure to write only costs the display."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    record = read_status(run_dir)
    if state in ("queued", "running") and record.get("state") != state:
        record.pop("error", None)  # a new attempt
    record.update(fields, state=state, updated=time.time())
    if state == "running":
        record.update(pid=os.getpid(), host=socket.gethostname())
        if job_id():
            record["job_id"] = job_id()
    path = status_file(run_dir)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:  # a rename, without fsync: a display record, rewritten often, need not survive a power cut
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- a sweep's table
def _run_names(experiment: Path) -> list[str]:
    names = {d.name for d in experiment.iterdir() if d.is_dir() and not d.name.startswith(".")
             and any((d / f).exists() for f in ("config.yaml", "last.pt", LOCK, METRICS_FILE))}
    names |= {f.stem for f in (experiment / SWEEP_DIR).glob("*.json") if f.stem != "sweep"}
    return sorted(names)


def run_row(run_dir: Path) -> dict:
    """``run, state, step, precision, where, note`` of one run, from its files (no torch, no lock taken)."""
    record = read_status(run_dir)
    step = record.get("step")
    total = record.get("total")
    where = record.get("host", "")
    if record.get("job_id"):
        where = f"job {record['job_id']}" + (f" on {where}" if where else "")
    note = record.get("error") or record.get("log") or ""
    if is_finished(run_dir):
        state, step = "done", total or step
    elif is_locked(run_dir):
        state = "running"
    elif record.get("state") in ("failed", "queued"):
        state = record["state"]
    elif record.get("state") == "running" or (run_dir / "last.pt").is_file():
        state, note = "stopped", note or "resumes from last.pt when run again"
    else:
        state = "queued" if record else "not started"
    shown = f"{step}/{total}" if step is not None and total else ("" if step is None else str(step))
    return {"run": run_dir.name, "state": state, "step": shown or "-", "precision": record.get("precision") or "-",
            "where": where or "-", "note": note}


def mark_queued(run_dirs, **fields) -> None:
    """Record runs as queued, except those done or held by a live process."""
    for run_dir in run_dirs:
        if run_row(Path(run_dir))["state"] not in ("done", "running"):
            write_status(run_dir, "queued", **fields)


def sweep_rows(out: Path) -> list[dict]:
    """A row per run under ``out``: an experiment's folder, or an output folder of experiments."""
    out = Path(out)
    rows = [run_row(out / name) for name in _run_names(out)]
    if rows:
        return rows
    for experiment in sorted(d for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for name in _run_names(experiment):
            rows.append({**run_row(experiment / name), "run": f"{experiment.name}/{name}"})
    return rows
