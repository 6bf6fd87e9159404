"""``evaluate --predictions``: prediction folders against the official Cityscapes evaluator and a float64
brute force, the results file, and every bad input (exit 2, one line, nothing written)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.cli import call_main as cli
from support.fake_datasets import write_ade20k, write_cityscapes, write_voc

from fairseg_bench.data.label_sets import CITYSCAPES_CLASSES, LABEL_ID_TO_TRAIN_ID
from fairseg_bench.results import Result, read_record
from fairseg_bench.results.read import read_results

SHAPE = (24, 40)


def read_one(path: Path) -> Result:
    """The one result of a ``metrics.json``, as every command reads it."""
    (result,) = read_results(path).runs
    return result


def blocky(rng, values, shape=SHAPE, block=4) -> np.ndarray:
    """A spatially coherent label map drawn from ``values`` (blocks of ``block`` pixels)."""
    small = rng.choice(np.asarray(values), (shape[0] // block + 1, shape[1] // block + 1))
    return np.kron(small, np.ones((block, block), np.int64))[: shape[0], : shape[1]].astype(np.uint8)


def noisy(rng, label, values, share=0.3) -> np.ndarray:
    """``label`` with a share of its pixels replaced by random ``values``."""
    out = label.copy()
    mask = rng.random(label.shape) < share
    out[mask] = rng.choice(np.asarray(values), mask.sum())
    return out


def save_png(path: Path, array: np.ndarray, palette: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array.astype(np.uint8))
    if palette:  # indices with a colour table: must be read as the indices, not the colours
        img = Image.frombytes("P", array.shape[::-1], array.astype(np.uint8).tobytes())
        img.putpalette([v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)])
    img.save(path)
    return path


def brute_force_iou(pairs, gt_map, pred_map, num_classes) -> np.ndarray:
    """Per-class IoU in float64 with plain masks: ``gt_map``/``pred_map`` raw value -> class (-1 = ignore/void)."""
    tp, fp, fn = (np.zeros(num_classes) for _ in range(3))
    for gt_raw, pred_raw in pairs:
        gt = np.vectorize(gt_map.get)(gt_raw.astype(np.int64))
        pred = np.vectorize(pred_map.get)(pred_raw.astype(np.int64))
        valid = gt >= 0
        for c in range(num_classes):
            tp[c] += np.sum(valid & (gt == c) & (pred == c), dtype=np.float64)
            fp[c] += np.sum(valid & (gt != c) & (pred == c), dtype=np.float64)
            fn[c] += np.sum(valid & (gt == c) & (pred != c), dtype=np.float64)
    den = tp + fp + fn
    return np.where(den > 0, tp / np.where(den > 0, den, 1), np.nan)


# ----------------------------------------------------------------------------- Cityscapes
@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    """A fake Cityscapes tree (labelIds with ignored ids) and noisy labelId predictions (with void ids)."""
    root = tmp_path_factory.mktemp("cs")
    rng = np.random.default_rng(0)
    ids = list(range(34))
    labels = {"aachen": [blocky(rng, ids) for _ in range(4)], "bad-honnef": [blocky(rng, ids) for _ in range(3)]}
    labels["aachen"][1][:] = 0  # an image with no valid pixel
    write_cityscapes(root / "data", {"train": {"aachen": [labels["aachen"][0]]}, "val": labels})
    preds = root / "preds"
    for city, maps in labels.items():
        for k, label in enumerate(maps):
            save_png(preds / city / f"{city}_{k:06d}_000019_leftImg8bit.png", noisy(rng, label, ids))
    return root


def official(root: Path, monkeypatch, export: Path) -> dict:
    """cityscapesScripts' evaluateImgLists on the same files (no instance scores, quiet)."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev

    gts = sorted((root / "data" / "gtFine" / "val").glob("*/*_gtFine_labelIds.png"))
    preds = [next((root / "preds").rglob(g.name.replace("_gtFine_labelIds.png", "*.png"))) for g in gts]
    for key, value in {"evalInstLevelScore": False, "quiet": True, "JSONOutput": True,
                       "exportFile": str(export)}.items():
        monkeypatch.setattr(ev.args, key, value)
    return ev.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], ev.args)


def test_cityscapes_matches_the_official_evaluator(cityscapes, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ours.json"
    code, stdout, err = cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--dataset", "cityscapes",
                            "--root", cityscapes / "data", "--out", out, "--workers", "2", "--quiet")
    assert code == 0, err
    ours = read_one(out)
    reference = official(cityscapes, monkeypatch, tmp_path / "official.json")
    expected = np.array([reference["classScores"][name] for name in CITYSCAPES_CLASSES])
    np.testing.assert_allclose(ours.iou, expected, rtol=0, atol=1e-9)
    assert ours.method == "preds" and ours.dataset == "cityscapes" and ours.split == "val"
    assert ours.record["files"] == {"ground_truth": 7, "predictions": 7, "unmatched_predictions": 0}
    assert len(ours.per_image["tp"]) == 7 and len(ours.image_names) == 7
    assert "mIoU^I" in stdout  # the image-level table is printed after the run tables

    # reading the evaluator's own JSON gives the same numbers and the same confusion matrix
    from fairseg_bench.results.foreign import read_foreign

    parsed = read_foreign(tmp_path / "official.json")
    assert parsed.dataset == "cityscapes" and parsed.classes == tuple(CITYSCAPES_CLASSES)
    np.testing.assert_allclose(parsed.iou, ours.iou, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(parsed.confusion_matrix, ours.confusion_matrix)
    np.testing.assert_array_equal(parsed.void_predictions, ours.void_predictions)


def test_per_image_statistics_sum_to_the_dataset_matrix(cityscapes, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--dataset", "cityscapes", "--root",
               cityscapes / "data", "--out", out, "--workers", "1", "--quiet")[0] == 0
    run = read_one(out)
    stats, cm, void = run.per_image, run.confusion_matrix, run.void_predictions
    np.testing.assert_array_equal(stats["tp"].sum(0), np.diag(cm))
    np.testing.assert_array_equal(stats["fp"].sum(0), cm.sum(0) - np.diag(cm))
    np.testing.assert_array_equal(stats["fn"].sum(0), cm.sum(1) - np.diag(cm) + void)
    assert not stats["tp"][1].any() and not stats["fn"][1].any()  # the all-void image counts nowhere
    assert run.record["image_level"]["images"] == 6


def test_cityscapes_train_ids(cityscapes, tmp_path, capsys, monkeypatch):
    """--ids train: trainId predictions (255 = void) give the same result as the labelIds they stand for."""
    lut = np.full(256, 255, np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    train_preds = tmp_path / "train_ids"
    for p in (cityscapes / "preds").rglob("*.png"):
        save_png(train_preds / p.name, lut[np.asarray(Image.open(p))])
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    common = ["--dataset", "cityscapes", "--root", cityscapes / "data", "--quiet", "--workers", "1"]
    assert cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--out", a, *common)[0] == 0
    assert cli(capsys, "evaluate", "--predictions", train_preds, "--ids", "train", "--out", b, *common)[0] == 0
    np.testing.assert_array_equal(read_one(a).confusion_matrix, read_one(b).confusion_matrix)
    np.testing.assert_array_equal(read_one(a).iou, read_one(b).iou)


def test_default_output_reads_like_a_run(cityscapes, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--dataset", "cityscapes",
                       "--root", cityscapes / "data", "--name", "my model", "--quiet", "--workers", "1")
    assert code == 0, err
    target = tmp_path / "runs" / "predictions-cityscapes" / "my-model" / "metrics.json"
    assert read_one(target).method == "my model"
    code, out, err = cli(capsys, "report", tmp_path / "runs" / "predictions-cityscapes", "--out", tmp_path / "rep")
    assert code == 0, err


# ----------------------------------------------------------------------------- ADE20K and VOC
@pytest.mark.parametrize("reduce_zero_label", [False, True])
def test_ade20k_against_brute_force(tmp_path, capsys, reduce_zero_label):
    rng = np.random.default_rng(1)
    values = [0, *range(1, 151, 7), 150]
    labels = [blocky(rng, values) for _ in range(5)]
    write_ade20k(tmp_path / "data", {"training": labels[:1], "validation": labels})
    preds = [noisy(rng, label, values) for label in labels]
    folder = tmp_path / "preds"
    for k, pred in enumerate(preds):
        stored = np.where(pred == 0, 255, pred.astype(np.int64) - 1) if reduce_zero_label else pred
        save_png(folder / f"ADE_val_{k + 1:08d}.png", stored)
    out = tmp_path / "m.json"
    extra = ["--reduce-zero-label"] if reduce_zero_label else []
    code, _, err = cli(capsys, "evaluate", "--predictions", folder, "--dataset", "ade20k", "--root",
                       tmp_path / "data", "--out", out, "--quiet", "--workers", "2", *extra)
    assert code == 0, err
    mapping = {0: -1, **{v: v - 1 for v in range(1, 151)}}
    expected = brute_force_iou(zip(labels, preds, strict=True), mapping, mapping, 150)
    np.testing.assert_allclose(read_one(out).iou, expected, rtol=0, atol=1e-12)


def test_voc_palette_predictions_against_brute_force(tmp_path, capsys):
    rng = np.random.default_rng(2)
    values = [*range(21), 255]
    labels = [blocky(rng, values) for _ in range(4)]
    write_voc(tmp_path / "data", {"train": labels[:1], "val": labels})
    preds = [noisy(rng, label, values) for label in labels]
    for k, pred in enumerate(preds):
        save_png(tmp_path / "preds" / f"2007_val_{k:04d}.png", pred, palette=True)
    assert Image.open(tmp_path / "preds" / "2007_val_0000.png").mode == "P"
    out = tmp_path / "m.json"
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "voc", "--root",
                       tmp_path / "data", "--out", out, "--quiet")
    assert code == 0, err
    mapping = {**{c: c for c in range(21)}, 255: -1}
    expected = brute_force_iou(zip(labels, preds, strict=True), mapping, mapping, 21)
    np.testing.assert_allclose(read_one(out).iou, expected, rtol=0, atol=1e-12)


def test_generic_folders_with_an_ignore_index(tmp_path, capsys):
    rng = np.random.default_rng(3)
    classes = ["sky", "ground", "object"]
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n")
    labels = [blocky(rng, [0, 1, 2, 9]) for _ in range(3)]
    preds = [noisy(rng, label, [0, 1, 2, 9]) for label in labels]
    for k, (label, pred) in enumerate(zip(labels, preds, strict=True)):
        save_png(tmp_path / "gt" / f"img{k}.png", label, palette=True)
        save_png(tmp_path / "pred" / "sub" / f"img{k}.png", pred)
    out = tmp_path / "m.json"
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "pred", "--labels", tmp_path / "gt",
                       "--classes", tmp_path / "classes.txt", "--ignore-index", "9", "--out", out, "--quiet")
    assert code == 0, err
    run = read_one(out)
    mapping = {0: 0, 1: 1, 2: 2, 9: -1}
    assert run.classes == tuple(classes) and run.dataset == "custom"
    expected = brute_force_iou(zip(labels, preds, strict=True), mapping, mapping, 3)
    np.testing.assert_allclose(run.iou, expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- bad input
def _cs_case(cityscapes, tmp_path, edit) -> list:
    """A copy of the prediction folder changed by ``edit(folder)``, and the evaluate command for it."""
    import shutil

    folder = tmp_path / "preds"
    shutil.copytree(cityscapes / "preds", folder)
    edit(folder)
    return ["evaluate", "--predictions", folder, "--dataset", "cityscapes", "--root", cityscapes / "data",
            "--out", tmp_path / "out" / "metrics.json", "--workers", "2", "--quiet"]


def _first(folder: Path) -> Path:
    return sorted(folder.rglob("*.png"))[0]


def _remove_some(folder):
    for p in sorted(folder.rglob("*.png"))[:5]:
        p.unlink()


def _resize_one(folder):
    save_png(_first(folder), np.full((SHAPE[0], SHAPE[1] + 2), 7, np.uint8))


def _bad_value(folder):
    pred = np.asarray(Image.open(_first(folder))).copy()
    pred[0, 0] = 200
    save_png(_first(folder), pred)


def _rgb(folder):
    Image.fromarray(np.zeros((*SHAPE, 3), np.uint8)).save(_first(folder))


def _sixteen_bit(folder):
    Image.fromarray(np.full(SHAPE, 7, np.uint16)).save(_first(folder))


def _empty(folder):
    for p in folder.rglob("*.png"):
        p.unlink()


def _duplicate(folder):
    p = _first(folder)
    (p.parent / p.name.replace("_leftImg8bit", "_copy")).write_bytes(p.read_bytes())


BAD = {
    "no prediction for some images": (_remove_some, "no prediction for 5 of 7 ground-truth images"),
    "prediction size differs": (_resize_one, "differs from its label"),
    "value outside the label set": (_bad_value, "values 200 are outside the label set"),
    "rgb colour png": (_rgb, "palette PNG"),
    "16-bit png": (_sixteen_bit, "16-bit"),
    "empty folder": (_empty, "holds no PNG files"),
    "two predictions for one image": (_duplicate, "2 predictions match"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_prediction_folder_exits_2_in_one_line(cityscapes, tmp_path, capsys, case):
    edit, expected = BAD[case]
    args = _cs_case(cityscapes, tmp_path, edit)
    code, _, err = cli(capsys, *args)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert not (tmp_path / "out").exists()


def test_unmatched_predictions_are_a_counted_warning(cityscapes, tmp_path, capsys):
    def extra(folder):
        save_png(folder / "stray.png", np.zeros(SHAPE, np.uint8))
        save_png(folder / "x" / "berlin_000000_000019_pred.png", np.zeros(SHAPE, np.uint8))

    code, _, err = cli(capsys, *_cs_case(cityscapes, tmp_path, extra))
    assert code == 0, err
    assert "warning: 2 prediction files match no ground-truth image" in err
    assert read_record(tmp_path / "out" / "metrics.json")["files"]["unmatched_predictions"] == 2


@pytest.mark.parametrize("args, expected", [
    (["--dataset", "synthetic"], "cannot be read from prediction folders"),
    ([], "give --dataset (cityscapes, ade20k, voc, camvid) with --root"),
    (["--dataset", "voc", "--ids", "train"], "--ids train applies to cityscapes only"),
    (["--checkpoint", "x.pt"], "exactly one of --checkpoint"),
    (["--dataset", "cityscapes", "--labels", "."], "not both"),
])
def test_bad_options_exit_2(tmp_path, capsys, args, expected):
    save_png(tmp_path / "p" / "a.png", np.zeros(SHAPE, np.uint8))
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "p", *args, "--out", tmp_path / "o.json")
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "o.json").exists()


def test_written_file_is_strict_json(cityscapes, tmp_path, capsys):
    out = tmp_path / "m.json"
    assert cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--dataset", "cityscapes", "--root",
               cityscapes / "data", "--out", out, "--quiet", "--workers", "1")[0] == 0
    json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_values_outside_the_label_set_inside_the_counted_range(cityscapes, tmp_path, capsys):
    """trainIds 0-18 and 255 are valid, so 30 lies inside the counted range and is found on the histogram."""
    folder = tmp_path / "train_ids"
    for k, p in enumerate(sorted((cityscapes / "preds").rglob("*.png"))):
        save_png(folder / p.name, np.full(SHAPE, 30 if k == 2 else 3, np.uint8))
    code, _, err = cli(capsys, "evaluate", "--predictions", folder, "--ids", "train", "--dataset", "cityscapes",
                       "--root", cityscapes / "data", "--out", tmp_path / "o.json", "--quiet", "--workers", "1")
    assert code == 2 and err.count("\n") == 1 and "prediction values 30 are outside the label set" in err, err
    assert not (tmp_path / "o.json").exists()


def test_a_label_outside_the_label_set_names_the_label_file(tmp_path, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\n")
    save_png(tmp_path / "gt" / "x.png", np.full(SHAPE, 7, np.uint8))
    save_png(tmp_path / "pred" / "x.png", np.zeros(SHAPE, np.uint8))
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "pred", "--labels", tmp_path / "gt",
                       "--classes", classes, "--out", tmp_path / "o.json", "--quiet")
    assert code == 2 and err.count("\n") == 1 and "x.png: label values 7 are outside" in err, err
    assert not (tmp_path / "o.json").exists()


def test_evaluations_of_one_split_share_a_config_hash(cityscapes, tmp_path, capsys):
    common = ["--dataset", "cityscapes", "--root", cityscapes / "data", "--quiet", "--workers", "1"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--out", a, *common)[0] == 0
    assert cli(capsys, "evaluate", "--predictions", cityscapes / "preds", "--name", "x", "--out", b, *common)[0] == 0
    assert read_record(a)["config_hash"] == read_record(b)["config_hash"]


# ----------------------------------------------------------------------------- the one reader
def _evaluate(cityscapes, out: Path, capsys, folder=None, name=None) -> Path:
    args = ["evaluate", "--predictions", folder or cityscapes / "preds", "--dataset", "cityscapes", "--root",
            cityscapes / "data", "--out", out, "--quiet", "--workers", "1"]
    code, _, err = cli(capsys, *args, *(["--name", name] if name else []))
    assert code == 0, err
    return out


def test_metrics_reads_the_official_json_beside_our_result(cityscapes, tmp_path, capsys, monkeypatch):
    ours = _evaluate(cityscapes, tmp_path / "ours" / "metrics.json", capsys)
    official(cityscapes, monkeypatch, tmp_path / "official" / "resultPixelLevelSemanticLabeling.json")
    code, out, err = cli(capsys, "metrics", ours, tmp_path / "official" / "resultPixelLevelSemanticLabeling.json",
                         "--format", "json")
    assert code == 0, err
    methods = json.loads(out)["methods"]
    assert set(methods) == {"preds", "official"}
    for name in CITYSCAPES_CLASSES:
        assert methods["preds"]["iou"][name] == pytest.approx(methods["official"]["iou"][name], abs=1e-7)
    assert "image_level" in methods["preds"] and methods["official"]["image_level"]["miou_image"] is None


def _foreign(tmp_path, name, obj) -> Path:
    path = tmp_path / "files" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.mark.parametrize("command", ["metrics", "report", "check"])
def test_bad_result_files_exit_2_in_one_line(cityscapes, tmp_path, capsys, command):
    ours = _evaluate(cityscapes, tmp_path / "ours" / "metrics.json", capsys)
    unknown = _foreign(tmp_path, "what.json", {"accuracy": 0.9})
    voc_names = _foreign(tmp_path, "eval_voc.json", {"metric": {"IoU.background": 0.5, "IoU.cat": 0.25}})
    hf = _foreign(tmp_path, "hf.json", {"per_category_iou": [0.5] * 19})
    extra = {"metrics": [], "report": ["--out", tmp_path / "rep"],
             "check": ["--baseline", tmp_path / "base.json", "--update"]}[command]
    cases = [([unknown], "not a known result format"), ([voc_names, ours], "every input must have the same classes"),
             ([hf], "names no classes"), ([_foreign(tmp_path, "eval_cs.json", {"metric": {
                 f"IoU.{n}": 0.5 for n in CITYSCAPES_CLASSES}})], "class names do not match the dataset's 21")]
    for files, expected in cases:
        options = ["--classes", "voc"] if "eval_cs" in str(files[0]) else []
        code, _, err = cli(capsys, command, *files, *options, *extra)
        assert code == 2 and err.count("\n") == 1 and expected in err, (files, err)
        if expected == "not a known result format":
            assert "mmsegmentation" in err and "detectron2" in err and "Hugging Face" in err
        assert not (tmp_path / "rep").exists() and not (tmp_path / "base.json").exists()


def test_report_and_check_gain_the_image_level_metrics(cityscapes, tmp_path, capsys):
    import shutil

    worse = tmp_path / "worse"
    shutil.copytree(cityscapes / "preds", worse)
    for p in sorted(worse.rglob("*.png"))[:3]:
        save_png(p, np.full(SHAPE, 7, np.uint8))  # three images predicted as road everywhere
    runs = tmp_path / "runs"
    _evaluate(cityscapes, runs / "good" / "metrics.json", capsys, name="good")
    _evaluate(cityscapes, runs / "bad" / "metrics.json", capsys, folder=worse, name="bad")
    code, _, err = cli(capsys, "report", runs, "--reference", "good", "--out", tmp_path / "rep", "--bootstrap", "50")
    assert code == 0, err
    rep = tmp_path / "rep"
    assert (rep / "table_image.csv").is_file() and (rep / "figures" / "image_miou.png").is_file()
    assert "Fairness across images" in (tmp_path / "rep" / "report.md").read_text()
    code, _, err = cli(capsys, "check", runs / "good", "--baseline", tmp_path / "base.json", "--update")
    assert code == 0, err
    stored = json.loads((tmp_path / "base.json").read_text())["methods"]["good"]["fairness"]
    assert {"miou_image", "miou_image_worst_5", "miou_image_worst_10", "miou_class"} <= set(stored)
    # the worse model under the good one's name: the image-level numbers fall and the gate says so
    shutil.rmtree(runs / "good")
    record = json.loads((runs / "bad" / "metrics.json").read_text())
    record["method"] = "good"
    (runs / "bad" / "metrics.json").write_text(json.dumps(record))
    code, out, err = cli(capsys, "check", runs, "--baseline", tmp_path / "base.json")
    assert code == 1 and "miou_image" in out + err
