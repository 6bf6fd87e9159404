"""Outputs that never mislead and that people paste: ties, fractions, labels, LaTeX that compiles,
reports swapped in whole, the figures, the CLI's error boundary and the package's shape."""
from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import FIXTURES, ROOT
from support.cli import call_main
from support.report_synthetic import write_experiment

TABLE1 = FIXTURES / "paper_table1.csv"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return write_experiment(tmp_path_factory.mktemp("runs"), ("mcce", "focal", "tce"), (0, 1))


# --- ties at the cut -------------------------------------------------------------------------

def test_a_tie_at_the_bottom_cut_is_a_warning_and_a_note_with_the_range(tmp_path, capsys):
    # the reference gives 0 to a, b and c: which two are "bottom" is decided by class index only
    (tmp_path / "t.csv").write_text("method,a,b,c,d,e,f,g,h\nref,0,0,0,50,60,70,80,90\nx,10,40,70,50,60,70,80,90\n")
    code, out, err = call_main(capsys, "metrics", tmp_path / "t.csv", "-r", "ref", "--format", "json")
    assert code == 0
    assert "Tie at the bottom-2 cut" in err and "a, b, c" in err
    assert "sorted_bottom over every choice: x 25.00–55.00" in err  # (10+40)/2 .. (40+70)/2
    doc = json.loads(out)
    assert doc["methods"]["x"]["fairness"]["sorted_bottom"] == 25.0  # by class index: a and b
    assert any("Tie at the bottom-2 cut" in n for n in doc["notes"])
    code, out, _ = call_main(capsys, "metrics", tmp_path / "t.csv", "-r", "ref", "--table", "fairness")
    assert "x 25.00–55.00" in out  # the note under the table


def test_no_tie_no_warning(capsys):
    code, _, err = call_main(capsys, "metrics", TABLE1, "--format", "json")
    assert code == 0 and err == ""


def test_core_tie_helpers():
    from fairseg_bench.core.fairness import cut_ties, sorted_group_range

    assert cut_ties([0.0, 0.0, 0.0, 0.5, 0.6, 0.7, 0.8, 0.9]) == {"bottom": [0, 1, 2], "top": []}
    assert cut_ties([0.1, 0.2, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9]) == {"bottom": [], "top": [5, 6, 7]}
    assert sorted_group_range([1, 4, 7, 5], [0, 0, 0, 9], 0.5) == (2.5, 5.5)


# --- fraction, labels, class order -----------------------------------------------------------

@pytest.mark.parametrize("command", ["metrics", "report", "check"])
@pytest.mark.parametrize("fraction", ["0.9", "0", "-0.1", "0.51"])
def test_fraction_outside_zero_to_a_half_is_an_error(command, fraction, experiment, tmp_path, capsys):
    extra = {"metrics": [], "report": ["--out", tmp_path / "r"],
             "check": ["--baseline", tmp_path / "b.json", "--update"]}
    code, _, err = call_main(capsys, command, experiment, "--fraction", fraction, *extra[command])
    assert code == 2 and "(0, 0.5]" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists() and not (tmp_path / "b.json").exists()


def test_display_labels_and_class_order(experiment, tmp_path, capsys):
    code, out, _ = call_main(capsys, "metrics", experiment, "--label", "mcce=MCCE,tce=TCE $t=1$", "--table",
                             "per-class", "--class-order", "dataset")
    assert code == 0
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["Method", "MCCE", "focal", "TCE $t=1$"]
    header = [c.strip() for c in out.splitlines()[2].split("|")[2:-1]]
    assert header == ["road", "wall", "pole", "truck", "bus", "sky", "mIoU"]  # the dataset's order
    (tmp_path / "names.yaml").write_text("mcce: Cross-entropy\nfocal: Focal loss\n")
    code, out, _ = call_main(capsys, "metrics", experiment, "--label", tmp_path / "names.yaml", "--format", "latex")
    assert "Cross-entropy &" in out and "Focal loss &" in out
    code, out, _ = call_main(capsys, "metrics", experiment, "--label", "mcce=MCCE", "--format", "json")
    assert "mcce" in json.loads(out)["methods"]  # data formats keep the method labels
    code, _, err = call_main(capsys, "metrics", experiment, "--label", "mcce")
    assert code == 2 and "METHOD=NAME" in err


def test_cov_and_gini_in_one_unit_everywhere(experiment, tmp_path, capsys):
    doc = json.loads(call_main(capsys, "metrics", experiment, "--format", "json")[1])
    call_main(capsys, "check", experiment, "--baseline", tmp_path / "b.json", "--update")
    baseline = json.loads((tmp_path / "b.json").read_text())
    for method, entry in doc["methods"].items():
        fair = entry["fairness"]
        assert 1 < fair["cov"] < 100 and fair["cov"] == pytest.approx(100 * fair["std"] / fair["miou"], rel=0.2)
        assert baseline["methods"][method]["fairness"]["cov"] == pytest.approx(fair["cov"], rel=1e-12)
        assert baseline["methods"][method]["fairness"]["gini"] == pytest.approx(fair["gini"], rel=1e-12)
    code, out, _ = call_main(capsys, "metrics", experiment, "--table", "fairness")
    assert "CoV and Gini ×100" in out


# --- LaTeX that compiles ---------------------------------------------------------------------

def compile_latex(tmp_path: Path, body: str, *, twocolumn: bool = False) -> str:
    """pdflatex on an article with booktabs and graphicx only; returns the log."""
    doc = tmp_path / "doc.tex"
    options = "[twocolumn]" if twocolumn else ""
    doc.write_text(f"\\documentclass{options}{{article}}\n\\usepackage{{booktabs,graphicx}}\n\\begin{{document}}\n"
                   f"{body}\n\\end{{document}}\n")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    log = (tmp_path / "doc.log").read_text()
    assert "Overfull \\hbox" not in log, "a table is wider than the text"
    return log


needs_pdflatex = pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (CI installs it)")


@needs_pdflatex
@pytest.mark.parametrize("options", [[], ["--two-rows"], ["--latex-env", "table*"], ["--table", "fairness"],
                                     ["--label", "TCE t=1=TCE $t=1$ & 50%_x"]])
def test_metrics_latex_compiles(options, tmp_path, capsys):
    code, out, err = call_main(capsys, "metrics", TABLE1, "--format", "latex", *options)
    assert code == 0, err
    assert out.count("\\begin{tabular}") == out.count("\\end{tabular}") >= 1
    assert out.rfind("\\end{tabular}") < out.rfind("\\end{table")  # every tabular inside its float
    compile_latex(tmp_path, out, twocolumn="table*" in options)


@needs_pdflatex
def test_report_latex_compiles_in_two_columns(experiment, tmp_path, capsys):
    code, _, err = call_main(capsys, "report", experiment, "--out", tmp_path / "rep", "--format", "latex",
                             "--no-figures", "--bootstrap", "0", "--latex-env", "table*")
    assert code == 0, err
    body = "\n".join((tmp_path / "rep" / f"{n}.tex").read_text() for n in ("table1", "table1_delta", "table3"))
    assert "\\begin{table*}" in body
    compile_latex(tmp_path, body, twocolumn=True)


def test_latex_text_is_escaped():
    from fairseg_bench.report.tables import latex_text

    assert latex_text("25% & a_b #1") == "25\\% \\& a\\_b \\#1"
    assert latex_text("TCE $t=1$") == "TCE $t=1$" and latex_text("5$") == "5\\$"


# --- reports swapped in whole ----------------------------------------------------------------

def test_an_interrupted_report_leaves_the_previous_one_whole(experiment, tmp_path, monkeypatch):
    from fairseg_bench import report

    out = tmp_path / "rep"
    report.build_report([experiment], out=out, formats="md,csv", figures=False, n_boot=0)
    (out / "make.py").write_text("# mine\n")  # a file the report does not own
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def interrupted(*args, **kwargs):
        (args[0] / "report.md").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "_write_files", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.build_report([experiment], out=out, formats="md,csv", figures=False, n_boot=0)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary folder left


def test_files_of_an_earlier_report_never_linger(experiment, tmp_path):
    from fairseg_bench.report import build_report

    out = tmp_path / "rep"
    build_report([experiment], out=out, formats="md,csv,latex", figures=False, n_boot=0)
    (out / "figures").mkdir()
    (out / "figures" / "old_figure.png").write_bytes(b"stale")
    (out / "table2.tex").write_text("stale")
    (out / "notes.txt").write_text("mine")
    build_report([experiment], out=out, formats="md", figures=False, n_boot=0)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "report.md"]


def test_a_report_never_replaces_a_results_folder(experiment, capsys):
    code, _, err = call_main(capsys, "report", experiment, "--out", experiment.parent, "--no-figures")
    assert code == 2 and "holds run results" in err
    assert (experiment / "mcce-s0" / "metrics.json").is_file()


# --- figures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def summary(experiment):
    from fairseg_bench.results.read import read_results
    from fairseg_bench.results.summary import summarize

    return read_results([experiment]), summarize(read_results([experiment]), "mcce", n_boot=50)


def test_fairness_panels_share_one_axis_per_unit_and_show_seeds(summary):
    from fairseg_bench.report.figures import FAIRNESS_PANELS, plot_fairness

    results, s = summary
    fig = plot_fairness(s)
    axes = fig.axes[: len(FAIRNESS_PANELS)]
    keys = [k for k, _, _ in FAIRNESS_PANELS]
    iou_axes = [ax for ax, k in zip(axes, keys) if k not in ("cov", "gini")]
    assert len({ax.get_xlim() for ax in iou_axes}) == 1  # one scale for every pp panel
    mcce_row = s.blocks["fairness"].per_seed["focal"]
    dots = [line for line in axes[0].get_lines() if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in dots) == sum(len(v) for v in s.blocks["fairness"].per_seed.values())
    assert mcce_row.shape[0] == 2


def test_tradeoff_figure_marks_the_pareto_front(summary):
    from fairseg_bench.report.figures import pareto_front, plot_tradeoff

    assert pareto_front(np.array([1.0, 2.0, 3.0, 2.5]), np.array([3.0, 2.0, 1.0, 0.5])) == [0, 1, 2]
    _, s = summary
    fig = plot_tradeoff(s, {"tce": "TCE"})
    assert [ax.get_ylabel() for ax in fig.axes] == ["worst-class IoU (%)", "sorted bottom 25% IoU (%)"]
    assert "TCE" in [t.get_text() for t in fig.axes[0].texts]


def test_sampler_weights_are_smoothed_and_the_movers_named(summary):
    from fairseg_bench.report.figures import plot_sampler_weights

    results, s = summary
    fig = plot_sampler_weights(results, s.methods, n_labelled=3)
    names = [t.get_text() for t in fig.axes[0].texts]
    assert len(names) == 3 and set(names) <= set(results.classes)


def test_figure_builders_are_named_plot():
    from fairseg_bench.report import figures

    builders = [n for n in dir(figures) if callable(getattr(figures, n)) and n.startswith("plot_")]
    assert {"plot_per_class_iou", "plot_fairness", "plot_tradeoff", "plot_sampler_weights"} <= set(builders)
    assert not hasattr(figures, "per_class_iou") and not hasattr(figures, "fairness")


# --- the CLI's error boundary and the package's shape ----------------------------------------

def test_an_internal_bug_shows_its_traceback(monkeypatch, capsys):
    import fairseg_bench.results.read as read

    def broken(*args, **kwargs):
        raise KeyError("a bug, not a user mistake")

    monkeypatch.setattr(read, "read_results", broken)
    from fairseg_bench.cli import main

    with pytest.raises(KeyError):
        main(["metrics", str(TABLE1)])


def test_one_results_path_and_no_parallel_modules():
    for gone in ("fairseg_bench.metrics_io", "fairseg_bench.tables", "fairseg_bench.report.inputs",
                 "fairseg_bench.report.summary", "fairseg_bench.foreign_formats"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(gone)
    for module in ("baseline", "tolerances", "compare", "markdown"):
        importlib.import_module(f"fairseg_bench.check.{module}")
    from fairseg_bench.core import stats

    assert callable(stats.spread_halfwidth) and callable(stats.seed_std)
    from fairseg_bench.results.read import INPUT_FORMATS

    assert {f.kind for f in INPUT_FORMATS} == {"json", "csv"}


def test_a_new_input_format_is_one_registry_entry(tmp_path, capsys):
    from fairseg_bench.results import read

    def detect(obj):
        return isinstance(obj, dict) and "averageScoreClasses" in obj

    def load(path, obj, scale):
        classes = list(obj["classScores"])
        values = np.array([obj["classScores"][c] for c in classes], dtype=float)
        return [read.Result(path.stem, None, tuple(classes), values, path)]

    (tmp_path / "cs.json").write_text(json.dumps({"averageScoreClasses": 0.5, "classScores": {"a": 0.4, "b": 0.6}}))
    entry = read.InputFormat("cityscapesScripts", "json", detect, load)
    read.register_format(entry, first=True)
    try:
        code, out, _ = call_main(capsys, "metrics", tmp_path / "cs.json", "--format", "json")
    finally:
        read.INPUT_FORMATS.remove(entry)
    assert code == 0 and json.loads(out)["methods"]["cs"]["miou"] == pytest.approx(50.0)


def test_ruff_passes_and_the_doctests_run(tmp_path):
    """The linter and the doctests are run, not grepped for: ruff on the package, the doctest collection of core."""
    ruff = Path(sys.executable).parent / "ruff"
    lint = subprocess.run([str(ruff), "check", "fairseg_bench", "tests", "benchmarks"], cwd=ROOT, capture_output=True,
                          text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    collect = [sys.executable, "-m", "pytest", "--collect-only", "-q", "--doctest-modules", "-p", "no:cacheprovider"]
    doctests = subprocess.run([*collect, "fairseg_bench/core"], cwd=ROOT, capture_output=True, text=True)
    assert doctests.returncode == 0, doctests.stdout[-2000:]
    assert doctests.stdout.count("::") >= 15  # the core's docstring examples are collected as tests


def test_static_sampler_weights_name_the_largest():
    import matplotlib.pyplot as plt
    import pandas as pd

    from fairseg_bench.report.figures import _weight_lines

    classes = ["a", "b", "c", "d"]
    static = pd.DataFrame({"step": range(1, 51), **{f"w_{c}": [w] * 50 for c, w in zip(classes, (.1, .4, .2, .3))}})
    _, ax = plt.subplots()
    said = _weight_lines(ax, static, [f"w_{c}" for c in classes], classes, ["k"] * 4, 2)
    assert said.startswith("static") and {t.get_text() for t in ax.texts} == {"b", "d"}  # the two largest
    moving = static.assign(w_a=np.linspace(0.0, 0.5, 50))
    _, ax = plt.subplots()
    said = _weight_lines(ax, moving, [f"w_{c}" for c in classes], classes, ["k"] * 4, 1)
    assert said.startswith("named: the 1 that move most") and [t.get_text() for t in ax.texts] == ["a"]
    plt.close("all")
