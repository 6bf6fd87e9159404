"""Fairness across groups of images: the maths against the formulas, intervals, --groups, the gate, the report."""
import json
from pathlib import Path

import numpy as np
import pytest
from support.cli import call_main as cli
from support.report_synthetic import write_experiment

from fairseg_bench.core.groups import group_metrics, stratified_counts
from fairseg_bench.core.stats import percentile_interval
from fairseg_bench.results.read import read_results
from fairseg_bench.results.summary import summarize

N_IMAGES = 12
SEQUENCES = ["dusk"] * 5 + ["day"] * 7


# ----------------------------------------------------------------------------- reference
def reference(tp, fp, fn, groups):
    """The definitions, written plainly in float64 loops."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    names = list(dict.fromkeys(groups))
    n, k = tp.shape
    scores = []  # mIoU_i over the classes in image i's ground truth
    for i in range(n):
        values = [tp[i, c] / (tp[i, c] + fp[i, c] + fn[i, c]) for c in range(k) if tp[i, c] + fn[i, c] > 0]
        scores.append(sum(values) / len(values) if values else None)
    members = {g: [i for i in range(n) if groups[i] == g] for g in names}
    iou = {}
    for g in names:
        for c in range(k):
            t, p, f = (sum(x[i, c] for i in members[g]) for x in (tp, fp, fn))
            iou[g, c] = t / (t + p + f) if t + p + f > 0 else None
    miou = {g: np.mean([iou[g, c] for c in range(k) if iou[g, c] is not None]) for g in names}
    p_g = {g: np.mean([scores[i] for i in members[g] if scores[i] is not None]) for g in names}
    p_all = np.mean([s for s in scores if s is not None])
    spread = sum(abs(p_g[g] - p_all) for g in names)
    std = np.sqrt(np.mean([(p_g[g] - np.mean(list(p_g.values()))) ** 2 for g in names]))
    cells = {key: v for key, v in iou.items() if v is not None}
    es_class = []
    for c in range(k):
        holding = [i for i in range(n) if tp[i, c] + fn[i, c] > 0]
        per = {i: tp[i, c] / (tp[i, c] + fp[i, c] + fn[i, c]) for i in holding}
        overall = np.mean(list(per.values()))
        by_group = [np.mean([per[i] for i in holding if groups[i] == g]) for g in names
                    if any(groups[i] == g for i in holding)]
        es_class.append(overall / (1 + sum(abs(v - overall) for v in by_group)))
    return {
        "miou": [miou[g] for g in names], "worst_group": min(miou.values()),
        "group_gap": max(miou.values()) - min(miou.values()),
        "worst_cell": min(cells.values()), "worst_cell_at": min(cells, key=cells.get),
        "es_harvard": p_all / (1 + spread), "es_fairmedfm": p_all / (1 + std),
        "ratio_fairmedfm": (1 - min(p_g.values())) / (1 - max(p_g.values())), "es_class": es_class,
    }


def random_counts(rng, n=N_IMAGES, k=4):
    tp = rng.integers(0, 40, (n, k))
    tp[rng.random((n, k)) < 0.25] = 0  # classes absent from some images
    fp = rng.integers(0, 15, (n, k))
    fn = np.where(tp > 0, rng.integers(0, 15, (n, k)), 0)
    return tp, fp, fn


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_metrics_equal_the_formulas(seed):
    rng = np.random.default_rng(seed)
    tp, fp, fn = random_counts(rng)
    groups = list(rng.choice(["a", "b", "c"], N_IMAGES))
    codes = np.array([["a", "b", "c"].index(g) for g in groups])
    got = group_metrics(tp, fp, fn, codes, n_groups=3)
    names = list(dict.fromkeys(groups))
    want = reference(tp, fp, fn, groups)
    order = [["a", "b", "c"].index(g) for g in names]
    np.testing.assert_allclose(got["miou"][0, order], want["miou"], rtol=1e-12)
    for key in ("worst_group", "group_gap", "worst_cell", "es_harvard", "es_fairmedfm", "ratio_fairmedfm"):
        assert got[key][0] == pytest.approx(want[key], rel=1e-12), key
    np.testing.assert_allclose(got["es_class"][0], want["es_class"], rtol=1e-12)
    from fairseg_bench.core.groups import worst_cell

    g, c = worst_cell(got["iou"][0])
    assert (["a", "b", "c"][g], c) == want["worst_cell_at"]


def test_weights_of_ones_change_nothing_and_stratified_draws_keep_group_sizes():
    rng = np.random.default_rng(3)
    tp, fp, fn = random_counts(rng)
    codes = np.array([0] * 5 + [1] * 7)
    plain = group_metrics(tp, fp, fn, codes)
    ones = group_metrics(tp, fp, fn, codes, weights=np.ones((2, N_IMAGES)))
    np.testing.assert_allclose(ones["es_harvard"], plain["es_harvard"][0])
    counts = stratified_counts(codes, 50, seed=1)
    assert (counts[:, :5].sum(1) == 5).all() and (counts[:, 5:].sum(1) == 7).all()


def test_intervals_cover_the_true_value():
    """Two groups of images whose per-image IoU is drawn from known sets: the percentile intervals of
    ES (Harvard-FairSeg) and of the worst group cover the population values in most repetitions."""
    rng = np.random.default_rng(7)
    values = {0: np.array([0.5, 0.7]), 1: np.array([0.8, 0.9])}  # one class per image: IoU = tp / (tp + fp)
    p = {g: v.mean() for g, v in values.items()}
    p_all = (p[0] + p[1]) / 2  # equal group sizes
    true_es = p_all / (1 + abs(p[0] - p_all) + abs(p[1] - p_all))
    true_worst = 0.6  # group 0's dataset-level IoU: tp and fp of one image sum to 100
    codes = np.repeat([0, 1], 40)
    covered = {"es_harvard": 0, "worst_group": 0}
    repetitions = 40
    for _ in range(repetitions):
        iou = np.concatenate([rng.choice(values[0], 40), rng.choice(values[1], 40)])
        tp = np.round(100 * iou)[:, None]
        fp, fn = 100 - tp, np.zeros_like(tp)
        reps = group_metrics(tp, fp, fn, codes, weights=stratified_counts(codes, 300, rng.integers(1 << 30)))
        for key, truth in (("es_harvard", true_es), ("worst_group", true_worst)):
            low, high = percentile_interval(reps[key], 0.9)
            covered[key] += bool(low <= truth <= high)
    for key, hits in covered.items():
        assert hits / repetitions >= 0.75, (key, hits)  # nominal 0.9; 40 repetitions


# ----------------------------------------------------------------------------- records
def grouped_experiment(tmp_path, methods=("mcce", "tce"), seeds=(0,), attributes=True, names=None, edit=None):
    """Synthetic runs (12 images) with image names, sequences as image_attributes, and a config hash."""
    runs = write_experiment(tmp_path / "runs", methods=methods, seeds=seeds, n_images=N_IMAGES)
    for path in sorted(runs.rglob("metrics.json")):
        data = json.loads(path.read_text())
        data["image_names"] = names or [f"{s}_{i:03d}" for i, s in enumerate(SEQUENCES)]
        if attributes:
            data["image_attributes"] = {"sequence": SEQUENCES}
        if edit is not None:
            edit(data)
        path.write_text(json.dumps(data))
    return runs


def test_builtin_groups_come_from_image_attributes(tmp_path):
    results = read_results([grouped_experiment(tmp_path)])
    summary = summarize(results, n_boot=50)
    group = summary.groups["sequence"]
    assert group.groups == ["dusk", "day"] and group.sizes == [5, 7]
    run = results.runs_of("tce")[0]
    codes = np.array([0] * 5 + [1] * 7)
    want = group_metrics(**run.per_image, codes=codes)
    assert group.block.mean.loc["tce", "worst_group"] == pytest.approx(100 * want["worst_group"][0])
    assert group.block.mean.loc["tce", "es_harvard"] == pytest.approx(100 * want["es_harvard"][0])
    assert group.block.low.loc["tce", "worst_group"] <= group.block.mean.loc["tce", "worst_group"]
    assert not summarize(read_results([grouped_experiment(tmp_path / "x", attributes=False)]), n_boot=0).groups


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_groups_csv_with_several_attributes_and_warnings(tmp_path, capsys):
    runs = grouped_experiment(tmp_path)
    names = [f"{s}_{i:03d}" for i, s in enumerate(SEQUENCES)]
    rows = [f"{n}.png,{'wet' if i % 2 else 'dry'},{'a' if i < 6 else 'b'}" for i, n in enumerate(names[:-1])]
    csv = write_csv(tmp_path / "groups.csv", "image,weather,site\n" + "\n".join(rows) + "\nnot_there,dry,a\n")
    code, out, err = cli(capsys, "metrics", runs, "--groups", csv)
    assert code == 0, err
    assert "groups of images: weather" in out and "groups of images: site" in out
    assert "not in the results: not_there" in err and "left out of the groups" in err and names[-1] in err


@pytest.mark.parametrize("text, message", [
    ("", "empty file"),
    ("name,group\na,b\n", "header must be 'image,"),
    ("image\na\n", "header must be 'image,"),
    ("image,group\n", "no rows below the header"),
    ("image,group\na,x\na,y\n", "appears twice"),
    ("image,group\na,\n", "an empty cell"),
    ("image,group\na,x,y\n", "3 cells"),
    ("image,group\nnothing_matches,x\n", "no image name matches"),
])
def test_bad_groups_csv_is_a_one_line_error_exit_2(tmp_path, capsys, text, message):
    runs = grouped_experiment(tmp_path)
    before = {p: p.read_bytes() for p in runs.rglob("metrics.json")}
    code, out, err = cli(capsys, "metrics", runs, "--groups", write_csv(tmp_path / "g.csv", text))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert {p: p.read_bytes() for p in runs.rglob("metrics.json")} == before


def test_groups_of_a_source_without_per_image_statistics_is_an_error(tmp_path, capsys):
    table = write_csv(tmp_path / "iou.csv", "method,road,sky\nmcce,50,60\n")
    csv = write_csv(tmp_path / "g.csv", "image,group\na,x\n")
    code, _, err = cli(capsys, "metrics", table, "--groups", csv)
    assert code == 2 and "no per-image statistics" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- the gate and the report
def test_the_gate_fails_on_a_worst_group_regression(tmp_path, capsys):
    runs = grouped_experiment(tmp_path / "base", methods=("mcce",))
    baseline = tmp_path / "baseline.json"
    assert cli(capsys, "check", runs, "--baseline", baseline, "--update")[0] == 0
    stored = json.loads(baseline.read_text())["methods"]["mcce"]["fairness"]
    assert "worst_group" in stored
    assert cli(capsys, "check", runs, "--baseline", baseline)[0] == 0

    def worse_dusk(data):  # the dusk images lose true positives to false negatives
        for i in range(5):
            moved = np.asarray(data["per_image"]["tp"][i]) // 2
            data["per_image"]["tp"][i] = (np.asarray(data["per_image"]["tp"][i]) - moved).tolist()
            data["per_image"]["fn"][i] = (np.asarray(data["per_image"]["fn"][i]) + moved).tolist()
        tp, fp, fn = (np.asarray(data["per_image"][k]).sum(0) for k in ("tp", "fp", "fn"))
        cm = np.asarray(data["confusion_matrix"])
        np.fill_diagonal(cm, tp)  # keep the record consistent: the reader checks iou against the matrix
        data["confusion_matrix"] = cm.tolist()
        data["iou"] = (tp / (tp + cm.sum(0) - tp + cm.sum(1) - tp)).tolist()
        data["miou"] = float(np.mean(data["iou"]))

    worse = grouped_experiment(tmp_path / "cur", methods=("mcce",), edit=worse_dusk)
    code, out, err = cli(capsys, "check", worse, "--baseline", baseline, "--tolerance", "worst_group=3pp,all=100pp",
                         "--per-class-tolerance", "100pp")
    assert code == 1, out + err
    assert "REGRESSION mcce worst_group" in out and "allowed 3.00 pp" in out


def test_report_writes_the_group_section_and_figures(tmp_path, capsys):
    runs = grouped_experiment(tmp_path, seeds=(0, 1))
    out = tmp_path / "report"
    code, _, err = cli(capsys, "report", runs, "--out", out, "--bootstrap", "50", "--format", "md,csv")
    assert code == 0, err
    text = (out / "report.md").read_text()
    assert "Fairness across groups of images: sequence" in text and "ES (Harvard-FairSeg)" in text
    assert (out / "table_groups_sequence.csv").is_file() and (out / "table_groups_sequence_es_class.csv").is_file()
    for name in ("groups_sequence_heatmap", "groups_sequence_gap"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
