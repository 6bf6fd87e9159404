"""``fairseg-bench metrics``: the paper's Table 1 gives its Table 3; inputs; bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import FIXTURES

from fairseg_bench.cli import main
from fairseg_bench.core.fairness import fairness_metrics
from fairseg_bench.core.iou import per_class_iou

TABLE1 = FIXTURES / "paper_table1.csv"
TABLE3 = pd.read_csv(FIXTURES / "paper_table3.csv").set_index("method")


def run(capsys, *args):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["metrics", *map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def as_json(capsys, *args, full=False):
    """``{method: fairness}`` of ``metrics --format json`` (the whole document with ``full``)."""
    code, out, err = run(capsys, *args, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    return doc if full else {m: entry["fairness"] for m, entry in doc["methods"].items()}


def test_paper_table1_gives_table3_through_json(capsys):
    doc = as_json(capsys, TABLE1, "--reference", "MCCE", full=True)
    result = {m: entry["fairness"] for m, entry in doc["methods"].items()}
    assert list(result) == list(TABLE3.index)
    for method, row in TABLE3.iterrows():
        for key, printed in row.items():
            assert abs(result[method][key] - printed) <= 0.01 + 1e-9, (method, key)
    assert doc["k"] == 5 and len(doc["classes"]) == 19
    table1 = pd.read_csv(TABLE1).set_index("method")
    for method, entry in doc["methods"].items():  # the per-class IoUs are in the JSON too
        assert entry["iou"] == pytest.approx(table1.loc[method].to_dict())


def test_paper_table1_gives_table3_through_csv(capsys):
    code, out, _ = run(capsys, TABLE1, "--format", "csv")  # default reference: MCCE
    assert code == 0
    from io import StringIO

    table = pd.read_csv(StringIO(out)).set_index("method")
    for method, row in TABLE3.iterrows():
        for key, printed in row.items():
            assert abs(table.loc[method, key] - printed) <= 0.01 + 1e-9, (method, key)


def test_markdown_prints_the_papers_cells(capsys):
    code, out, _ = run(capsys, TABLE1, "--table", "fairness")
    assert code == 0
    lines = {}
    for line in out.splitlines():  # the first part holds the paper's columns
        if line.startswith("| "):
            lines.setdefault(line.split("|")[1].strip(), line)
    for method, row in TABLE3.iterrows():
        cells = [c.strip() for c in lines[method].split("|")[2:-1]]
        keys = ["sorted_bottom", "sorted_top", "pct_bottom_threshold", "pct_bottom_mean", "pct_top_threshold",
                "pct_top_mean", "worst", "std"]
        assert [c.strip("*") for c in cells[:8]] == [f"{row[k]:.2f}" for k in keys], method


def test_per_class_table_is_sorted_by_the_reference(capsys):
    code, out, _ = run(capsys, TABLE1, "--reference", "TCE t=1", "--table", "per-class", "--format", "csv")
    assert code == 0
    header = out.splitlines()[0].split(",")
    tce1 = pd.read_csv(TABLE1).set_index("method").loc["TCE t=1"]
    assert header[1:-2] == list(tce1.sort_values(kind="stable").index)
    assert header[-2:] == ["mIoU", "seeds"]


def test_split_and_latex(capsys):
    code, out, _ = run(capsys, TABLE1, "--two-rows", "--table", "per-class")
    assert code == 0 and out.count("| Method |") == 1 and out.count("| continued |") == 1
    code, out, _ = run(capsys, TABLE1, "--format", "latex")
    assert code == 0 and "\\toprule" in out and "\\multicolumn{2}{c}{sorted 25\\%}" in out


def test_long_csv_and_fraction_json_give_the_same_numbers(capsys, tmp_path):
    wide = pd.read_csv(TABLE1)
    long = wide.melt(id_vars="method", var_name="class", value_name="iou")
    long.to_csv(tmp_path / "long.csv", index=False)
    fractions = {m: {c: v / 100 for c, v in row.items()} for m, row in wide.set_index("method").iterrows()}
    (tmp_path / "fractions.json").write_text(json.dumps(fractions))
    reference = as_json(capsys, TABLE1)
    from_long = as_json(capsys, tmp_path / "long.csv")
    assert list(from_long) == list(reference)
    for method in reference:
        assert from_long[method] == pytest.approx(reference[method], abs=1e-12)
    from_json = as_json(capsys, tmp_path / "fractions.json")
    for method in reference:
        assert from_json[method] == pytest.approx(reference[method], abs=1e-9)
    assert as_json(capsys, tmp_path / "fractions.json", "--scale", "fraction") == from_json


def test_confusion_matrix_json_and_metrics_json(capsys, tmp_path):
    from fairseg_bench.results import write_json_atomic

    rng = np.random.default_rng(0)
    cms = {name: rng.integers(0, 50, (4, 4)) for name in ("mcce", "tce")}
    cms["tce"][3] = 0
    cms["tce"][:, 3] = 0  # class 3 absent for this model: NaN, left out
    classes = ["road", "car", "pole", "bus"]
    doc = {name: {"classes": classes, "confusion_matrix": cm.tolist()} for name, cm in cms.items()}
    (tmp_path / "cms.json").write_text(json.dumps(doc))
    result = as_json(capsys, tmp_path / "cms.json")
    for name, cm in cms.items():  # tce lacks class 3: both are compared on classes 0-2
        iou = per_class_iou(cm)[:3] * 100
        expected = fairness_metrics(iou, per_class_iou(cms["mcce"])[:3] * 100)
        expected["cov"] *= 100
        expected["gini"] *= 100
        assert result[name] == pytest.approx({k: expected[k] for k in result[name]}, nan_ok=True)
    run_doc = {
        "schema_version": 1, "experiment": "quick", "method": "focal", "seed": 0, "classes": classes,
        "confusion_matrix": cms["mcce"].tolist(), "iou": list(per_class_iou(cms["mcce"])),
    }
    write_json_atomic(tmp_path / "run" / "metrics.json", run_doc)
    both = as_json(capsys, tmp_path / "cms.json", tmp_path / "run" / "metrics.json", "--reference", "mcce")
    assert both["focal"] == pytest.approx(both["mcce"])


def test_a_folder_stands_for_every_run_below_it(capsys, tmp_path):
    from fairseg_bench.results import write_json_atomic

    classes = ["road", "car", "pole"]
    cms = {"mcce": [[9, 1, 0], [1, 9, 0], [0, 4, 0]], "focal": [[8, 2, 0], [1, 6, 1], [0, 3, 2]]}
    # by hand, TP / (TP + FP + FN) per class
    ious = {"mcce": [9 / 11, 9 / 15, 0.0], "focal": [8 / 11, 6 / 13, 2 / 6]}
    for method in cms:
        write_json_atomic(tmp_path / "runs" / "quick" / f"{method}-s0" / "metrics.json", {
            "schema_version": 1, "experiment": "quick", "method": method, "seed": 0, "classes": classes,
            "confusion_matrix": cms[method], "iou": ious[method]})
    result = as_json(capsys, tmp_path / "runs")
    assert sorted(result) == ["focal", "mcce"]  # seeds aggregate into one label, as in every command
    assert result["focal"]["miou"] == pytest.approx(100 * np.mean(ious["focal"]))
    assert result["focal"]["worst"] == pytest.approx(100 * 2 / 6)
    assert result["mcce"]["worst"] == 0.0
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, tmp_path / "empty")
    assert code == 2 and "no run metrics.json" in err and len(err.strip().splitlines()) == 1


def test_a_class_one_method_lacks_is_compared_on_the_common_classes(capsys, tmp_path):
    (tmp_path / "t.csv").write_text("method,a,b,c,d\nx,50,,70,90\ny,40,60,80,\n")
    code, out, err = run(capsys, tmp_path / "t.csv", "--reference", "y", "--format", "json")
    assert code == 0
    assert "x lack(s) class 'b'" in err and "y lack(s) class 'd'" in err  # a warning names method and class
    doc = json.loads(out)
    expected = fairness_metrics([50, 70], [40, 80])
    assert doc["methods"]["x"]["fairness"]["miou"] == pytest.approx(expected["miou"])
    assert doc["classes"] == ["a", "c"] and doc["dropped_classes"] == ["b", "d"]
    assert any("compared on the 2 classes" in note for note in doc["notes"])
    code, out, err = run(capsys, tmp_path / "t.csv", "--table", "fairness")
    assert "compared on the 2 classes" in out  # the note under the table
    code, _, err = run(capsys, tmp_path / "t.csv", "--strict")
    assert code == 2 and "--strict" in err and err.count("\n") == 1


BAD_INPUTS = {
    "missing file": ([], "no such file"),
    "unknown reference": (["--reference", "nope"], "unknown reference 'nope'; the methods are"),
    "no method column": ("name,a,b\nx,1,2\n", "no 'method' column"),
    "non-numeric IoU": ("method,a,b\nx,50,abc\n", "IoU 'abc' of method 'x', class 'b' is not a number"),
    "IoU above 100": ("method,a,b\nx,50,130\n", "IoU 130 of method 'x', class 'b' is above 100"),
    "negative IoU": ("method,a,b\nx,50,-3\n", "is below 0"),
    "empty CSV": ("", "empty file"),
    "header only": ("method,a,b\n", "no rows"),
    "all classes empty": ("method,a,b\nx,50,60\ny,,\n", "method 'y' has no IoU value"),
    "duplicate method": ("method,a,b\nx,50,60\nx,40,60\n", "appears twice"),
    "long CSV missing a class": ("method,class,iou\nx,a,50\nx,b,60\ny,a,40\n", "method 'y' has no row for class 'b'"),
    "fraction scale above 1": (["--scale", "fraction"], "above 1"),
    "bad JSON": ("{not json", "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(case, capsys, tmp_path):
    content, message = BAD_INPUTS[case]
    args = []
    if isinstance(content, list):  # options on the good table
        args = [TABLE1, *content] if case != "missing file" else [tmp_path / "absent.csv"]
    else:
        path = tmp_path / ("t.json" if case == "bad JSON" else "t.csv")
        path.write_text(content)
        args = [path]
    code, out, err = run(capsys, *args)
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_mismatched_class_sets_across_files(capsys, tmp_path):
    (tmp_path / "a.csv").write_text("method,road,car\nx,50,60\n")
    (tmp_path / "b.csv").write_text("method,road,bus\ny,50,60\n")
    code, _, err = run(capsys, tmp_path / "a.csv", tmp_path / "b.csv")
    assert code == 2 and "has class 'bus'" in err and err.count("\n") == 1


def test_subprocess_bad_reference_one_line_on_stderr():
    exe = Path(sys.executable).with_name("fairseg-bench")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "fairseg_bench"]
    env = {k: v for k, v in os.environ.items() if k != "FAIRSEG_BENCH_DEBUG"}
    proc = subprocess.run([*cmd, "metrics", str(TABLE1), "--reference", "SoTA"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown reference 'SoTA'; the methods are: MCCE, Focal loss, TCE t=0.1, TCE t=1"
    ]
    assert proc.stdout == ""


def test_metrics_layer_never_imports_torch():
    code = (
        "import sys, fairseg_bench.metrics as m, fairseg_bench.results.read, fairseg_bench.results.summary, "
        "fairseg_bench.report.tables, fairseg_bench.cli.metrics, fairseg_bench.check, fairseg_bench.core.stats\n"
        "m.fairness_metrics([0.1, 0.2]); m.per_class_iou([[1, 0], [0, 1]])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert m.ConfusionMatrix.__name__ == 'ConfusionMatrix' and 'torch' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_table_helpers():
    from fairseg_bench.report.tables import format_number, markdown_table, split_columns

    assert format_number(64.595) == "64.60" and format_number(67.63499999999999) == "67.64"
    assert format_number(-0.125, 2) == "-0.13" and format_number(float("nan"), na_rep="–") == "–"
    frame = pd.DataFrame({"a|b": ["1.00", "–"], "c": ["x", "y"]}, index=["m1", "m2"])
    assert markdown_table(frame, "method").splitlines() == [
        "| method | a\\|b | c |",
        "|:---|---:|---:|",
        "| m1 | 1.00 | x |",
        "| m2 | – | y |",
    ]
    assert [len(p) for p in split_columns(list("abcde"), 2)] == [3, 2]
