"""The fairness regression gate: a baseline of the summary's numbers, tolerances with units, verdicts.

Reads results only, through the one reader and the one summary, so every metric means what it
means in ``metrics`` and ``report`` (``sorted_bottom`` is the mean over the **reference's**
bottom k classes); never imports torch. One job per module:

- :mod:`~fairseg_bench.check.tolerances`: ``2pp`` (percentage points) or ``5%`` (relative), defaults;
- :mod:`~fairseg_bench.check.baseline`: the baseline file (write, read, validate);
- :mod:`~fairseg_bench.check.compare`: the rules ``fixed``, ``spread``, ``ci`` and the verdicts;
- :mod:`~fairseg_bench.check.markdown`: the pull-request summary.
"""
from fairseg_bench.check.baseline import make_baseline, read_baseline, short_hash, write_baseline
from fairseg_bench.check.compare import RULES, CheckResult, Comparison, compare
from fairseg_bench.check.markdown import append_summary, to_markdown
from fairseg_bench.check.tolerances import (
    DEFAULT_PER_CLASS_TOLERANCE,
    DEFAULT_TOLERANCES,
    GATED,
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    METRICS,
    Tolerance,
    parse_tolerance_value,
    parse_tolerances,
)

__all__ = [
    "make_baseline", "read_baseline", "write_baseline", "short_hash", "compare", "CheckResult", "Comparison",
    "RULES", "append_summary", "to_markdown", "Tolerance", "parse_tolerances", "parse_tolerance_value",
    "DEFAULT_TOLERANCES", "DEFAULT_PER_CLASS_TOLERANCE", "METRICS", "GATED", "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
]
