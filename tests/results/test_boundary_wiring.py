"""Boundary IoU through every path: a run's metrics.json, a checkpoint's, a prediction folder's, the
tables (old records without it included) and the gate."""
import json

import numpy as np
import pytest
from PIL import Image
from support.camvid import NAMES, labels_of, write_tiny_config
from support.cli import call_main as cli
from support.report_synthetic import write_experiment

from fairseg_bench.core.boundary import boundary_counts
from fairseg_bench.data.camvid import PREDICTION_LUT
from fairseg_bench.results import read_record


def class_map(raw: np.ndarray) -> np.ndarray:
    """CamVid's raw label values as class ids (void 11 -> 255)."""
    return np.where(PREDICTION_LUT < 0, 255, PREDICTION_LUT).astype(np.uint8)[raw]


def test_run_checkpoint_and_prediction_folder_record_the_same_boundary_counts(root, tmp_path, capsys):
    write_tiny_config(root, tmp_path, iters=2)
    assert cli(capsys, "run", "-c", tmp_path / "tiny.yaml", "--no-report")[0] == 0
    folder = tmp_path / "runs" / "camvid" / "mcce-s0"
    run = read_record(folder)
    assert set(run["boundary"]) == {"intersection", "union", "iou", "per_image"}
    assert np.shape(run["boundary"]["per_image"]["union"]) == (len(NAMES["test"]), 11)

    code, _, err = cli(capsys, "evaluate", "--checkpoint", folder / "last.pt", "--split", "test", "--quiet",
                       "--save-predictions", tmp_path / "preds")
    assert code == 0, err
    checkpoint = read_record(folder / "metrics-test.json")
    assert checkpoint["boundary"] == run["boundary"]
    # recomputed from the label files and the saved predictions (the same argmax)
    for i, name in enumerate(NAMES["test"]):
        label = class_map(labels_of(root)[i])
        pred = np.asarray(Image.open(tmp_path / "preds" / f"{name}.png"))
        inter, union = boundary_counts(label, pred, 11)
        assert checkpoint["boundary"]["per_image"]["intersection"][i] == inter.tolist()
        assert checkpoint["boundary"]["per_image"]["union"][i] == union.tolist()

    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "camvid", "--root", root,
                       "--split", "test", "--out", tmp_path / "m", "--quiet", "--boundary")
    assert code == 0, err
    pairs = read_record(tmp_path / "m" / "metrics.json")
    order = [pairs["image_names"].index(n) for n in run["image_names"]]
    for key in ("intersection", "union"):
        assert pairs["boundary"][key] == checkpoint["boundary"][key]
        np.testing.assert_array_equal(np.asarray(pairs["boundary"]["per_image"][key])[order],
                                      checkpoint["boundary"]["per_image"][key])
    assert pairs["image_attributes"] == {"sequence": [n.split("_")[0] for n in pairs["image_names"]]}

    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "camvid", "--root", root,
                       "--split", "test", "--out", tmp_path / "nb", "--quiet")  # opt-in for folders
    assert code == 0, err
    assert "boundary" not in read_record(tmp_path / "nb" / "metrics.json")


def with_boundary(runs, edit=None):
    """Give every record per-image Boundary IoU counts (a fixed fraction of the union intersects)."""
    for path in sorted(runs.rglob("metrics.json")):
        data = json.loads(path.read_text())
        union = (np.asarray(data["per_image"]["tp"]) + 5) * 4
        inter = union * (3 if data["method"] == "tce" else 2) // 4
        if edit is not None:
            inter = edit(data, inter)
        data["boundary"] = {"intersection": inter.sum(0).tolist(), "union": union.sum(0).tolist(), "iou": None,
                            "per_image": {"intersection": inter.tolist(), "union": union.tolist()}}
        path.write_text(json.dumps(data))
    return runs


def test_tables_show_boundary_iou_and_old_records_read_with_a_note(tmp_path, capsys):
    runs = with_boundary(write_experiment(tmp_path / "runs", methods=("mcce", "tce"), seeds=(0,)))
    old = write_experiment(tmp_path / "runs", methods=("focal",), seeds=(0,))  # no boundary block
    code, out, err = cli(capsys, "metrics", runs, "--format", "md")
    assert code == 0, err
    assert "Boundary IoU (%)" in out and "min(IoU, BIoU)" in out
    assert "no Boundary IoU counts in the records of focal" in out
    row = next(line for line in out.splitlines() if line.startswith("| focal") and "–" in line)
    assert row.count("–") >= 3
    code, out, _ = cli(capsys, "metrics", runs, "--format", "json")
    tce = json.loads(out)["methods"]["tce"]
    assert tce["boundary"]["biou"] == pytest.approx(75.0)
    iou = np.array([tce["iou"][c] for c in tce["iou"]])
    assert tce["boundary"]["min_iou_biou"] == pytest.approx(np.mean(np.minimum(iou, 75.0)))
    assert old.exists()


def test_a_malformed_boundary_block_is_a_one_line_error(tmp_path, capsys):
    runs = write_experiment(tmp_path / "runs", methods=("mcce",), seeds=(0,))
    path = next(runs.rglob("metrics.json"))
    data = json.loads(path.read_text())
    data["boundary"] = {"intersection": [1, 2], "union": [1, 2], "per_image": None}
    path.write_text(json.dumps(data))
    code, _, err = cli(capsys, "metrics", runs)
    assert code == 2 and "boundary counts do not match" in err and len(err.strip().splitlines()) == 1


def test_the_gate_guards_boundary_iou(tmp_path, capsys):
    base = with_boundary(write_experiment(tmp_path / "base", methods=("mcce",), seeds=(0,)))
    baseline = tmp_path / "baseline.json"
    assert cli(capsys, "check", base, "--baseline", baseline, "--update")[0] == 0
    assert "biou" in json.loads(baseline.read_text())["methods"]["mcce"]["fairness"]
    worse = with_boundary(write_experiment(tmp_path / "cur", methods=("mcce",), seeds=(0,)),
                          edit=lambda data, inter: inter * 3 // 4)
    code, out, _ = cli(capsys, "check", worse, "--baseline", baseline, "--tolerance", "biou=2pp")
    assert code == 1 and "REGRESSION mcce biou" in out


def test_prediction_folder_boundary_counts_at_a_width_of_the_packed_path(tmp_path, capsys):
    """labelId maps of 400x600 (d = 14): the folder's per-image counts equal the pixel path's on the class maps."""
    from support.fake_datasets import write_cityscapes

    from fairseg_bench.data.label_sets import LABEL_ID_TO_TRAIN_ID

    rng = np.random.default_rng(5)
    ids = np.array(sorted(LABEL_ID_TO_TRAIN_ID), np.uint8)
    to_class = np.full(256, 255, np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        to_class[label_id] = train_id
    maps = [np.kron(rng.choice(ids, (400 // 20, 600 // 20)), np.ones((20, 20), np.uint8)) for _ in range(3)]
    write_cityscapes(tmp_path / "data", {"val": {"aachen": maps}})
    preds = []
    for k, label in enumerate(maps):
        pred = np.roll(label, (7, 11), axis=(0, 1))
        pred[rng.random(pred.shape) < 0.02] = 0  # speckle of an ignored id (void)
        preds.append(pred)
        path = tmp_path / "preds" / "aachen" / f"aachen_{k:06d}_000019_leftImg8bit.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred).save(path)
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "cityscapes",
                       "--root", tmp_path / "data", "--out", tmp_path / "m", "--quiet", "--boundary", "--workers", "1")
    assert code == 0, err
    record = read_record(tmp_path / "m" / "metrics.json")
    for i, (label, pred) in enumerate(zip(maps, preds)):
        inter, union = boundary_counts(to_class[label], to_class[pred], 19)  # d = round(0.02 * 721) = 14
        assert record["boundary"]["per_image"]["intersection"][i] == inter.tolist()
        assert record["boundary"]["per_image"]["union"][i] == union.tolist()
    assert sum(record["boundary"]["union"]) > 0


def test_prediction_folders_count_boundaries_on_raw_values_only_with_one_value_per_class():
    from fairseg_bench.data.cityscapes import CityscapesSegmentation
    from fairseg_bench.predictions import PairCounter

    lut = CityscapesSegmentation.LUT
    assert PairCounter(lut, lut, 19, boundary=True).raw_classes is not None  # labelIds: no lookup of the maps
    merged = lut.copy()
    merged[5] = 0  # two labelIds of class 0: the maps must be looked up into codes first
    assert PairCounter(merged, merged, 19, boundary=True).raw_classes is None
    shifted = np.roll(lut, 1)  # predictions whose values mean other classes than the labels'
    assert PairCounter(lut, shifted, 19, boundary=True).raw_classes is None
