"""The verdicts: every method's fairness metrics and per-class IoU against the baseline.

``delta = current - baseline`` in percentage points; the *worsening* is ``-delta`` where higher is
better and ``+delta`` for ``std``, ``gap``, ``cov``, ``gini``. A number fails when
``worsening > allowed + EPS``; an improvement never fails. ``EPS = 1e-7`` pp absorbs float64
rounding, so a drop exactly equal to the tolerance passes.

``allowed`` by rule:

- ``fixed``: the tolerance (``2pp``, or ``5%`` of the baseline value).
- ``spread``: ``max(tolerance, h)``, ``h`` the half-width of the 95 % Student-t interval of the
  difference of seed means (``core.stats.spread_halfwidth``); with one seed on both sides it falls
  back to ``fixed`` with a note.
- ``ci``: ``max(tolerance, sqrt(w_b² + w_c²))``, ``w`` the half-widths of the summary's 95 %
  intervals (bootstrap over images and seeds) stored in the baseline and computed for the runs.

A method in the baseline but missing from the runs fails; a method only in the runs is a note.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from fairseg_bench.check.baseline import BOOTSTRAP_RESAMPLES, ENVIRONMENT_KEYS, identity, short_hash
from fairseg_bench.check.tolerances import (
    DEFAULT_PER_CLASS_TOLERANCE,
    GATED,
    LOWER_IS_BETTER,
    OPTIONAL,
    parse_tolerance_value,
    resolve_tolerances,
)
from fairseg_bench.core.stats import spread_halfwidth
from fairseg_bench.errors import UserError
from fairseg_bench.results.read import Results
from fairseg_bench.results.summary import IMAGE_KEYS, summarize

EPS = 1e-7
RULES = ("fixed", "spread", "ci")


def _pp(x: float, sign: bool = True) -> str:
    if not math.isfinite(x):
        return "n/a"
    x = 0.0 if abs(x) < 0.005 else x  # no "-0.00"
    return f"{x:+.2f}" if sign else f"{x:.2f}"


def _percent_text(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.2f}"


@dataclass(frozen=True)
class Comparison:
    """One (method, number) verdict in percent; ``delta = current - baseline``."""

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
        return (f"REGRESSION {self.method} {self.label}: "
                f"{_percent_text(self.baseline)} -> {_percent_text(self.current)} "
                f"({_pp(self.delta)} pp, allowed {_pp(self.allowed, sign=False)} pp "
                f"{'drop' if self.higher_is_better else 'rise'})")


@dataclass
class CheckResult:
    """Everything :func:`compare` found: rows, methods missing on either side, notes."""

    rule: str
    config_hash: str
    reference: str = ""
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
        """One line per failing method/number, missing methods first."""
        missing = [f"REGRESSION {m}: in the baseline but missing from the runs" for m in self.missing_methods]
        return missing + [r.line() for r in self.failures]

    def status_line(self) -> str:
        methods = sorted({r.method for r in self.rows})
        where = f"rule {self.rule}, reference {self.reference}, config {short_hash(self.config_hash)}"
        if self.passed:
            compared = sum(not r.skipped for r in self.rows)
            return f"check passed: {len(methods)} method(s), {compared} comparisons within tolerance ({where})"
        return f"check FAILED: {len(self.failures) + len(self.missing_methods)} regression(s) ({where})"


def compare(results: Results, baseline: dict, tolerances: dict | None = None, per_class_tolerance=None,
            rule: str = "fixed", strict: bool = False, groups=None) -> CheckResult:
    """Compare ``results`` with a baseline dict (from ``read_baseline``), number by number.

    ``groups``: the image groups whose worst group is gated (a ``--groups`` grouping; None: the
    records' own ``image_attributes``), as when the baseline was written.

    Raises:
        UserError: a baseline of another config or class set, a reference missing from the runs,
            an unknown rule or tolerance key, or ``rule="ci"`` without intervals on either side.
    """
    if rule not in RULES:
        raise UserError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    tol = resolve_tolerances(tolerances)
    class_tol = DEFAULT_PER_CLASS_TOLERANCE if per_class_tolerance is None else parse_tolerance_value(
        per_class_tolerance, name="--per-class-tolerance")
    ours = identity(results)
    _check_compatible(ours, baseline)
    summary = summarize(results, baseline["reference"], fraction=baseline["fraction"],
                        n_boot=BOOTSTRAP_RESAMPLES if rule == "ci" else 0, strict=strict, groups=groups)
    from fairseg_bench.check.baseline import method_record

    current = {m: method_record(summary, m) for m in summary.methods}
    result = CheckResult(rule=rule, config_hash=ours["config_hash"], reference=summary.reference,
                         notes=list(summary.warnings))
    theirs = baseline.get("environment") or {}
    for key in ENVIRONMENT_KEYS:
        mine = ours["environment"][key]
        if theirs.get(key) is not None and mine is not None and theirs[key] != mine:
            result.notes.append(f"baseline made with {key} {theirs[key]}, runs with {mine}: "
                                "float results may differ within the tolerances")
    reference = baseline["methods"]
    result.missing_methods = sorted(set(reference) - set(current))
    result.new_methods = sorted(set(current) - set(reference))
    result.notes += [f"{m}: not in the baseline, not checked (add it with --update)" for m in result.new_methods]
    for method in sorted(set(reference) & set(current)):
        _compare_method(result, method, reference[method], current[method], tol, class_tol)
    return result


def _check_compatible(ours: dict, baseline: dict) -> None:
    if baseline["config_hash"] != ours["config_hash"]:
        raise UserError(f"baseline was made with config {short_hash(baseline['config_hash'])} but the runs use config "
                        f"{short_hash(ours['config_hash'])}; rerun with the baseline's config or rewrite the baseline "
                        "with --update")
    theirs, classes = list(baseline["classes"]), ours["classes"]
    if theirs != classes:
        only_base = [c for c in theirs if c not in classes]
        only_runs = [c for c in classes if c not in theirs]
        detail = (f"only in baseline: {only_base or '-'}, only in runs: {only_runs or '-'}"
                  if only_base or only_runs else "same names in another order")
        raise UserError(f"baseline class set ({len(theirs)} classes) differs from the runs' ({len(classes)}): {detail}")


def _none_to_nan(x) -> float:
    return math.nan if x is None else float(x)


def _compare_method(result: CheckResult, method: str, base: dict, cur: dict, tol: dict, class_tol) -> None:
    if base["seeds"] != cur["seeds"]:
        result.notes.append(f"{method}: seeds {cur['seeds']} compared with baseline seeds {base['seeds']}")
    fallback = False
    image_keys = [k for k in IMAGE_KEYS if k in cur["fairness"]]
    if image_keys and not any(k in base["fairness"] for k in image_keys):
        result.notes.append(f"{method}: the baseline has no image-level metrics; rewrite it with --update to gate them")
    new_keys = [k for k in OPTIONAL if k not in IMAGE_KEYS and k in cur["fairness"] and k not in base["fairness"]]
    if new_keys:
        result.notes.append(f"{method}: the baseline has no {', '.join(new_keys)}; "
                            "rewrite it with --update to gate them")
    for metric in GATED:
        if metric in OPTIONAL and (metric not in base["fairness"] or metric not in cur["fairness"]):
            continue  # gated only where both sides have it (per-image counts, Boundary IoU counts, groups)
        if metric not in base["fairness"]:
            result.notes.append(f"{method}: {metric} missing from the baseline, not compared")
            continue
        b, c = _none_to_nan(base["fairness"][metric]), _none_to_nan(cur["fairness"][metric])
        widen = _widening(result.rule, base, cur, "fairness", metric)
        fallback |= widen is None and result.rule == "spread"
        allowed = max(tol[metric].allowed(b) if math.isfinite(b) else 0.0, widen or 0.0)
        result.rows.append(Comparison(method, metric, "fairness", b, c, allowed, metric not in LOWER_IS_BETTER))
    for name in base["iou"]:
        b, c = _none_to_nan(base["iou"][name]), _none_to_nan(cur["iou"].get(name))
        widen = _widening(result.rule, base, cur, "iou", name)
        row = Comparison(method, name, "class", b, c, max(class_tol.allowed(b) if math.isfinite(b) else 0.0,
                                                          widen or 0.0), True)
        if row.skipped:
            where = {(False, False): "on both sides", (False, True): "in the baseline", (True, False): "in the runs"}
            result.notes.append(f"{method}: IoU of class {name} undefined "
                                f"{where[(math.isfinite(b), math.isfinite(c))]}, not compared")
        result.rows.append(row)
    if fallback:
        result.notes.append(f"{method}: one seed on both sides, so the spread rule used the fixed tolerances")


def _widening(rule: str, base: dict, cur: dict, kind: str, key: str) -> float | None:
    """The rule's noise allowance for one number (pp), or None where the rule has none."""
    if rule == "fixed":
        return None
    if rule == "spread":
        per_seed = f"{kind}_per_seed"
        values = lambda rec: [_none_to_nan(v) for v in rec[per_seed].get(key, [])]  # noqa: E731
        return spread_halfwidth(values(base), values(cur))
    if not base.get("ci_halfwidth"):
        raise UserError("the baseline has no intervals; rewrite it with --update from runs that store per_image counts")
    if not cur.get("ci_halfwidth"):
        raise UserError("rule ci needs per_image counts in every run's metrics.json")
    wb, wc = _none_to_nan(base["ci_halfwidth"][kind].get(key)), _none_to_nan(cur["ci_halfwidth"][kind].get(key))
    return float(math.hypot(wb, wc)) if math.isfinite(wb) and math.isfinite(wc) else None
