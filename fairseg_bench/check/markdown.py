"""The gate's Markdown summary, for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
from __future__ import annotations

import os
from pathlib import Path

from fairseg_bench.check.baseline import short_hash
from fairseg_bench.check.compare import CheckResult, Comparison, _percent_text, _pp


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
            f"| {r.method} | {r.metric} | {'↑' if r.higher_is_better else '↓'} | {_percent_text(r.baseline)} "
            f"| {_percent_text(r.current)} "
            f"| {_pp(r.delta)} | {_pp(r.allowed, sign=False)} | {_status(r)} |"
        )
    return lines


def to_markdown(result: CheckResult, runs_label: str = "", baseline_label: str = "") -> str:
    """The summary: verdict, notes, the fairness table, failed and all per-class rows."""
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
            f"reference `{result.reference}`",
        )
        if part
    )
    lines += [
        where,
        "",
        "Values in percent (IoU; CoV and Gini ×100); sorted groups ranked by the reference; "
        "Δ = current − baseline in percentage points; "
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
