"""Other tools' result files: each format against hand-computed values (IoUs as fractions, in the one
``Result``), detection, and bad files."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from fairseg_bench.data.label_sets import ADE20K_CLASSES, CITYSCAPES_CLASSES, VOC_CLASSES
from fairseg_bench.errors import UserError
from fairseg_bench.results import Result
from fairseg_bench.results.foreign import FORMATS, detect_format, read_foreign


def write(tmp_path, name, obj):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))  # NaN written as the NaN literal, as these tools do
    return path


def test_mmseg_fractions_become_percent_in_dataset_order(tmp_path):
    metric = {"aAcc": 0.95, "mIoU": 0.5, "mAcc": 0.6}
    values = {name: (k + 1) / 40 for k, name in enumerate(CITYSCAPES_CLASSES)}
    values["train"] = math.nan  # absent from ground truth and prediction
    for name in reversed(CITYSCAPES_CLASSES):  # order in the file does not matter
        metric[f"IoU.{name}"] = values[name]
        metric[f"Acc.{name}"] = 0.5
    path = write(tmp_path, "work_dirs/deeplab_r50/eval_20230101_120000.json",
                 {"config": "configs/x.py", "metric": metric})
    result = read_foreign(path)
    assert isinstance(result, Result) and result.seed is None
    assert result.dataset == "cityscapes" and result.method == "deeplab_r50"
    assert result.classes == tuple(CITYSCAPES_CLASSES)
    expected = [values[n] for n in CITYSCAPES_CLASSES]
    np.testing.assert_allclose(result.iou, expected, equal_nan=True)
    assert np.isnan(result.iou[CITYSCAPES_CLASSES.index("train")])


def test_mmseg_ade20k_names_with_stray_spaces_are_recognised(tmp_path):
    metric = {f"IoU.{'bed ' if n == 'bed' else n}": 0.25 for n in ADE20K_CLASSES}
    result = read_foreign(write(tmp_path, "eval_1.json", {"metric": metric}))
    assert result.dataset == "ade20k" and len(result.classes) == 150
    np.testing.assert_allclose(result.iou, 0.25)


def test_detectron2_percent_inner_or_wrapped(tmp_path):
    inner = {"mIoU": 50.0, "fwIoU": 60.0, "mACC": 70.0, "pACC": 80.0}
    for k, name in enumerate(VOC_CLASSES):
        inner[f"IoU-{name}"] = 2.5 * k
        inner[f"ACC-{name}"] = 90.0
    for obj in ({"sem_seg": inner}, inner):
        result = read_foreign(write(tmp_path, "d2/model.json", obj))
        assert result.dataset == "voc" and result.method == "model"
        np.testing.assert_allclose(result.iou, [0.025 * k for k in range(21)])


def test_hugging_face_needs_classes_or_a_dataset(tmp_path):
    obj = {"mean_iou": 0.4, "mean_accuracy": 0.5, "overall_accuracy": 0.9,
           "per_category_iou": [0.5, math.nan, 0.25], "per_category_accuracy": [0.5, math.nan, 0.5]}
    path = write(tmp_path, "hf.json", obj)
    result = read_foreign(path, classes=["sky", "ground", "object"], method="segformer")
    assert result.method == "segformer" and result.classes == ("sky", "ground", "object")
    np.testing.assert_allclose(result.iou, [0.5, np.nan, 0.25], equal_nan=True)
    with pytest.raises(UserError, match="names no classes"):
        read_foreign(path)
    with pytest.raises(UserError, match="3 per_category_iou values for 19 classes"):
        read_foreign(path, dataset="cityscapes")
    voc = write(tmp_path, "hf_voc.json", {**obj, "per_category_iou": [0.1] * 21})
    assert read_foreign(voc, dataset="voc").classes == tuple(VOC_CLASSES)


def test_class_names_that_do_not_match_the_dataset_are_an_error(tmp_path):
    metric = {f"IoU.{n}": 0.5 for n in CITYSCAPES_CLASSES}
    path = write(tmp_path, "eval_x.json", {"metric": metric})
    with pytest.raises(UserError, match="class names do not match the dataset's 21 classes") as info:
        read_foreign(path, dataset="voc")
    assert "\n" not in str(info.value)
    renamed = {**metric}
    renamed["IoU.pedestrian"] = renamed.pop("IoU.person")
    result = read_foreign(write(tmp_path, "eval_y.json", {"metric": renamed}))  # no dataset: its own names
    assert result.dataset is None and "pedestrian" in result.classes
    with pytest.raises(UserError, match="missing person; unknown pedestrian"):
        read_foreign(write(tmp_path, "eval_z.json", {"metric": renamed}), dataset="cityscapes")


@pytest.mark.parametrize("obj", [{"accuracy": 0.9}, [1, 2, 3], {"metric": {"mIoU": 0.5}}])
def test_unknown_format_lists_the_formats_understood(tmp_path, obj):
    with pytest.raises(UserError) as info:
        read_foreign(write(tmp_path, "what.json", obj))
    message = str(info.value)
    assert "\n" not in message and "not a result format" in message
    for fmt in FORMATS.values():
        assert fmt.description in message


def test_detection_is_by_keys():
    assert detect_format({"confMatrix": [], "classScores": {}}) == "cityscapes"
    assert detect_format({"IoU.road": 0.5}) == "mmseg"
    assert detect_format({"sem_seg": {"IoU-road": 50.0}}) == "detectron2"
    assert detect_format({"per_category_iou": [0.5]}) == "hf"
    assert detect_format({"schema_version": 1}) is None


def test_cityscapes_result_folds_to_train_ids(tmp_path):
    """A hand-made 34 x 34 matrix: ignored rows dropped, predictions of ignored ids are void."""
    conf = np.zeros((34, 34), np.int64)
    conf[7, 7], conf[7, 8], conf[7, 0] = 6, 2, 2  # road: 6 right, 2 as sidewalk, 2 void
    conf[8, 8], conf[0, 8] = 3, 5  # sidewalk: 3 right; 5 unlabeled pixels predicted sidewalk count nowhere
    scores = {n: math.nan for n in CITYSCAPES_CLASSES}
    scores.update({"road": 6 / 10, "sidewalk": 3 / 5, "unlabeled": math.nan})
    result = read_foreign(write(tmp_path, "evaluationResults/resultPixelLevelSemanticLabeling.json",
                                {"confMatrix": conf.tolist(), "classScores": scores, "averageScoreClasses": 0.6}))
    assert result.method == "evaluationResults"
    np.testing.assert_allclose(result.iou[:2], [0.6, 0.6])
    assert result.confusion_matrix[0].tolist()[:2] == [6, 2] and result.void_predictions[0] == 2
    assert result.confusion_matrix[1, 1] == 3 and result.confusion_matrix.sum() == 11


def test_reading_never_imports_torch(tmp_path):
    path = write(tmp_path, "eval_1.json", {"metric": {f"IoU.{n}": 0.5 for n in CITYSCAPES_CLASSES}})
    code = ("import sys; from fairseg_bench.results.foreign import read_foreign; "
            f"read_foreign({str(path)!r}); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
