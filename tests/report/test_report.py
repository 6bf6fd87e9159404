"""Reports from synthetic result folders: every table cell against numpy by hand, the LaTeX, the
Markdown, the figures, the HTML page and the command's errors."""
from __future__ import annotations

import base64
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from support.report_synthetic import CLASSES, write_experiment, write_run
from support.tables import markdown_tables, plain

from fairseg_bench.cli import main
from fairseg_bench.report import build_report

METHODS = ("mcce", "focal", "tce")
SEEDS = (0, 1)
N_BOOT = 300


# --- independent references (numpy by hand, from the files) ----------------------------------

def read_stats(folder: Path) -> dict[str, np.ndarray]:
    data = json.loads((folder / "metrics.json").read_text())
    return {k: np.asarray(v, dtype=np.float64) for k, v in data["per_image"].items()}


def iou_from_stats(stats, rows=None) -> np.ndarray:
    """IoU (%) per class from per-image tp/fp/fn summed over ``rows`` (all images by default)."""
    pick = (lambda a: a) if rows is None else (lambda a: a[rows])
    tp, fp, fn = (pick(stats[k]).sum(axis=0) for k in ("tp", "fp", "fn"))
    union = tp + fp + fn
    return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan) * 100


def seed_ious(exp: Path, method: str) -> np.ndarray:
    """(S, K) IoU (%) of every seed of a method."""
    return np.stack([iou_from_stats(read_stats(exp / f"{method}-s{s}")) for s in SEEDS])


def fairness_by_hand(iou: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Table 3 of the paper, written out from its definitions."""
    k = math.ceil(0.25 * len(iou))
    order = sorted(range(len(iou)), key=lambda c: (reference[c], c))
    lo, hi = np.percentile(iou, 25), np.percentile(iou, 75)
    std = float(np.std(iou, ddof=1))
    mean = float(np.mean(iou))
    n = len(iou)
    gini = sum(abs(a - b) for a in iou for b in iou) / (2 * n * n * mean)
    return {
        "miou": mean,
        "sorted_bottom": float(np.mean([iou[c] for c in order[:k]])),
        "sorted_top": float(np.mean([iou[c] for c in order[-k:]])),
        "pct_bottom_threshold": lo, "pct_bottom_mean": float(np.mean(iou[iou <= lo])),
        "pct_top_threshold": hi, "pct_top_mean": float(np.mean(iou[iou >= hi])),
        "worst": float(iou.min()), "std": std, "best": float(iou.max()),
        "gap": float(iou.max() - iou.min()), "cov": 100 * std / mean, "gini": 100 * gini,  # ratios x100
    }


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs"), METHODS, SEEDS)


@pytest.fixture(scope="module")
def report(experiment, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report")
    written = build_report([experiment], reference="mcce", out=out, n_boot=N_BOOT)
    return out, written


# --- tables ----------------------------------------------------------------------------------

def test_table1_cells_equal_numpy_by_hand(experiment, report):
    out, _ = report
    ious = {m: seed_ious(experiment, m) for m in METHODS}
    mean = {m: v.mean(axis=0) for m, v in ious.items()}
    std = {m: v.std(axis=0, ddof=1) for m, v in ious.items()}
    order = [CLASSES[i] for i in np.argsort(mean["mcce"], kind="stable")]
    csv = pd.read_csv(out / "table1.csv", index_col="method")
    assert list(csv.columns) == order + ["mIoU"]
    assert list(csv.index) == list(METHODS)
    for m in METHODS:
        expected = [mean[m][CLASSES.index(c)] for c in order] + [ious[m].mean(axis=1).mean()]
        np.testing.assert_allclose(csv.loc[m].to_numpy(), expected, rtol=1e-5)

    md = (out / "report.md").read_text()
    part1, part2 = markdown_tables(md)[:2]
    assert part1[0][0] == "Method" and part2[0][0] == "continued"
    header = part1[0][1:] + part2[0][1:]
    assert header == order + ["mIoU"]
    assert len(part1[0]) - len(part2[0]) in (0, 1)  # split in two rows of classes
    for r, m in enumerate(METHODS, start=1):
        cells = part1[r][1:] + part2[r][1:]
        assert part1[r][0] == part2[r][0] == m
        for c, cell in zip(order, cells):
            i = CLASSES.index(c)
            assert plain(cell) == f"{mean[m][i]:.2f} ± {std[m][i]:.2f}"
            printed = {round(mean[x][i], 2) for x in METHODS}
            is_best = round(mean[m][i], 2) == max(printed) and len(printed) > 1
            assert cell.startswith("**") == is_best, (m, c, cell)
        miou = ious[m].mean(axis=1)
        assert plain(cells[-1]) == f"{miou.mean():.2f} ± {miou.std(ddof=1):.2f}"


def test_table3_cells_equal_numpy_by_hand(experiment, report):
    out, _ = report
    ious = {m: seed_ious(experiment, m) for m in METHODS}
    reference = ious["mcce"].mean(axis=0)  # the seed-mean reference orders the classes
    csv = pd.read_csv(out / "table3.csv", index_col="method")
    for m in METHODS:
        per_seed = [fairness_by_hand(iou, reference) for iou in ious[m]]
        for key in per_seed[0]:
            values = np.array([p[key] for p in per_seed])
            assert csv.loc[m, key] == pytest.approx(values.mean(), rel=1e-5, abs=1e-9), (m, key)
            assert csv.loc[m, f"{key}_std"] == pytest.approx(values.std(ddof=1), rel=1e-5, abs=1e-9), (m, key)
            assert csv.loc[m, f"{key}_low"] <= csv.loc[m, f"{key}_high"]
    md = (out / "report.md").read_text()
    table = next(t for t in markdown_tables(md) if t[0][1] == "sorted 25% bottom")
    assert table[0][1:] == ["sorted 25% bottom", "sorted 25% top", "25th perc. bottom threshold",
                            "25th perc. bottom mIoU", "75th perc. top threshold", "75th perc. top mIoU",
                            "overall worst", "overall std.", "overall mIoU"]
    worst = {m: np.array([fairness_by_hand(i, reference)["worst"] for i in ious[m]]) for m in METHODS}
    best_worst = max(round(w.mean(), 2) for w in worst.values())
    for row in table[1:]:
        cell = row[7]
        w = worst[row[0]]
        assert plain(cell) == f"{w.mean():.2f} ± {w.std(ddof=1):.2f}"
        assert cell.startswith("**") == (round(w.mean(), 2) == best_worst)


def test_paired_bootstrap_marks_and_intervals(tmp_path):
    """tce equals mcce image by image except on 'truck', where it is far better: only truck (and
    the mIoU) are marked; the intervals match a bootstrap written out by hand."""
    exp = write_experiment(tmp_path / "runs", ("mcce",), SEEDS, n_images=30)
    for seed in SEEDS:
        src, dst = exp / f"mcce-s{seed}", exp / f"tce-s{seed}"
        shutil.copytree(src, dst)
        data = json.loads((dst / "metrics.json").read_text())
        truck = CLASSES.index("truck")
        stats = {k: np.asarray(v) for k, v in data["per_image"].items()}
        moved = stats["fn"][:, truck] * 3 // 4
        stats["tp"][:, truck] += moved
        stats["fn"][:, truck] -= moved
        data["per_image"] = {k: v.tolist() for k, v in stats.items()}
        tp, fp, fn = (stats[k].sum(0) for k in ("tp", "fp", "fn"))
        data["iou"] = (tp / (tp + fp + fn)).tolist()
        data["miou"] = float(np.mean(data["iou"]))
        data["confusion_matrix"] = np.zeros((len(CLASSES),) * 2, int).tolist()  # the per-image counts only
        data["method"] = "tce"
        (dst / "metrics.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    build_report([exp], out=out, formats="csv,md", n_boot=1000, seed=3, figures=False)
    long = pd.read_csv(out / "table1_delta.csv", index_col=["method", "class"])
    marked = set(long.index[long["significant"]].get_level_values("class"))
    assert marked == {"truck", "mIoU"}
    untouched = long.loc["tce"].drop(index=["truck", "mIoU"])
    assert (untouched["delta"] == 0).all()
    assert ((untouched["delta_low"] <= 0) & (untouched["delta_high"] >= 0)).all()

    # The same interval from an independent two-level bootstrap: resample the images (the same
    # draw for both methods and every seed) and each method's seeds; difference of the seed
    # means; percentiles.
    stats = {m: [read_stats(exp / f"{m}-s{s}") for s in SEEDS] for m in ("mcce", "tce")}
    rng = np.random.default_rng(12345)
    n = stats["mcce"][0]["tp"].shape[0]
    diffs = []
    for _ in range(2000):
        rows = rng.integers(0, n, n)
        seed_mean = {m: np.mean([iou_from_stats(stats[m][s], rows)[truck]
                                 for s in rng.integers(0, len(SEEDS), len(SEEDS))]) for m in stats}
        diffs.append(seed_mean["tce"] - seed_mean["mcce"])
    low, high = np.percentile(diffs, [2.5, 97.5])
    width = high - low
    assert long.loc[("tce", "truck"), "delta_low"] == pytest.approx(low, abs=0.15 * width)
    assert long.loc[("tce", "truck"), "delta_high"] == pytest.approx(high, abs=0.15 * width)
    md = (out / "report.md").read_text()
    delta_section = md.split("### Table 1 Δ")[1].split("###")[0]
    delta_rows = markdown_tables(delta_section)
    cells = dict(zip(delta_rows[0][0] + delta_rows[1][0], delta_rows[0][1] + delta_rows[1][1]))
    assert cells["truck"].endswith("†") and not cells["road"].endswith("†")


def test_table2_against_a_published_row(experiment, tmp_path):
    sota = pd.DataFrame([[70, 20, 10, 80, 75, 90]], columns=CLASSES)
    sota.insert(0, "method", "SoTA")
    sota.to_csv(tmp_path / "sota.csv", index=False)
    build_report([experiment], out=tmp_path / "out", formats=("csv",), sota_csv=tmp_path / "sota.csv", n_boot=0,
                 figures=False)
    table = pd.read_csv(tmp_path / "out" / "table2.csv", index_col="method")
    assert list(table.columns) == ["pole", "wall", "road", "bus", "truck", "sky", "mIoU"]
    assert list(table.index) == ["SoTA", *METHODS]
    assert table.loc["SoTA", "mIoU"] == pytest.approx(np.mean([70, 20, 10, 80, 75, 90]))
    np.testing.assert_allclose(table.loc["tce", CLASSES], seed_ious(experiment, "tce").mean(axis=0), rtol=1e-5)


def test_single_seed_has_no_spread_and_csv_input_is_the_same_path(tmp_path):
    exp = write_experiment(tmp_path / "runs", METHODS, (0,))
    build_report([exp], out=tmp_path / "a", formats="csv,md", n_boot=0, figures=False)
    md = (tmp_path / "a" / "report.md").read_text()
    assert "±" not in md
    # Table 1's CSV is itself a valid input: the same tables come back.
    build_report([tmp_path / "a" / "table1.csv"], out=tmp_path / "b", formats="csv", n_boot=0, figures=False)
    for name in ("table1.csv", "table3.csv"):
        a = pd.read_csv(tmp_path / "a" / name, index_col="method")
        b = pd.read_csv(tmp_path / "b" / name, index_col="method")
        b = b[a.columns]
        np.testing.assert_allclose(a.filter(regex="^(?!.*_(low|high|std)$)").to_numpy(float),
                                   b.filter(regex="^(?!.*_(low|high|std)$)").to_numpy(float), rtol=1e-4)


# --- LaTeX and Markdown structure ------------------------------------------------------------

def _latex_columns(row: str) -> int:
    cells = re.split(r"(?<!\\)&", row)
    return sum(int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)


def test_latex_structure(report):
    out, _ = report
    for tex in sorted(out.glob("*.tex")):
        text = tex.read_text()
        assert text.count("{") - text.count("\\{") == text.count("}") - text.count("\\}"), tex
        tabulars = re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", text, re.S)
        assert tabulars, tex
        for spec, body in tabulars:
            assert body.count("\\toprule") == body.count("\\midrule") == body.count("\\bottomrule") == 1
            rows = [r for r in body.split("\\\\") if "&" in r]
            assert rows and all(_latex_columns(r.split("\\midrule")[-1]) == len(spec) for r in rows), tex
        assert "\\begin{table}" in text and "\\caption{" in text


def test_latex_compiles(report, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (structure is checked in test_latex_structure)")
    out, _ = report
    inputs = "\n".join(f"\\input{{{tex.name}}}\\clearpage" for tex in sorted(out.glob("*.tex")))
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n\\begin{document}\n" + inputs
                   + "\n\\end{document}\n")
    for tex in out.glob("*.tex"):
        shutil.copy(tex, tmp_path)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    assert "Overfull \\hbox" not in (tmp_path / "doc.log").read_text()  # no table wider than the page


def test_markdown_tables_render(report):
    out, _ = report
    tables = markdown_tables((out / "report.md").read_text())
    assert len(tables) == 2 + 2 + 2 + 1  # Table 1, Table 1 Δ, Table 3: two blocks each; the image-level table
    assert "![" in (out / "report.md").read_text()


# --- figures and HTML ------------------------------------------------------------------------

def test_figures_written_with_their_size(experiment, report):
    from fairseg_bench.report import figures as fg
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    out, written = report
    expected = {"tradeoff", "per_class_iou", "delta_iou", "fairness", "sampler_weights", "training_curves",
                "qualitative", "confusion_mcce"}
    for name in expected:
        png, pdf = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf"
        assert png in written and pdf in written
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    data = read_results([experiment])
    summary = summarize(data, "mcce", n_boot=20)
    fig = fg.plot_per_class_iou(summary)
    png, _ = fg.save_figure(fig, out / "check", "iou")
    width, height = (fig.get_size_inches() * fg.DPI).round().astype(int)
    assert Image.open(png).size == (width, height)


def test_figures_drawn_in_forked_workers_are_the_serial_bytes(experiment):
    """The report's figures drawn two at a time in forked processes: the same PNG and PDF bytes, in
    order, as drawn one by one here; a builder that draws nothing gives None in its place."""
    from functools import partial

    from fairseg_bench.report import figures as fg
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    summary = summarize(read_results([experiment]), "mcce", n_boot=20)
    builders = [partial(fg.plot_per_class_iou, summary), lambda: None, partial(fg.plot_fairness, summary),
                partial(fg.plot_delta_iou, summary)]
    parallel = fg.draw_figures(builders, workers=2)
    serial = fg.draw_figures(builders, workers=1)
    from fairseg_bench import cpu_process

    assert parallel[1] is None and serial[1] is None and not cpu_process._FORKED
    for drawn, alone in zip(parallel, serial):
        assert drawn == alone
    png, pdf = parallel[0]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and pdf[:5] == b"%PDF-" and png != parallel[2][0]


def test_confusion_figure_is_row_normalised(experiment):
    from fairseg_bench.report import figures as fg
    from fairseg_bench.results.read import read_results

    data = read_results([experiment])
    fig = fg.plot_confusion(data, "focal")
    shown = np.asarray(fig.axes[0].collections[0].get_array()).reshape(len(CLASSES), len(CLASSES))
    cm = sum(np.asarray(json.loads((experiment / f"focal-s{s}" / "metrics.json").read_text())["confusion_matrix"])
             for s in SEEDS)
    np.testing.assert_allclose(shown, cm / cm.sum(axis=1, keepdims=True))


def test_qualitative_picks_the_samples_where_methods_differ_most():
    from fairseg_bench.report.figures import select_samples

    target = np.zeros((3, 4, 4), dtype=np.uint8)
    target[:, :, 2:] = 1
    same = target.copy()
    other = target.copy()
    other[1] = 1 - target[1]   # sample 1: every pixel wrong
    other[2, 0, 0] = 1         # sample 2: one pixel wrong
    chosen = select_samples(target, {"a": same, "b": other}, 2, 255, 2)
    assert chosen == [1, 2]


def test_image_level_figure_shows_the_summary_numbers(experiment):
    """The per-image mIoU distribution plots the numbers the image-level table summarises: per seed,
    their mean and worst-q % are the summary's; pooled over seeds (the same images), the mean in the
    legend is the summary's mIoU^I."""
    from fairseg_bench.core.image_metrics import worst_mean
    from fairseg_bench.report.image_figures import per_image_miou_percent, plot_image_miou
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import IMAGE_KEYS, summarize

    data = read_results([experiment])
    summary = summarize(data, "mcce", n_boot=0)
    image = summary.blocks["image"]
    pooled = {}
    for m in summary.methods:
        for s, run in enumerate(data.runs_of(m)):
            values = per_image_miou_percent([run.per_image])
            per_seed = dict(zip(IMAGE_KEYS, image.per_seed[m][s], strict=True))
            assert values.mean() == pytest.approx(per_seed["miou_image"], rel=1e-12)
            for q in (5, 10):
                assert worst_mean(values, q) == pytest.approx(per_seed[f"miou_image_worst_{q}"], rel=1e-12)
        pooled[m] = per_image_miou_percent([r.per_image for r in data.runs_of(m)])
        assert pooled[m].mean() == pytest.approx(image.mean.loc[m, "miou_image"], rel=1e-12)
    legend = [t.get_text() for t in plot_image_miou(pooled, "mcce").axes[0].get_legend().get_texts()]
    assert legend == [f"{m} (mean {image.mean.loc[m, 'miou_image']:.1f}, n={pooled[m].size})" for m in pooled]


def test_html_is_self_contained(report):
    out, _ = report
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "file:" not in page
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 9 and all(s.startswith("data:image/png;base64,") for s in sources)  # with image_miou
    for s in sources:
        Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).verify()
    assert "<link" not in page and "<script" not in page
    assert page.count("<table") >= 6 and "Table 3: fairness across classes (%)." in page
    assert "loss: focal" in page  # a run config


def test_report_needs_no_torch(experiment, tmp_path):
    code = (
        "import sys\n"
        "import fairseg_bench.report, fairseg_bench.cli.report\n"
        "from fairseg_bench.report import build_report\n"
        f"build_report([{str(experiment)!r}], out={str(tmp_path)!r}, formats='md,html', n_boot=10)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]


# --- the command and its errors --------------------------------------------------------------

def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def test_cli_writes_the_report(experiment, tmp_path, capsys):
    code, stdout, _ = cli(capsys, experiment, "--reference", "FOCAL", "--out", tmp_path, "--format", "md,csv",
                          "--bootstrap", "20", "--no-figures")
    assert code == 0 and "wrote" in stdout
    assert (tmp_path / "report.md").is_file() and not (tmp_path / "index.html").exists()
    assert not (tmp_path / "figures").exists()
    assert pd.read_csv(tmp_path / "table1.csv")["method"][0] == "focal"


@pytest.mark.parametrize("case", ["empty", "classes", "reference", "format", "csv-classes"])
def test_cli_bad_input_exits_2_with_one_line(case, experiment, tmp_path, capsys):
    args = [experiment, "--out", tmp_path / "out"]
    if case == "empty":
        (tmp_path / "empty").mkdir()
        args = [tmp_path / "empty"]
    elif case == "classes":
        write_run(tmp_path / "other", "mcce", 0, classes=["a", "b", "c"], quality=[3, 3, 3])
        args = [experiment, tmp_path / "other"]
    elif case == "reference":
        args += ["--reference", "nope"]
    elif case == "format":
        args += ["--format", "md,docx"]
    elif case == "csv-classes":
        (tmp_path / "x.csv").write_text("method,a,b\nm,1,2\n")
        args = [experiment, tmp_path / "x.csv"]
    code, _, err = cli(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    hint = {"empty": "no run metrics.json", "classes": "must have the same classes", "reference": "'nope'",
            "format": "docx", "csv-classes": "must have the same classes"}[case]
    assert hint in lines[0]


def test_cli_writes_a_baseline(experiment, tmp_path, capsys):
    from fairseg_bench import check

    code, _, err = cli(capsys, experiment, "--out", tmp_path, "--format", "csv", "--bootstrap", "0", "--no-figures",
                       "--baseline", tmp_path / "baseline.json")
    assert code == 0, err
    baseline = check.read_baseline(tmp_path / "baseline.json")
    assert sorted(baseline["methods"]) == sorted(METHODS)


def test_csv_with_seeds_gives_mean_and_std(tmp_path):
    rows = pd.DataFrame({"method": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
                         "x": [10.0, 20.0, 30.0, 50.0], "y": [80.0, 60.0, 40.0, 40.0]})
    rows.to_csv(tmp_path / "iou.csv", index=False)
    build_report([tmp_path / "iou.csv"], reference="a", out=tmp_path / "out", formats="md,csv", figures=False)
    first, second = markdown_tables((tmp_path / "out" / "report.md").read_text())[:2]
    assert first[0] + second[0][1:] == ["Method", "x", "y", "mIoU"]  # a's means: x 15 < y 70
    row_b = first[2] + second[2][1:]
    assert [plain(c) for c in row_b] == ["b", f"40.00 ± {np.std([30, 50], ddof=1):.2f}", "40.00 ± 0.00",
                                         f"40.00 ± {np.std([35, 45], ddof=1):.2f}"]


def test_runs_of_several_experiments_keep_apart(tmp_path):
    write_experiment(tmp_path / "runs", ("mcce",), (0,), experiment="one")
    write_experiment(tmp_path / "runs", ("mcce",), (0,), experiment="two")
    build_report([tmp_path / "runs"], reference="one/mcce", out=tmp_path / "out", formats="csv", figures=False)
    assert list(pd.read_csv(tmp_path / "out" / "table1.csv")["method"]) == ["one/mcce", "two/mcce"]


def test_a_sweep_in_progress_is_reported_with_what_it_lacks(tmp_path, capsys):
    exp = write_experiment(tmp_path / "runs", METHODS, (0,))
    (exp / "tce-t1-s1").mkdir()
    (exp / "tce-t1-s1" / "config.yaml").write_text("losses: [tce]\n")  # started, not finished
    (exp / ".sweep").mkdir()
    (exp / ".sweep" / "mcce-s1.json").write_text('{"state": "queued"}')  # known to the sweep only
    (exp / ".sweep" / "mcce-s0.json").write_text('{"state": "done"}')  # finished: not listed
    code, _, err = cli(capsys, exp, "--out", tmp_path / "out", "--format", "md", "--no-figures",
                       "--bootstrap", "0")
    assert code == 0, err
    message = f"2 run(s) under {exp} have not finished and are left out: mcce-s1 (queued), tce-t1-s1 (not started)"
    assert f"warning: {message}" in err
    assert message in (tmp_path / "out" / "report.md").read_text()
    shutil.rmtree(exp / "tce-t1-s1")
    (exp / ".sweep" / "mcce-s1.json").unlink()
    code, _, err = cli(capsys, exp, "--out", tmp_path / "out", "--format", "md", "--no-figures", "--bootstrap", "0")
    assert code == 0 and "not finished" not in err
