"""Other tools' mIoU rules against the tools themselves on the same label maps.

torchmetrics and cityscapesScripts are installed and run here. detectron2, mmsegmentation and
Hugging Face ``evaluate`` are not installable in the test environment: their arithmetic is
re-implemented below line by line from their code (links in docs/definitions.md).
"""
import json
import math

import numpy as np
import pytest
import torch
from support.report_synthetic import write_run  # noqa: E402

from fairseg_bench.cli import main
from fairseg_bench.core.iou import per_class_iou
from fairseg_bench.results.tool_rules import compare_tools, detectron2_boundary_iou

K, IGNORE = 6, 255


def label_maps(seed=0, n=5, shape=(24, 32)):
    """Blocky labels and predictions; class 4 in no ground truth (predicted once), class 5 nowhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 4, (n, shape[0] // 4, shape[1] // 4))
    labels = np.kron(coarse, np.ones((1, 4, 4), np.int64))
    labels[1] = np.where(labels[1] == 3, 0, labels[1])  # class 3 absent from image 1
    preds = np.where(rng.random(labels.shape) < 0.25, rng.integers(0, 4, labels.shape), labels)
    preds[2, :3, :5] = 4  # only predicted: all false positives
    labels[rng.random(labels.shape) < 0.08] = IGNORE
    return labels.astype(np.int64), preds.astype(np.int64)


def counts_of(labels, preds):
    """The dataset-level matrix and per-image tp/fp/fn, ignored pixels left out (as fairseg-bench keeps them)."""
    cms = np.stack([np.bincount(g[g != IGNORE] * K + p[g != IGNORE], minlength=K * K).reshape(K, K)
                    for g, p in zip(labels, preds)])
    tp = np.diagonal(cms, axis1=1, axis2=2)
    per_image = {"tp": tp, "fp": cms.sum(1) - tp, "fn": cms.sum(2) - tp}
    return cms.sum(0), per_image


def scores(labels, preds, void=None):
    cm, per_image = counts_of(labels, preds)
    return {s.tool: s for s in compare_tools(cm, void, per_image)}


# ------------------------------------------------------------------------------ torchmetrics
def test_multiclass_jaccard_index_macro_and_none():
    from torchmetrics.classification import MulticlassJaccardIndex

    labels, preds = label_maps()
    ours = scores(labels, preds)["torchmetrics MulticlassJaccardIndex"]
    macro = MulticlassJaccardIndex(K, average="macro", ignore_index=IGNORE)
    none = MulticlassJaccardIndex(K, average="none", ignore_index=IGNORE)
    for i in range(0, len(labels), 2):  # several updates, as an evaluation loop does
        batch = torch.from_numpy(preds[i:i + 2]), torch.from_numpy(labels[i:i + 2])
        macro.update(*batch)
        none.update(*batch)
    assert ours.miou == pytest.approx(float(macro.compute()), abs=1e-6)
    np.testing.assert_allclose(ours.iou, none.compute().numpy(), atol=1e-6)
    assert ours.iou[5] == 0.0  # absent: 0, where fairseg-bench has NaN


def one_hot_valid(maps, labels):
    """(N, K, H, W) one-hot with ignored pixels all zero: MeanIoU has no ignore_index."""
    hot = torch.nn.functional.one_hot(torch.from_numpy(np.where(labels == IGNORE, 0, maps)), K).movedim(-1, 1)
    return hot * torch.from_numpy(labels != IGNORE)[:, None]


@pytest.mark.parametrize("per_class", [False, True])
def test_mean_iou_per_sample(per_class):
    from torchmetrics.segmentation import MeanIoU

    labels, preds = label_maps(seed=1)
    ours = scores(labels, preds)["torchmetrics MeanIoU"]
    metric = MeanIoU(num_classes=K, per_class=per_class, input_format="one-hot")
    for i in range(0, len(labels), 2):
        metric.update(one_hot_valid(preds[i:i + 2], labels[i:i + 2]), one_hot_valid(labels[i:i + 2], labels[i:i + 2]))
    result = metric.compute().numpy()
    if per_class:
        np.testing.assert_allclose(ours.iou, result, atol=1e-6)
        assert ours.iou[5] == -1.0
    else:
        assert ours.miou == pytest.approx(float(result), abs=1e-6)


# ---------------------------------------------------------------------- cityscapesScripts
def test_cityscapes_scripts_in_process(tmp_path, monkeypatch):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
    from cityscapesscripts.helpers.labels import trainId2label
    from PIL import Image

    from fairseg_bench.data.cityscapes import CITYSCAPES_CLASSES, CityscapesSegmentation

    rng = np.random.default_rng(3)
    lut = CityscapesSegmentation.LUT.astype(np.int64)  # labelId -> trainId, 255 ignored
    used = [i for i in range(34) if lut[i] not in (15, 16)]  # bus, train never in the ground truth
    gt_files, pred_files, labels, preds = [], [], [], []
    for n in range(4):
        gt = np.kron(rng.choice(used, (6, 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
        pred = np.where(rng.random(gt.shape) < 0.3, rng.integers(0, 34, gt.shape), gt).astype(np.uint8)
        pred[(pred == 28) | (pred == 31)] = 26  # bus and train (labelIds 28, 31) predicted as car...
        pred[:2, :3] = 28  # ...but bus in one corner: IoU 0; train nowhere: NaN
        for what, array, files in (("gt", gt, gt_files), ("pred", pred, pred_files)):
            files.append(str(tmp_path / f"{what}{n}_labelIds.png"))
            Image.fromarray(array).save(files[-1])
        labels.append(lut[gt])
        preds.append(lut[pred])
    labels, preds = np.stack(labels), np.stack(preds)
    void = np.bincount(labels[(labels != IGNORE) & (preds == IGNORE)], minlength=19)  # non-evaluated predictions
    k = 19
    cm = np.bincount(labels[(labels != IGNORE) & (preds != IGNORE)] * k + preds[(labels != IGNORE) & (preds != IGNORE)],
                     minlength=k * k).reshape(k, k)
    ours = {s.tool: s for s in compare_tools(cm, void)}["cityscapesScripts"]

    for name, value in (("evalInstLevelScore", False), ("JSONOutput", False), ("quiet", True)):
        monkeypatch.setattr(ev.args, name, value)  # its module-level options, restored afterwards
    result = ev.evaluateImgLists(pred_files, gt_files, ev.args)
    official = np.array([result["classScores"][trainId2label[i].name] for i in range(k)], dtype=np.float64)
    assert [trainId2label[i].name for i in range(k)] == list(CITYSCAPES_CLASSES)
    np.testing.assert_allclose(ours.iou, official, atol=1e-12)
    assert np.isnan(ours.iou[16]) and ours.iou[15] == 0.0
    assert ours.miou == pytest.approx(ev.getScoreAverage(result["classScores"], ev.args), abs=1e-12)
    np.testing.assert_allclose(per_class_iou(cm, void=void), official, atol=1e-12)  # fairseg-bench's own rule


# -------------------------------------------------- detectron2, mmsegmentation, HF: their arithmetic
def detectron2_evaluate(labels, preds):
    """SemSegEvaluator.process + evaluate, from detectron2/evaluation/sem_seg_evaluation.py."""
    conf = np.zeros((K + 1, K + 1), np.int64)
    for gt, pred in zip(labels, preds):
        gt = gt.copy()
        gt[gt == IGNORE] = K
        conf += np.bincount((K + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=conf.size).reshape(conf.shape)
    iou = np.full(K, np.nan)
    tp = conf.diagonal()[:-1].astype(float)
    pos_gt = np.sum(conf[:-1, :-1], axis=0).astype(float)
    pos_pred = np.sum(conf[:-1, :-1], axis=1).astype(float)
    acc_valid = pos_gt > 0
    union = pos_gt + pos_pred - tp
    iou_valid = np.logical_and(acc_valid, union > 0)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    return np.sum(iou[iou_valid]) / np.sum(iou_valid), iou


def test_detectron2_sem_seg():
    labels, preds = label_maps(seed=2)
    ours = scores(labels, preds)["detectron2 SemSegEvaluator"]
    miou, iou = detectron2_evaluate(labels, preds)
    assert ours.miou == pytest.approx(miou, abs=1e-12)
    np.testing.assert_allclose(ours.iou, iou, atol=1e-12)
    assert np.isnan(ours.iou[4])  # predicted, never in the ground truth: left out


def cv2_boundary(mask, d):
    """detectron2's _mask_to_boundary with cv2 spelled out: pad 1 with 0, d 3x3 erosions whose
    outside counts as the maximum (cv2's default border for erode), crop, subtract."""
    padded = np.pad(mask.astype(np.int64), 1)
    h, w = padded.shape
    for _ in range(d):
        p = np.pad(padded, 1, constant_values=10**9)
        padded = np.min([p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return mask.astype(np.int64) - padded[1:-1, 1:-1]


def test_detectron2_boundary_iou():
    labels, preds = label_maps(seed=4, shape=(40, 56))
    d = max(1, int(round(0.02 * math.hypot(40, 56))))
    conf = np.zeros((K + 1, K + 1), np.int64)
    for gt, pred in zip(labels, preds):
        gt = gt.copy()
        gt[gt == IGNORE] = K
        b_gt, b_pred = cv2_boundary(gt, d), cv2_boundary(pred, d)
        conf += np.bincount((K + 1) * b_pred.reshape(-1) + b_gt.reshape(-1), minlength=conf.size).reshape(conf.shape)
    b_tp = conf.diagonal()[:-1].astype(float)
    b_union = conf[:-1, :-1].sum(0) + conf[:-1, :-1].sum(1) - b_tp
    expected = np.where(b_union > 0, b_tp / np.maximum(b_union, 1), np.nan)
    got = detectron2_boundary_iou(labels, preds, K)
    np.testing.assert_allclose(got.iou, expected, atol=1e-12)


def mmseg_intersect_and_union(pred_label, label):
    """IoUMetric.intersect_and_union (mmseg/evaluation/metrics/iou_metric.py), torch.histc and all."""
    mask = label != IGNORE
    pred_label, label = pred_label[mask], label[mask]
    intersect = pred_label[pred_label == label]
    hist = lambda x: torch.histc(x.float(), bins=K, min=0, max=K - 1)  # noqa: E731
    area_intersect, area_pred, area_label = hist(intersect), hist(pred_label), hist(label)
    return area_intersect, area_pred + area_label - area_intersect


def test_mmseg_iou_metric():
    labels, preds = label_maps(seed=5)
    results = [mmseg_intersect_and_union(torch.from_numpy(p), torch.from_numpy(g)) for g, p in zip(labels, preds)]
    iou = (sum(r[0] for r in results) / sum(r[1] for r in results)).numpy()
    ours = scores(labels, preds)["mmsegmentation IoUMetric"]
    assert ours.miou * 100 == pytest.approx(np.round(np.nanmean(iou) * 100, 2), abs=1e-9)
    np.testing.assert_allclose(ours.iou * 100, np.round(iou * 100, 2), atol=1e-9)


def hf_mean_iou(preds, labels, reduce_labels=False):
    """evaluate's metrics/mean_iou/mean_iou.py: intersect_and_union summed, then nanmean."""
    total_i, total_u = np.zeros(K), np.zeros(K)
    for pred_label, label in zip(preds, labels):
        label = np.array(label)
        if reduce_labels:
            label[label == 0] = 255
            label = label - 1
            label[label == 254] = 255
        mask = np.not_equal(label, IGNORE)
        pred_label, label = pred_label[mask], label[mask]
        intersect = pred_label[pred_label == label]
        area_i = np.histogram(intersect, bins=K, range=(0, K - 1))[0]
        area_p = np.histogram(pred_label, bins=K, range=(0, K - 1))[0]
        area_l = np.histogram(label, bins=K, range=(0, K - 1))[0]
        total_i += area_i
        total_u += area_p + area_l - area_i
    with np.errstate(invalid="ignore"):
        iou = total_i / total_u
    return np.nanmean(iou), iou


def test_hugging_face_mean_iou():
    labels, preds = label_maps(seed=6)
    preds[0, :2, :2] = 200  # a prediction of no class: in no histogram bin, a false negative
    valid, void = labels != IGNORE, (labels != IGNORE) & (preds >= K)
    cm = np.bincount(labels[valid & ~void] * K + preds[valid & ~void], minlength=K * K).reshape(K, K)
    ours = {s.tool: s for s in compare_tools(cm, np.bincount(labels[void], minlength=K))}[
        "Hugging Face evaluate mean_iou"]
    miou, iou = hf_mean_iou(preds, labels)
    assert ours.miou == pytest.approx(miou, abs=1e-12)
    np.testing.assert_allclose(ours.iou, iou, atol=1e-12)


def test_compare_tools_without_per_image_skips_the_per_sample_rule():
    labels, preds = label_maps()
    cm, _ = counts_of(labels, preds)
    names = [s.tool for s in compare_tools(cm)]
    assert names[0] == "fairseg-bench" and "torchmetrics MeanIoU" not in names
    fair = compare_tools(cm)[0]
    np.testing.assert_allclose(fair.iou, per_class_iou(cm))


# ------------------------------------------------------------------------------------- CLI
def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["metrics", *map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_cli_compare_tools(capsys, tmp_path):
    write_run(tmp_path / "runs", "mcce", 0)
    write_run(tmp_path / "runs", "focal", 0)
    code, out, err = run_cli(capsys, tmp_path / "runs", "--compare-tools")
    assert code == 0, err
    assert out.count("### ") == 2 and "### mcce (seed 0)" in out
    for tool in ("cityscapesScripts", "detectron2 SemSegEvaluator", "torchmetrics MeanIoU",
                 "mmsegmentation IoUMetric", "Hugging Face evaluate mean_iou"):
        assert f"| {tool} |" in out
    assert "Not computed: detectron2 BoundaryIoU" in out
    code, out, err = run_cli(capsys, tmp_path / "runs", "--compare-tools", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    entry = next(r for r in doc["results"] if r["method"] == "mcce")
    record = json.loads((tmp_path / "runs" / "quick" / "mcce-s0" / "metrics.json").read_text())
    tools = {t["tool"]: t for t in entry["tools"]}
    assert tools["fairseg-bench"]["miou"] == pytest.approx(record["miou"])
    assert len(tools["torchmetrics MeanIoU"]["iou"]) == len(doc["classes"])


def test_cli_compare_tools_refuses_a_table_of_ious(capsys, tmp_path):
    (tmp_path / "t.csv").write_text("method,a,b\nx,50,60\n")
    code, out, err = run_cli(capsys, tmp_path / "t.csv", "--compare-tools")
    assert code == 2 and out == ""
    assert "needs confusion matrices" in err and len(err.strip().splitlines()) == 1
