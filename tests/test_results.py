"""Atomic writes and validated reads of the results schema."""
import json
import math
import os

import numpy as np
import pytest

from fairseg_bench.errors import UserError
from fairseg_bench.results import (
    SCHEMA_VERSION,
    load_runs,
    read_metrics,
    runs_frame,
    write_atomic,
    write_json_atomic,
)


def metrics(method="mcce", seed=0, classes=("a", "b"), iou=(0.5, float("nan"))):
    k = len(classes)
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": "e",
        "method": method,
        "seed": seed,
        "classes": list(classes),
        "confusion_matrix": np.eye(k, dtype=np.int64) * 3,
        "iou": np.array(iou),
        "per_image": {"tp": [[1, 0]], "fp": [[0, 0]], "fn": [[0, 0]]},
    }


def test_round_trip_turns_nan_into_null_and_back(tmp_path):
    write_json_atomic(tmp_path / "r" / "metrics.json", metrics())
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["iou"] == [0.5, None]
    run = read_metrics(tmp_path / "r")
    assert run.iou[0] == 0.5 and math.isnan(run.iou[1])
    assert run.confusion_matrix.tolist() == [[3, 0], [0, 3]]
    assert run.per_image()["tp"].tolist() == [[1, 0]]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "x.json"
    write_atomic(target, "old")

    with pytest.raises(TypeError):  # fails mid-write, after the temporary file exists
        write_atomic(target, 12345)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.json"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_current_umask()


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_truncated_or_foreign_files_are_user_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.json").write_text('{"schema_version": 1, "iou": [0.')
    with pytest.raises(UserError, match="not valid JSON"):
        read_metrics(tmp_path / "a")
    write_json_atomic(tmp_path / "b" / "metrics.json", {"hello": 1})
    with pytest.raises(UserError, match="missing"):
        read_metrics(tmp_path / "b")
    bad = metrics()
    bad["schema_version"] = 99
    write_json_atomic(tmp_path / "c" / "metrics.json", bad)
    with pytest.raises(UserError, match="schema version 99"):
        read_metrics(tmp_path / "c")


def test_load_runs_checks_class_sets_and_builds_a_frame(tmp_path):
    write_json_atomic(tmp_path / "e" / "mcce-s0" / "metrics.json", metrics())
    write_json_atomic(tmp_path / "e" / "tce-s0" / "metrics.json", metrics("tce", iou=(0.7, 0.1)))
    runs = load_runs(tmp_path)
    frame = runs_frame(runs)
    assert sorted(frame["method"].unique()) == ["mcce", "tce"]
    assert frame.set_index(["method", "class"]).loc[("tce", "b"), "iou"] == pytest.approx(0.1)
    write_json_atomic(tmp_path / "e" / "x-s0" / "metrics.json", metrics("x", classes=("a", "c")))
    with pytest.raises(UserError, match="different class set"):
        load_runs(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no metrics.json"):
        load_runs(tmp_path / "empty")
