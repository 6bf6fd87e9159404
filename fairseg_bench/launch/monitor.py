"""Following the runs of a sweep: one progress line per change, and who failed where."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from fairseg_bench.run_status import is_finished, read_status


def log(message: str) -> None:
    from fairseg_bench.runner import log as runner_log

    runner_log(message)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: the loss spec as given, its label, the seed and its folder."""

    loss: str
    label: str
    seed: int
    run_dir: Path

    @property
    def name(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class Failure:
    """A run that did not finish: why, and where its output went."""

    name: str
    reason: str
    log: Path | None


class Progress:
    """Prints a run's line when it starts, reaches a new checkpoint step, finishes or fails."""

    def __init__(self, specs: list[RunSpec]):
        self.total = len(specs)
        self.width = max((len(s.name) for s in specs), default=0)
        self.last_step: dict[str, int] = {}
        self.finished = 0

    def line(self, spec: RunSpec, text: str) -> None:
        log(f"[{self.finished}/{self.total} done] {spec.name:<{self.width}}  {text}")

    def started(self, spec: RunSpec, where: str) -> None:
        self.line(spec, f"started ({where})")

    def poll(self, spec: RunSpec) -> None:
        """A line if the run's status record shows a step it has not shown yet."""
        record = read_status(spec.run_dir)
        step = record.get("step")
        if record.get("state") == "running" and isinstance(step, int) and step != self.last_step.get(spec.name, 0):
            self.last_step[spec.name] = step
            self.line(spec, f"step {step}/{record.get('total', '?')}")

    def ended(self, spec: RunSpec, failure: Failure | None, seconds: float | None = None) -> None:
        self.finished += 1
        if failure is None and not is_finished(spec.run_dir):
            self.line(spec, "skipped: another process holds it (see its log)")
        elif failure is None:
            took = f" in {seconds:.0f} s" if seconds is not None else ""
            self.line(spec, f"finished{took}")
        else:
            where = f"; log: {failure.log}" if failure.log else ""
            self.line(spec, f"FAILED: {failure.reason}{where}")


def sleep(seconds: float = 0.5) -> None:
    time.sleep(seconds)
