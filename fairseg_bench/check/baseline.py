"""The baseline file: the summary's numbers of each method, in percent (CoV and Gini ×100).

JSON, ``schema_version`` 2, written atomically::

    {"schema_version": 2, "kind": "fairseg-bench-baseline", "unit": "percent",
     "reference": "mcce", "fraction": 0.25, "config_hash": "...", "experiment": "...",
     "dataset": "...", "classes": [K names], "environment": {"torch": "...", "device": "..."},
     "fairseg_bench": "0.1.0",
     "methods": {"<method>": {
         "seeds": [0, 1], "fairness": {metric: seed mean}, "fairness_per_seed": {metric: [...]},
         "fairness_std": {metric: std or null}, "iou": {class: seed mean},
         "iou_per_seed": {class: [...]}, "iou_std": {class: std or null},
         "ci_halfwidth": {"fairness": {metric: w}, "iou": {class: w}} or null}}}

The fairness values are those of :func:`fairseg_bench.results.summary.summarize` with the stored
reference and fraction; ``ci_halfwidth`` is half the width of its 95 % interval.
"""
from __future__ import annotations

import os

import numpy as np

from fairseg_bench.errors import UserError
from fairseg_bench.results import jsonable, read_json, write_json_atomic
from fairseg_bench.results.read import Results
from fairseg_bench.results.summary import BOUNDARY_KEYS, FAIRNESS_COLUMNS, GROUP_GATED, IMAGE_KEYS, Summary

SCHEMA_VERSION = 2
KIND = "fairseg-bench-baseline"
ENVIRONMENT_KEYS = ("torch", "device")
BOOTSTRAP_RESAMPLES = 1000


def short_hash(config_hash) -> str:
    """The first 12 hex digits, enough to tell configs apart in a message."""
    return str(config_hash)[:12]


def identity(results: Results) -> dict:
    """config_hash, classes, experiment, dataset and environment shared by all runs, or a UserError."""
    bad = next((r for r in results.runs if not r.config_hash), None)
    if bad is not None:
        raise UserError(f"{bad.source}: no config_hash; the check needs runs written by `fairseg-bench run`")
    hashes = {r.config_hash for r in results.runs}
    if len(hashes) > 1:
        raise UserError(f"the runs come from {len(hashes)} different configs "
                        f"({', '.join(short_hash(h) for h in sorted(hashes))}); point RUNS at one experiment folder")
    env = {}
    for key in ENVIRONMENT_KEYS:
        values = {(r.record.get("environment") or {}).get(key) for r in results.runs}
        env[key] = values.pop() if len(values) == 1 else "mixed"
    first = results.runs[0]
    return {"config_hash": hashes.pop(), "classes": list(results.classes), "experiment": first.experiment,
            "dataset": first.dataset, "environment": env}


def _halfwidths(low, high) -> dict:
    return {k: (high[k] - low[k]) / 2 for k in low.index}


def method_record(summary: Summary, method: str) -> dict:
    """One method's numbers as stored in the baseline, before :func:`make_baseline` turns NaN into null."""
    fair, iou = summary.blocks["fairness"], summary.blocks["iou"]
    classes = summary.classes
    iou_seeds = iou.per_seed[method][:, : len(classes)]
    has_ci = bool(np.isfinite(fair.low.loc[method].to_numpy()).any())
    gated = _gated_blocks(summary, method)
    return {
        "seeds": list(summary.seeds[method]),
        "n_seeds": len(summary.seeds[method]),
        "fairness": {k: b.mean.loc[method, k] for b, keys in gated for k in keys},
        "fairness_per_seed": {k: b.per_seed[method][:, list(b.mean.columns).index(k)]
                              for b, keys in gated for k in keys},
        "fairness_std": {k: b.std.loc[method, k] for b, keys in gated for k in keys},
        "iou": {c: iou.mean.loc[method, c] for c in classes},
        "iou_per_seed": {c: iou_seeds[:, i] for i, c in enumerate(classes)},
        "iou_std": {c: iou.std.loc[method, c] for c in classes},
        "ci_halfwidth": None if not has_ci else {
            "fairness": {k: v for b, keys in gated for k, v in _halfwidths(b.low.loc[method, list(keys)],
                                                                          b.high.loc[method, list(keys)]).items()},
            "iou": _halfwidths(iou.low.loc[method, classes], iou.high.loc[method, classes]),
        },
    }


def _gated_blocks(summary: Summary, method: str) -> list:
    """(block, keys) of the gated metrics: the fairness block, and the image-level, Boundary IoU and
    first grouping's worst group where the method has them."""
    gated: list[tuple] = [(summary.blocks["fairness"], FAIRNESS_COLUMNS)]
    if summary.has_image_level:
        gated.append((summary.blocks["image"], IMAGE_KEYS))
    if summary.has_boundary and method not in summary.lacking_boundary():
        gated.append((summary.blocks["boundary"], BOUNDARY_KEYS))
    first = next(iter(summary.groups.values()), None)
    if first is not None and bool(first.block.mean.loc[method, list(GROUP_GATED)].notna().any()):
        gated.append((first.block, GROUP_GATED))
    return gated


def make_baseline(results: Results, summary: Summary | None = None) -> dict:
    """The baseline dict of ``results`` with the numbers of ``summary`` (computed with intervals if not given),
    as stored: plain Python, NaN as None."""
    from fairseg_bench import __version__

    summary = summary if summary is not None else _summary(results)
    return jsonable({"schema_version": SCHEMA_VERSION, "kind": KIND, "unit": "percent", "reference": summary.reference,
                     "fraction": summary.fraction, **identity(results), "fairseg_bench": __version__,
                     "methods": {m: method_record(summary, m) for m in summary.methods}})


def _summary(results: Results) -> Summary:
    from fairseg_bench.results.summary import summarize

    return summarize(results, n_boot=BOOTSTRAP_RESAMPLES)  # the records' own groups, if any


def write_baseline(path: str | os.PathLike, results: Results, summary: Summary | None = None) -> dict:
    """Write the baseline atomically (the summary is computed, with intervals, when not given); returns it."""
    write_json_atomic(path, make_baseline(results, summary))
    return read_baseline(path)


_TOP_KEYS = {"schema_version": int, "config_hash": str, "classes": list, "methods": dict, "reference": str,
             "fraction": float}
_METHOD_KEYS = {"seeds": list, "fairness": dict, "fairness_per_seed": dict, "iou": dict, "iou_per_seed": dict}


def read_baseline(path: str | os.PathLike) -> dict:
    """Read and validate a baseline file; anything malformed is a one-line ``UserError``."""
    data = read_json(path)
    if data.get("kind", KIND) != KIND:
        raise UserError(f"{path}: not a fairseg-bench baseline (kind {data.get('kind')!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"{path}: baseline schema version {data.get('schema_version')} is not supported "
                        f"(expected {SCHEMA_VERSION}); rewrite it with `fairseg-bench check --update`")
    _require(data, _TOP_KEYS, f"{path}")
    for method, record in data["methods"].items():
        where = f"{path}: method {method}"
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected an object")
        _require(record, _METHOD_KEYS, where)
        n = len(record["seeds"])
        if set(record["iou"]) != set(record["iou_per_seed"]) or not set(record["iou"]) <= set(data["classes"]):
            raise UserError(f"{where}: iou/iou_per_seed sizes do not match the classes")
        values = [*record["fairness_per_seed"].values(), *record["iou_per_seed"].values()]
        if any(not isinstance(v, list) or len(v) != n for v in values):
            raise UserError(f"{where}: every per-seed list must hold {n} values")
        if any(v is not None and not isinstance(v, (int, float)) for v in [*record["fairness"].values(),
                                                                            *record["iou"].values()]):
            raise UserError(f"{where}: bad value (numbers or null expected)")
    return data


def _require(obj: dict, keys: dict, where: str) -> None:
    for key, kind in keys.items():
        if key not in obj:
            raise UserError(f"{where}: malformed baseline, missing key {key!r}")
        ok = isinstance(obj[key], (int, float) if kind is float else kind) and not isinstance(obj[key], bool)
        if not ok:
            raise UserError(f"{where}: malformed baseline, {key!r} should be a {kind.__name__}")
