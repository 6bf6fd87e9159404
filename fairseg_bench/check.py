"""The fairness regression gate: baselines of per-method fairness metrics and per-class IoU.

Reads results only (``metrics.json`` through :mod:`fairseg_bench.results`); never imports torch.

Baseline file (JSON, ``schema_version`` 1, written atomically)::

    {
      "schema_version": 1, "kind": "fairseg-bench-baseline",
      "config_hash": "...", "experiment": "...", "dataset": "...", "classes": [K names],
      "environment": {"torch": "...", "device": "..."}, "fairseg_bench": "0.1.0",
      "methods": {
        "<method label>": {
          "seeds": [0, 1, 2], "n_seeds": 3,
          "fairness": {metric: mean over seeds},            # IoU-scale metrics as fractions
          "fairness_per_seed": {metric: [value per seed]},
          "fairness_std": {metric: sample std over seeds (ddof=1) or null},
          "iou": [K means over seeds, null for a class absent everywhere],
          "iou_per_seed": [[K values] per seed],
          "iou_std": [K stds or null],
          "ci_halfwidth": {"fairness": {metric: w}, "iou": [K]} or null
        }, ...
      }
    }

Comparison (:func:`compare`), for every method and metric: ``delta = current - baseline``; the
*worsening* is ``-delta`` for metrics where higher is better (``miou``, ``sorted_*``, ``pct_*``,
``worst``, ``best``, and every per-class IoU) and ``+delta`` where lower is better (``std``,
``gap``, ``cov``, ``gini``). A metric fails when ``worsening > allowed + EPS``; an improvement
never fails. ``EPS = 1e-9`` (in fraction units, i.e. 1e-7 pp) absorbs float64 rounding, so a drop
exactly equal to the tolerance passes (``0.50 - 0.49`` is ``0.010000000000000009`` in float64)
while any drop a reader could see in the printed precision (0.01 pp) beyond it fails.

``allowed`` depends on the rule:

- ``fixed``: ``allowed = tolerance``.
- ``spread``: ``allowed = max(tolerance, h)`` with ``h`` the half-width of the two-sided 95 %
  Student-t interval of the difference of seed means, ``t(df) * s * sqrt(1/n_b + 1/n_c)``,
  ``s`` the pooled sample std of the per-seed values (only the side with ≥ 2 seeds when the
  other has one; ``df`` accordingly). A drop must then be outside the seeds' spread *and* beyond
  the tolerance; with one seed on both sides it falls back to ``fixed`` (with a note). Set the
  tolerances to 0 for a pure spread test.
- ``ci``: ``allowed = max(tolerance, sqrt(w_b**2 + w_c**2))`` with ``w`` the 95 % bootstrap CI
  half-widths over validation images (mean over seeds of each run's), stored in the baseline and
  computed for the current runs from their ``per_image`` counts. Treating the two as independent
  is conservative (both sides see the same images), which suits a gate that must not be flaky.

Default tolerances (fractions; percentage points in parentheses), each configurable:

- ``miou``, ``sorted_bottom``, ``sorted_top``, ``pct_*``: 0.005 (0.5 pp). These average over at
  least a quarter of the classes, so seed noise is small; 0.5 pp is about the smallest effect the
  TCE paper reports between methods (+0.4 pp over Focal, Table 3), so a larger loss is a real
  regression.
- ``std``: 0.005 (0.5 pp): a spread over all classes, as stable as the means.
- ``worst``, ``best``, ``gap``: 0.01 (1 pp): a single class decides them (two for ``gap``), so
  they move more from seed to seed.
- ``cov``, ``gini``: 0.01 (1 point on the x100 scale): ratios, a bit noisier than ``std``.
- per-class IoU: 0.02 (2 pp): one class alone, often a small or rare one, is the noisiest number.

A method in the baseline but missing from the runs fails (the gate cannot vouch for it); a method
in the runs but not in the baseline is a note, not a failure (add it with ``--update``). A class
whose IoU is undefined (NaN/null) on either side is skipped with a note.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fairseg_bench.core.fairness import FAIRNESS_KEYS
from fairseg_bench.errors import UserError
from fairseg_bench.results import RunResult, load_runs, read_json, write_json_atomic

BASELINE_SCHEMA_VERSION = 1
BASELINE_KIND = "fairseg-bench-baseline"
EPS = 1e-9
RULES = ("fixed", "spread", "ci")
CONFIDENCE = 0.95

LOWER_IS_BETTER = ("std", "gap", "cov", "gini")
#: every IoU-valued or ratio metric of ``fairness_metrics`` except the spreads (counts left out)
HIGHER_IS_BETTER = tuple(k for k in FAIRNESS_KEYS if k not in LOWER_IS_BETTER + ("n_classes", "k"))
METRICS = HIGHER_IS_BETTER + LOWER_IS_BETTER

DEFAULT_TOLERANCES = {
    "miou": 0.005,
    "sorted_bottom": 0.005,
    "sorted_top": 0.005,
    "pct_bottom_threshold": 0.005,
    "pct_bottom_mean": 0.005,
    "pct_top_threshold": 0.005,
    "pct_top_mean": 0.005,
    "worst": 0.01,
    "best": 0.01,
    "std": 0.005,
    "gap": 0.01,
    "cov": 0.01,
    "gini": 0.01,
}
DEFAULT_PER_CLASS_TOLERANCE = 0.02
BOOTSTRAP_RESAMPLES = 1000
# Where the float results come from: a difference is worth a note (bits may legitimately differ).
ENVIRONMENT_KEYS = ("torch", "device")
BOOTSTRAP_SEED = 0


# --------------------------------------------------------------------------- aggregation


def short_hash(config_hash: str) -> str:
    """The first 12 hex digits, enough to tell configs apart in a message."""
    return str(config_hash)[:12]



@dataclass
class MethodSummary:
    """One method's seed aggregate: the unit both a baseline and the current runs reduce to."""

    seeds: list[int]
    fairness: dict[str, float]  # mean over seeds
    fairness_per_seed: dict[str, list[float]]
    iou: np.ndarray  # (K,) mean over seeds, NaN for undefined
    iou_per_seed: np.ndarray  # (n_seeds, K)
    ci_fairness: dict[str, float] | None = None
    ci_iou: np.ndarray | None = None  # (K,)

    @classmethod
    def from_seeds(cls, seeds, fairness_per_seed: dict[str, list[float]], iou_per_seed: np.ndarray) -> "MethodSummary":
        """Aggregate per-seed values: means over the finite values."""
        return cls(
            seeds=list(seeds),
            fairness={m: _nanmean(v) for m, v in fairness_per_seed.items()},
            fairness_per_seed=fairness_per_seed,
            iou=np.array([_nanmean(col) for col in iou_per_seed.T]),
            iou_per_seed=iou_per_seed,
        )

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def fairness_values(self, metric: str) -> np.ndarray:
        return _finite(self.fairness_per_seed.get(metric, []))

    def iou_values(self, class_index: int) -> np.ndarray:
        return _finite(self.iou_per_seed[:, class_index])

    def to_json(self) -> dict:
        """The baseline's per-method record."""
        return {
            "seeds": list(self.seeds),
            "n_seeds": self.n_seeds,
            "fairness": dict(self.fairness),
            "fairness_per_seed": {m: list(v) for m, v in self.fairness_per_seed.items()},
            "fairness_std": {m: _std(v) for m, v in self.fairness_per_seed.items()},
            "iou": self.iou,
            "iou_per_seed": self.iou_per_seed,
            "iou_std": np.array([_std(col) for col in self.iou_per_seed.T]),
            "ci_halfwidth": None
            if self.ci_fairness is None
            else {"fairness": self.ci_fairness, "iou": self.ci_iou},
        }

    @classmethod
    def from_json(cls, record: dict) -> "MethodSummary":
        """Read a baseline record; the stored means are the baseline values."""
        ci = record.get("ci_halfwidth")
        return cls(
            seeds=[int(s) for s in record["seeds"]],
            fairness={m: _float(v) for m, v in record["fairness"].items()},
            fairness_per_seed={m: _floats(v) for m, v in record["fairness_per_seed"].items()},
            iou=np.array(_floats(record["iou"]), dtype=np.float64),
            iou_per_seed=np.array([_floats(row) for row in record["iou_per_seed"]], dtype=np.float64).reshape(
                len(record["seeds"]), len(record["iou"])
            ),
            ci_fairness=None if not ci else {m: _float(v) for m, v in ci["fairness"].items()},
            ci_iou=None if not ci else np.array(_floats(ci["iou"]), dtype=np.float64),
        )


def _float(value) -> float:
    return math.nan if value is None else float(value)


def _floats(values) -> list[float]:
    return [_float(v) for v in values]


def _finite(values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def _nanmean(values) -> float:
    arr = _finite(values)
    return float(arr.mean()) if arr.size else math.nan


def _std(values) -> float:
    """Sample std (ddof=1) of the finite values; NaN with fewer than two."""
    arr = _finite(values)
    return float(arr.std(ddof=1)) if arr.size >= 2 else math.nan


def _as_runs(runs) -> list[RunResult]:
    """Accept loaded runs or paths to load."""
    if isinstance(runs, (str, os.PathLike)):
        return load_runs(runs)
    runs = list(runs)
    if runs and not isinstance(runs[0], RunResult):
        return load_runs(*runs)
    if not runs:
        raise UserError("no runs given")
    return runs


def _run_fairness(run: RunResult) -> dict[str, float]:
    """The run's stored fairness metrics; computed from its IoUs only when the file lacks them."""
    stored = run.data.get("fairness") or {}
    if not all(m in stored for m in METRICS):
        from fairseg_bench.core.fairness import fairness_metrics

        stored = fairness_metrics(run.iou) | stored
    return {m: _float(stored[m]) for m in METRICS}


def _experiment_identity(runs: list[RunResult]) -> dict:
    """config_hash, classes, experiment and dataset shared by all runs, or a UserError."""
    hashes = {r.data.get("config_hash") for r in runs}
    if None in hashes:
        bad = next(r for r in runs if r.data.get("config_hash") is None)
        raise UserError(f"{bad.path}: no config_hash; the check needs runs written by `fairseg-bench run`")
    if len(hashes) > 1:
        raise UserError(
            f"the runs come from {len(hashes)} different configs ({', '.join(short_hash(h) for h in sorted(hashes))}); "
            "point RUNS at one experiment folder"
        )
    classes = runs[0].classes
    for run in runs[1:]:
        if run.classes != classes:
            raise UserError(f"{run.path} has a different class set from {runs[0].path}")
    first = runs[0].data
    return {
        "config_hash": hashes.pop(),
        "classes": classes,
        "experiment": first.get("experiment"),
        "dataset": first.get("dataset"),
        "environment": _environment(runs),
    }


def _environment(runs: list[RunResult]) -> dict:
    """torch version and device of the runs (None where unknown, ``"mixed"`` where they differ)."""
    env = {}
    for key in ENVIRONMENT_KEYS:
        values = {(r.data.get("environment") or {}).get(key) for r in runs}
        env[key] = values.pop() if len(values) == 1 else "mixed"
    return env


def summarize_runs(runs, *, bootstrap: bool = False) -> dict[str, MethodSummary]:
    """Group runs by method and aggregate over seeds (bootstrap CI half-widths when asked)."""
    runs = _as_runs(runs)
    _experiment_identity(runs)
    by_method: dict[str, list[RunResult]] = {}
    for run in sorted(runs, key=lambda r: (r.method, r.seed)):
        group = by_method.setdefault(run.method, [])
        if any(r.seed == run.seed for r in group):
            raise UserError(f"two runs of method {run.method} with seed {run.seed} ({group[0].path.parent}, {run.path.parent})")
        group.append(run)
    return {method: _summarize_method(group, bootstrap) for method, group in by_method.items()}


def _summarize_method(group: list[RunResult], bootstrap: bool) -> MethodSummary:
    fairness = [_run_fairness(r) for r in group]
    metrics = [m for m in METRICS if all(m in f for f in fairness)]
    summary = MethodSummary.from_seeds(
        [r.seed for r in group],
        {m: [f[m] for f in fairness] for m in metrics},
        np.stack([r.iou for r in group]),
    )
    if bootstrap:
        halfwidths = [_bootstrap_halfwidths(r) for r in group]
        if all(h is not None for h in halfwidths):
            summary.ci_fairness = {m: _nanmean([h[0].get(m, math.nan) for h in halfwidths]) for m in metrics}
            summary.ci_iou = np.array([_nanmean(col) for col in np.stack([h[1] for h in halfwidths]).T])
    return summary


def _bootstrap_halfwidths(run: RunResult):
    """95 % bootstrap CI half-widths over validation images: ``({metric: w}, iou_w (K,))``, or None.

    ``core.stats.bootstrap_ci`` with a fixed seed (the gate is deterministic) and the run's own
    full-set IoU as the fixed sorted-group ranking (as its ``metrics.json`` fairness uses). None
    when the run stores no ``per_image`` counts.
    """
    from fairseg_bench.core.stats import bootstrap_ci

    stats = run.per_image()
    if stats is None or stats["tp"].size == 0:
        return None
    ci = bootstrap_ci(stats, reference=run.iou, n_boot=BOOTSTRAP_RESAMPLES, confidence=CONFIDENCE, seed=BOOTSTRAP_SEED)
    half = {key: (np.asarray(v["high"], dtype=np.float64) - np.asarray(v["low"], dtype=np.float64)) / 2 for key, v in ci.items()}
    return {m: float(half[m]) for m in METRICS if m in half}, half["iou"]


# --------------------------------------------------------------------------- baseline file


def make_baseline(runs, *, bootstrap: bool = True) -> dict:
    """The baseline dict for ``runs`` (RunResults or paths): seed means, per-seed values, CIs.

    ``bootstrap`` adds 95 % bootstrap CI half-widths (for ``--rule ci``) when every run stores
    ``per_image`` counts.
    """
    from fairseg_bench import __version__

    runs = _as_runs(runs)
    identity = _experiment_identity(runs)
    summaries = summarize_runs(runs, bootstrap=bootstrap)
    return {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "kind": BASELINE_KIND,
        **identity,
        "fairseg_bench": __version__,
        "methods": {method: s.to_json() for method, s in summaries.items()},
    }


def write_baseline(path: str | os.PathLike, runs, *, bootstrap: bool = True) -> dict:
    """Write the baseline of ``runs`` to ``path`` atomically; returns it."""
    baseline = make_baseline(runs, bootstrap=bootstrap)
    write_json_atomic(path, baseline)
    return read_baseline(path)


_TOP_KEYS = {"schema_version": int, "config_hash": str, "classes": list, "methods": dict}
_METHOD_KEYS = {"seeds": list, "fairness": dict, "fairness_per_seed": dict, "iou": list, "iou_per_seed": list}


def read_baseline(path: str | os.PathLike) -> dict:
    """Read and validate a baseline file; anything malformed is a one-line ``UserError``."""
    data = read_json(path)
    if data.get("kind", BASELINE_KIND) != BASELINE_KIND:
        raise UserError(f"{path}: not a fairseg-bench baseline (kind {data.get('kind')!r})")
    _require(data, _TOP_KEYS, f"{path}")
    if data["schema_version"] != BASELINE_SCHEMA_VERSION:
        raise UserError(
            f"{path}: baseline schema version {data['schema_version']} is not supported "
            f"(expected {BASELINE_SCHEMA_VERSION}); rewrite it with `fairseg-bench check --update`"
        )
    k = len(data["classes"])
    for method, record in data["methods"].items():
        where = f"{path}: method {method}"
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected an object")
        _require(record, _METHOD_KEYS, where)
        n = len(record["seeds"])
        if len(record["iou"]) != k or len(record["iou_per_seed"]) != n or any(len(r) != k for r in record["iou_per_seed"]):
            raise UserError(f"{where}: iou/iou_per_seed sizes do not match {k} classes x {n} seeds")
        if any(not isinstance(v, list) or len(v) != n for v in record["fairness_per_seed"].values()):
            raise UserError(f"{where}: fairness_per_seed must hold {n} values per metric")
        ci = record.get("ci_halfwidth")
        if ci is not None and (not isinstance(ci, dict) or not isinstance(ci.get("fairness"), dict)
                               or not isinstance(ci.get("iou"), list) or len(ci["iou"]) != k):
            raise UserError(f"{where}: ci_halfwidth must be null or {{fairness: {{...}}, iou: [{k} values]}}")
        try:
            MethodSummary.from_json(record)
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"{where}: bad value ({exc})") from None
    return data


def _require(obj: dict, keys: dict, where: str) -> None:
    for key, kind in keys.items():
        if key not in obj:
            raise UserError(f"{where}: malformed baseline, missing key {key!r}")
        if not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            raise UserError(f"{where}: malformed baseline, {key!r} should be a {kind.__name__}")


# --------------------------------------------------------------------------- tolerances


def parse_tolerances(text: str | None) -> dict[str, float]:
    """``"worst=0.02,std=1pp"`` -> ``{"worst": 0.02, "std": 0.01}``; a ``pp`` suffix means points.

    The key ``all`` sets every fairness metric; named keys override it wherever they appear.
    """
    everything: dict[str, float] = {}
    named: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in (*METRICS, "all"):
            raise UserError(f"bad tolerance {item!r}: expected KEY=VALUE with KEY one of all, {', '.join(METRICS)}")
        if key == "all":
            everything = dict.fromkeys(METRICS, parse_tolerance_value(value, name=key))
        else:
            named[key] = parse_tolerance_value(value, name=key)
    return everything | named


def parse_tolerance_value(value: str | float, *, name: str = "tolerance") -> float:
    """A fraction (``0.01``) or percentage points (``1pp``) -> a non-negative fraction."""
    text = str(value).strip().lower()
    match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(pp)?", text)
    if not match:
        raise UserError(f"bad {name} value {value!r}: expected a fraction like 0.01 or points like 1pp")
    number = float(match.group(1))
    return number / 100 if match.group(2) else number


def resolve_tolerances(tolerances: dict[str, float] | None) -> dict[str, float]:
    """Defaults overridden by ``tolerances``; unknown keys and negative values are UserErrors."""
    merged = dict(DEFAULT_TOLERANCES)
    for key, value in (tolerances or {}).items():
        if key not in METRICS:
            raise UserError(f"unknown tolerance key {key!r}; choose from {', '.join(METRICS)}")
        if not value >= 0:
            raise UserError(f"tolerance for {key} must be >= 0, got {value}")
        merged[key] = float(value)
    return merged


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """One (method, metric) verdict; values are fractions, ``delta = current - baseline``."""

    method: str
    metric: str  # a fairness key, or the class name for per-class rows
    kind: str  # "fairness" | "class"
    baseline: float
    current: float
    allowed: float
    higher_is_better: bool

    @property
    def delta(self) -> float:
        return self.current - self.baseline

    @property
    def worsening(self) -> float:
        return -self.delta if self.higher_is_better else self.delta

    @property
    def skipped(self) -> bool:
        return not (math.isfinite(self.baseline) and math.isfinite(self.current))

    @property
    def passed(self) -> bool:
        return self.skipped or self.worsening <= self.allowed + EPS

    @property
    def label(self) -> str:
        return self.metric if self.kind == "fairness" else f"iou[{self.metric}]"

    def line(self) -> str:
        """One console line for a failure."""
        return (
            f"REGRESSION {self.method} {self.label}: {_pct(self.baseline)} -> {_pct(self.current)} "
            f"({_pp(self.delta)} pp, allowed {_pp(self.allowed, sign=False)} pp "
            f"{'drop' if self.higher_is_better else 'rise'})"
        )


@dataclass
class CheckResult:
    """Everything :func:`compare` found: rows, methods missing on either side, notes."""

    rule: str
    config_hash: str
    rows: list[Comparison] = field(default_factory=list)
    missing_methods: list[str] = field(default_factory=list)
    new_methods: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Comparison]:
        return [r for r in self.rows if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.missing_methods

    def failure_lines(self) -> list[str]:
        """One line per failing method/metric, missing methods first."""
        missing = [f"REGRESSION {m}: in the baseline but missing from the runs" for m in self.missing_methods]
        return missing + [r.line() for r in self.failures]

    def status_line(self) -> str:
        methods = sorted({r.method for r in self.rows})
        if self.passed:
            compared = sum(not r.skipped for r in self.rows)
            return (
                f"check passed: {len(methods)} method(s), {compared} comparisons within tolerance "
                f"(rule {self.rule}, config {short_hash(self.config_hash)})"
            )
        n = len(self.failures) + len(self.missing_methods)
        return f"check FAILED: {n} regression(s) (rule {self.rule}, config {short_hash(self.config_hash)})"

    def to_markdown(self, *, runs_label: str = "", baseline_label: str = "") -> str:
        """A Markdown summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
        return _markdown(self, runs_label, baseline_label)


def compare(
    runs,
    baseline: dict,
    tolerances: dict[str, float] | None = None,
    per_class_tolerance: float | None = None,
    rule: str = "fixed",
) -> CheckResult:
    """Compare ``runs`` (RunResults or paths) with a baseline dict, metric by metric.

    Args:
        runs: the current runs, one experiment (one ``config_hash``).
        baseline: as returned by :func:`read_baseline` or :func:`make_baseline`.
        tolerances: per-metric allowed worsening as fractions, overriding ``DEFAULT_TOLERANCES``.
        per_class_tolerance: allowed per-class IoU drop (fraction); default 0.02.
        rule: ``fixed``, ``spread`` or ``ci`` (see the module docstring).

    Raises:
        UserError: a baseline of another config or class set, an unknown rule or tolerance key,
            or ``rule="ci"`` without CI half-widths on either side.
    """
    if rule not in RULES:
        raise UserError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    tol = resolve_tolerances(tolerances)
    class_tol = DEFAULT_PER_CLASS_TOLERANCE if per_class_tolerance is None else float(per_class_tolerance)
    if not class_tol >= 0:
        raise UserError(f"per-class tolerance must be >= 0, got {per_class_tolerance}")
    runs = _as_runs(runs)
    identity = _experiment_identity(runs)
    _check_compatible(identity, baseline)
    current = summarize_runs(runs, bootstrap=rule == "ci")
    reference = {m: MethodSummary.from_json(rec) for m, rec in baseline["methods"].items()}
    result = CheckResult(rule=rule, config_hash=identity["config_hash"])
    theirs = baseline.get("environment") or {}
    for key in ENVIRONMENT_KEYS:
        ours = identity["environment"][key]
        if theirs.get(key) is not None and ours is not None and theirs[key] != ours:
            result.notes.append(
                f"baseline made with {key} {theirs[key]}, runs with {ours}: "
                "float results may differ within the tolerances"
            )
    result.missing_methods = sorted(set(reference) - set(current))
    result.new_methods = sorted(set(current) - set(reference))
    for method in result.new_methods:
        result.notes.append(f"{method}: not in the baseline, not checked (add it with --update)")
    for method in sorted(set(reference) & set(current)):
        _compare_method(result, method, reference[method], current[method], tol, class_tol, identity["classes"])
    return result


def _check_compatible(identity: dict, baseline: dict) -> None:
    if baseline["config_hash"] != identity["config_hash"]:
        raise UserError(
            f"baseline was made with config {short_hash(baseline['config_hash'])} but the runs use config "
            f"{short_hash(identity['config_hash'])}; rerun with the baseline's config or rewrite the baseline with --update"
        )
    theirs, ours = list(baseline["classes"]), identity["classes"]
    if theirs != ours:
        only_base = [c for c in theirs if c not in ours]
        only_runs = [c for c in ours if c not in theirs]
        detail = (
            f"only in baseline: {only_base or '-'}, only in runs: {only_runs or '-'}"
            if only_base or only_runs
            else "same names in another order"
        )
        raise UserError(f"baseline class set ({len(theirs)} classes) differs from the runs' ({len(ours)}): {detail}")


def _compare_method(result, method, base: MethodSummary, cur: MethodSummary, tol, class_tol, classes) -> None:
    if base.seeds != cur.seeds:
        result.notes.append(f"{method}: seeds {cur.seeds} compared with baseline seeds {base.seeds}")
    spread_fallback = False
    for metric in METRICS:
        if metric not in base.fairness or metric not in cur.fairness:
            result.notes.append(f"{method}: {metric} missing from the {'baseline' if metric not in base.fairness else 'runs'}, not compared")
            continue
        widen = _widening(result.rule, base, cur, metric=metric)
        spread_fallback |= widen is None and result.rule == "spread"
        result.rows.append(
            Comparison(
                method, metric, "fairness", base.fairness[metric], cur.fairness[metric],
                max(tol[metric], widen or 0.0), metric in HIGHER_IS_BETTER,
            )
        )
    for c, name in enumerate(classes):
        widen = _widening(result.rule, base, cur, class_index=c)
        row = Comparison(method, name, "class", base.iou[c], cur.iou[c], max(class_tol, widen or 0.0), True)
        if row.skipped:
            side = {(False, False): "on both sides", (False, True): "in the baseline", (True, False): "in the runs"}
            where = side[(math.isfinite(row.baseline), math.isfinite(row.current))]
            result.notes.append(f"{method}: IoU of class {name} undefined {where}, not compared")
        result.rows.append(row)
    if spread_fallback:
        result.notes.append(f"{method}: one seed on both sides, so the spread rule used the fixed tolerances")


def _widening(rule: str, base: MethodSummary, cur: MethodSummary, *, metric=None, class_index=None) -> float | None:
    """The rule's noise allowance for one metric (fraction), or None where the rule has none."""
    if rule == "fixed":
        return None
    if rule == "spread":
        if metric is not None:
            return spread_halfwidth(base.fairness_values(metric), cur.fairness_values(metric))
        return spread_halfwidth(base.iou_values(class_index), cur.iou_values(class_index))
    if base.ci_fairness is None:
        raise UserError("the baseline has no bootstrap CIs; rewrite it with --update from runs that store per_image counts")
    if cur.ci_fairness is None:
        raise UserError("rule ci needs per_image counts in every run's metrics.json")
    if metric is not None:
        wb, wc = base.ci_fairness.get(metric, math.nan), cur.ci_fairness.get(metric, math.nan)
    else:
        wb, wc = base.ci_iou[class_index], cur.ci_iou[class_index]
    return float(math.hypot(wb, wc)) if math.isfinite(wb) and math.isfinite(wc) else None


def spread_halfwidth(base_values, cur_values, confidence: float = CONFIDENCE) -> float | None:
    """Half-width of the Student-t interval of ``mean(cur) - mean(base)`` from the seeds' spread.

    Pooled sample variance over both sides (only the side with ≥ 2 seeds if the other has one);
    None when neither side has two seeds.
    """
    from scipy import stats

    b, c = np.asarray(base_values, dtype=np.float64), np.asarray(cur_values, dtype=np.float64)
    nb, nc = b.size, c.size
    if nb == 0 or nc == 0:
        return None
    sq = sum(((x - x.mean()) ** 2).sum() for x in (b, c) if x.size >= 2)
    df = sum(x.size - 1 for x in (b, c) if x.size >= 2)
    if df == 0:
        return None
    s = math.sqrt(sq / df)
    return float(stats.t.ppf(0.5 + confidence / 2, df) * s * math.sqrt(1 / nb + 1 / nc))


# --------------------------------------------------------------------------- presentation


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.2f}"


def _pp(x: float, sign: bool = True) -> str:
    if not math.isfinite(x):
        return "n/a"
    value = 100 * x
    if abs(value) < 0.005:  # no "-0.00"
        value = 0.0
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _status(row: Comparison) -> str:
    if row.skipped:
        return "– skipped"
    return "✅ pass" if row.passed else "❌ FAIL"


def _table(rows: list[Comparison], first: str) -> list[str]:
    lines = [
        f"| method | {first} | better | baseline | current | Δ (pp) | allowed (pp) | result |",
        "|---|---|:---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.metric} | {'↑' if r.higher_is_better else '↓'} | {_pct(r.baseline)} | {_pct(r.current)} "
            f"| {_pp(r.delta)} | {_pp(r.allowed, sign=False)} | {_status(r)} |"
        )
    return lines


def _markdown(result: CheckResult, runs_label: str, baseline_label: str) -> str:
    failures = len(result.failures) + len(result.missing_methods)
    head = "✅ pass" if result.passed else f"❌ {failures} regression(s)"
    lines = [f"## fairseg-bench check: {head}", ""]
    where = " · ".join(
        part
        for part in (
            f"runs `{runs_label}`" if runs_label else "",
            f"baseline `{baseline_label}`" if baseline_label else "",
            f"config `{short_hash(result.config_hash)}`",
            f"rule `{result.rule}`",
        )
        if part
    )
    lines += [
        where,
        "",
        "Values ×100 (IoU in percent); Δ = current − baseline in percentage points; "
        "allowed = the largest tolerated worsening (a drop where ↑ is better, a rise where ↓ is).",
        "",
    ]
    for method in result.missing_methods:
        lines.append(f"- ❌ **{method}**: in the baseline but missing from the runs")
    for note in result.notes:
        lines.append(f"- note: {note}")
    if result.missing_methods or result.notes:
        lines.append("")
    fairness = [r for r in result.rows if r.kind == "fairness"]
    classes = [r for r in result.rows if r.kind == "class"]
    lines += ["### Fairness metrics (mean over seeds)", ""] + _table(fairness, "metric") + [""]
    failed_classes = [r for r in classes if not r.passed]
    if failed_classes:
        lines += ["### Per-class IoU regressions", ""] + _table(failed_classes, "class") + [""]
    if classes:
        lines += [
            "<details><summary>Per-class IoU, all classes</summary>",
            "",
            *_table(classes, "class"),
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def append_summary(path: str | os.PathLike, markdown: str) -> None:
    """Append the summary (``$GITHUB_STEP_SUMMARY`` is appended to, by GitHub's convention)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(markdown + "\n")
