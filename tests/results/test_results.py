"""The results schema: atomic writes, validated reads, the one record builder and the run folder's files."""
import json
import math
import os

import numpy as np
import pytest

from fairseg_bench.core.iou import per_class_iou
from fairseg_bench.errors import UserError
from fairseg_bench.results import SCHEMA_VERSION, read_record, write_atomic, write_json_atomic
from fairseg_bench.results.read import read_results
from fairseg_bench.results.record import IDENTITY_KEYS, Counts, build_record
from fairseg_bench.results.run_files import read_history, read_samples, write_history, write_samples


def metrics(method="mcce", seed=0, classes=("a", "b"), cm=((3, 0), (0, 0))):
    cm = np.asarray(cm, dtype=np.int64)
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": "e",
        "method": method,
        "seed": seed,
        "classes": list(classes),
        "confusion_matrix": cm,
        "iou": per_class_iou(cm),
        "per_image": {"tp": [np.diag(cm)], "fp": [cm.sum(0) - np.diag(cm)], "fn": [cm.sum(1) - np.diag(cm)]},
    }


def test_round_trip_turns_nan_into_null_and_back(tmp_path):
    write_json_atomic(tmp_path / "r" / "metrics.json", metrics())
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["iou"] == [1.0, None]
    assert read_record(tmp_path / "r")["iou"] == [1.0, None]
    (run,) = read_results(tmp_path / "r").runs
    assert run.iou[0] == 1.0 and math.isnan(run.iou[1])
    assert run.confusion_matrix.tolist() == [[3, 0], [0, 0]]
    assert run.per_image["tp"].tolist() == [[3, 0]]
    assert run.folder == tmp_path / "r"


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
        read_record(tmp_path / "a")
    write_json_atomic(tmp_path / "b" / "metrics.json", {"hello": 1})
    with pytest.raises(UserError, match="missing"):
        read_record(tmp_path / "b")
    bad = metrics()
    bad["schema_version"] = 99
    write_json_atomic(tmp_path / "c" / "metrics.json", bad)
    with pytest.raises(UserError, match="schema version 99"):
        read_record(tmp_path / "c")


def test_runs_below_a_folder_share_one_class_list(tmp_path):
    write_json_atomic(tmp_path / "e" / "mcce-s0" / "metrics.json", metrics())
    write_json_atomic(tmp_path / "e" / "tce-s0" / "metrics.json", metrics("tce", cm=((2, 1), (0, 1))))
    results = read_results(tmp_path)
    assert results.methods == ["mcce", "tce"] and results.classes == ["a", "b"]
    np.testing.assert_allclose(results.iou("tce"), [[2 / 3, 1 / 2]])
    write_json_atomic(tmp_path / "e" / "x-s0" / "metrics.json", metrics("x", classes=("a", "c")))
    with pytest.raises(UserError, match="every input must have the same classes"):
        read_results(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run metrics.json"):
        read_results(tmp_path / "empty")


# ----------------------------------------------------------------------------- the one builder
IDENTITY = {"experiment": "e", "method": "m", "loss_spec": None, "seed": 0, "config_hash": "h", "config": {},
            "dataset": "custom", "split": "val", "steps": None, "classes": ["a", "b"], "ignore_index": 255,
            "palette": np.array([[0, 0, 0], [255, 255, 255]], np.uint8)}


def counts(void=None, **kwargs) -> Counts:
    """Two images, two classes: image 0 all class a (one pixel predicted b), image 1 class b."""
    tp, fp, fn = np.array([[3, 0], [0, 2]]), np.array([[0, 1], [0, 0]]), np.array([[1, 0], [0, 0]])
    if void is not None:
        fn = fn + np.array([[void[0], 0], [0, void[1]]])
    return Counts(np.array([[3, 1], [0, 2]]), {"tp": tp, "fp": fp, "fn": fn}, void=void, **kwargs)


def build(counts_: Counts, **extra) -> dict:
    return build_record(IDENTITY, counts_, sampler=None, timing={"wall_time_s": 1.0}, environment={}, extra=extra)


def test_the_builder_derives_every_number_from_the_counts():
    record = build(counts(void=np.array([2, 0])))
    # void pixels: false negatives of their class, counted in the pixel total, never correct
    np.testing.assert_allclose(record["iou"], [3 / 6, 2 / 3])
    assert record["miou"] == pytest.approx((3 / 6 + 2 / 3) / 2)
    assert record["pixel_accuracy"] == pytest.approx(5 / 8)
    np.testing.assert_allclose(record["class_accuracy"], [3 / 6, 1.0])
    assert record["fairness"]["worst"] == pytest.approx(0.5)
    assert record["image_level"]["miou_image"] == pytest.approx((3 / 6 + 2 / 2) / 2)
    assert record["void_predictions"].tolist() == [2, 0] and record["palette"] == [[0, 0, 0], [255, 255, 255]]
    assert list(record)[: 1 + len(IDENTITY_KEYS)] == ["schema_version", *IDENTITY_KEYS]


def test_without_void_or_boundary_the_record_has_neither():
    record = build(counts(), precision={"rule": "float32"})
    assert "void_predictions" not in record and "boundary" not in record and "image_names" not in record
    assert record["pixel_accuracy"] == pytest.approx(5 / 6) and record["precision"] == {"rule": "float32"}
    with pytest.raises(ValueError, match="identity keys"):
        build_record({**IDENTITY, "extra": 1}, counts(), sampler=None, timing={}, environment={})


def test_a_built_record_reads_back_as_it_was_built(tmp_path):
    boundary = (np.array([[1, 0], [0, 2]]), np.array([[2, 1], [0, 2]]))
    built = build(counts(void=np.array([2, 0]), boundary=boundary, image_names=["x", "y"],
                         image_attributes={"city": ["p", "q"]}))
    write_json_atomic(tmp_path / "metrics.json", built)
    (result,) = read_results(tmp_path / "metrics.json").runs  # the reader checks the stored numbers
    np.testing.assert_allclose(result.iou, built["iou"])
    assert result.void_predictions.tolist() == [2, 0] and result.image_names == ("x", "y")
    assert result.boundary["intersection"].tolist() == [1, 2] and result.boundary["union"].tolist() == [2, 3]
    assert read_record(tmp_path / "metrics.json")["boundary"]["iou"] == [0.5, 2 / 3]


# ----------------------------------------------------------------------------- run folder files
def test_history_and_samples_round_trip(tmp_path):
    assert read_history(tmp_path) is None and read_samples(tmp_path) is None
    history = [{"step": 1, "lr": 0.1, "loss": 2.0, "grad_norm": 1.0, "images_per_s": 5.0, "drawn_class": 1,
                "weights": [0.25, 0.75]}]
    write_history(tmp_path, history, ["a", "b"])
    frame = read_history(tmp_path)
    assert list(frame.columns) == ["step", "lr", "loss", "grad_norm", "images_per_s", "drawn_class", "w_a", "w_b"]
    assert frame["w_b"].tolist() == [0.75]
    samples = {"image": np.zeros((1, 2, 2, 3), np.uint8), "target": np.ones((1, 2, 2), np.uint8),
               "pred": np.zeros((1, 2, 2), np.uint8)}
    write_samples(tmp_path, samples)
    assert all(np.array_equal(read_samples(tmp_path)[k], v) for k, v in samples.items())
    write_samples(tmp_path, {"image": samples["image"]})
    assert read_samples(tmp_path) is None  # an old or partial file: no figure, no error
