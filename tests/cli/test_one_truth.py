"""One truth for every number: the same runs give the same number under the same name in ``run``,
``metrics``, ``report``, ``check --update`` and ``evaluate``; and the outputs never mislead in silence."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from support.cli import call_main, fairseg

from fairseg_bench.report.tables import format_number
from fairseg_bench.results.summary import FAIRNESS_COLUMNS

TINY = """
losses: [mcce, tce]
seeds: [0, 1]
data:
  dataset: synthetic
  train_options: {num_images: 16, size: [32, 64], seed: 3}
  val_options: {num_images: 6, size: [32, 64], seed: 3}
model: {name: unet_small}
optim: {name: adam, lr: 0.002}
train: {iters: 4, batch_size: 4, checkpoint_every: 2}
eval: {batch_size: 6, samples: 1}
"""
#: the names of the fairness columns in the printed Table 3
PRINTED = {"sorted_bottom": "sorted 25% bottom", "sorted_top": "sorted 25% top",
           "pct_bottom_threshold": "25th perc. bottom threshold", "pct_bottom_mean": "25th perc. bottom mIoU",
           "pct_top_threshold": "75th perc. top threshold", "pct_top_mean": "75th perc. top mIoU",
           "worst": "overall worst", "std": "overall std.", "miou": "overall mIoU", "best": "extra best",
           "gap": "extra gap", "cov": "extra CoV", "gini": "extra Gini"}
#: fairness numbers that do not depend on which method ranks the classes
OWN = [k for k in FAIRNESS_COLUMNS if not k.startswith("sorted_")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two methods × two seeds of a few steps, and what ``run`` printed."""
    root = tmp_path_factory.mktemp("truth")
    (root / "tiny.yaml").write_text(TINY)
    proc = fairseg("run", "-c", root / "tiny.yaml", "--out", root / "runs", "--quiet", "--no-report")
    assert proc.returncode == 0, proc.stderr
    return root, root / "runs" / "tiny", proc.stdout


def printed_tables(text: str) -> dict[str, dict[str, str]]:
    """``{method: {column: cell}}`` of every printed Markdown table (bold and spread stripped); a column
    name that comes back in a later table (Boundary IoU per class) keeps its first table's cell."""
    rows: dict[str, dict[str, str]] = {}
    header = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells[1:]
        elif not cells[0].startswith(":"):
            values = [c.replace("*", "").split(" ± ")[0].rstrip("†") for c in cells[1:]]
            row = rows.setdefault(cells[0], {})
            for column, value in zip(header, values):
                row.setdefault(column, value)
    return rows


def same(a, b, rel=1e-12) -> bool:
    """Equal numbers, or both undefined (NaN in a frame, null in JSON)."""
    undefined = lambda v: v is None or (isinstance(v, float) and math.isnan(v))  # noqa: E731
    return undefined(a) and undefined(b) or (not undefined(a) and not undefined(b) and a == pytest.approx(b, rel=rel))


def printed(value) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format_number(value)


def test_every_command_gives_the_same_numbers_by_name(tiny, tmp_path, capsys):
    root, runs, run_stdout = tiny
    code, out, err = call_main(capsys, "metrics", runs, "--format", "json")
    assert code == 0, err
    truth = json.loads(out)
    assert sorted(truth["methods"]) == ["mcce", "tce-t1"]  # seeds aggregate: no "-s0" label anywhere
    assert truth["reference"] == "mcce" and truth["methods"]["mcce"]["seeds"] == 2

    # metrics -r mcce: the labels every command uses
    assert call_main(capsys, "metrics", runs, "-r", "mcce", "--format", "json")[1] == out

    # report: Table 1 and Table 3 as CSV, the same names
    assert call_main(capsys, "report", runs, "--out", tmp_path / "rep", "--format", "csv,md", "--no-figures",
                     "--bootstrap", "0")[0] == 0
    table1 = pd.read_csv(tmp_path / "rep" / "table1.csv", index_col="method")
    table3 = pd.read_csv(tmp_path / "rep" / "table3.csv", index_col="method")

    # check --update: the baseline stores the same numbers
    assert call_main(capsys, "check", runs, "--baseline", tmp_path / "b.json", "--update")[0] == 0
    baseline = json.loads((tmp_path / "b.json").read_text())
    assert baseline["reference"] == "mcce"

    for method, entry in truth["methods"].items():
        for cls, value in entry["iou"].items():
            assert same(float(table1.loc[method, cls]), value, rel=1e-5), (method, cls)
            assert same(baseline["methods"][method]["iou"][cls], value), (method, cls)
        assert table1.loc[method, "mIoU"] == pytest.approx(entry["miou"], rel=1e-5)
        for key, value in entry["fairness"].items():
            assert table3.loc[method, key] == pytest.approx(value, rel=1e-5), (method, key)
            assert baseline["methods"][method]["fairness"][key] == pytest.approx(value, rel=1e-12), (method, key)

    # run printed the same tables, rounded as printed
    shown = printed_tables(run_stdout)
    for method, entry in truth["methods"].items():
        for cls, value in entry["iou"].items():
            assert shown[method][cls] == printed(value), (method, cls)
        for key, value in entry["fairness"].items():
            assert shown[method][PRINTED[key]] == printed(value), (method, key)

    # evaluate: one checkpoint, its printed tables agree with metrics of that one run
    run = runs / "tce-t1-s1"
    code, eval_out, err = call_main(capsys, "evaluate", "--checkpoint", run / "last.pt", "--out", tmp_path / "ev",
                                    "--quiet")
    assert code == 0, err
    one = json.loads(call_main(capsys, "metrics", run, "--format", "json")[1])["methods"]["tce-t1"]
    shown = printed_tables(eval_out)["tce-t1"]
    assert {c: shown[c] for c in one["iou"]} == {c: printed(v) for c, v in one["iou"].items()}
    assert {k: shown[PRINTED[k]] for k in FAIRNESS_COLUMNS} == \
        {k: printed(one["fairness"][k]) for k in FAIRNESS_COLUMNS}
    # and the numbers that do not depend on the ranking are those of the two-method comparison's seed 1
    per_seed = baseline["methods"]["tce-t1"]["fairness_per_seed"]
    for key in OWN:
        assert one["fairness"][key] == pytest.approx(per_seed[key][1], rel=1e-12), key


def test_evaluate_prints_the_tables(tiny, tmp_path, capsys):
    _, runs, _ = tiny
    code, out, _ = call_main(capsys, "evaluate", "--checkpoint", runs / "mcce-s0" / "last.pt", "--out", tmp_path,
                             "--quiet")
    assert code == 0 and "### Table 1: per-class IoU" in out and "### Table 3: fairness" in out


def test_report_refuses_runs_of_different_configs(tiny, tmp_path, capsys):
    _, runs, _ = tiny
    other = tmp_path / "other" / "mcce-s0"
    other.mkdir(parents=True)
    data = json.loads((runs / "mcce-s0" / "metrics.json").read_text())
    data["config_hash"] = "0" * 16
    (other / "metrics.json").write_text(json.dumps(data))
    for command in ("report", "metrics"):
        extra = ["--out", tmp_path / "rep", "--no-figures"] if command == "report" else []
        code, _, err = call_main(capsys, command, runs, tmp_path / "other", *extra)
        assert code == 2 and "different configs" in err and "--mixed-configs" in err
    code, _, err = call_main(capsys, "report", runs / "tce-t1-s0", tmp_path / "other", "--out", tmp_path / "rep",
                             "--no-figures", "--mixed-configs", "--format", "md")
    assert code == 0, err
    assert "different configs" in (tmp_path / "rep" / "report.md").read_text()  # said in a note


def test_run_and_report_render_the_same_tables_against_the_same_reference(tmp_path):
    """``run --losses tce,mcce`` and ``report`` on its folder: the same default reference (mcce), the
    same numbers, whatever order the losses were given in."""
    (tmp_path / "tiny.yaml").write_text(TINY.replace("seeds: [0, 1]", "seeds: [0]"))
    proc = fairseg("run", "-c", tmp_path / "tiny.yaml", "--losses", "tce,mcce", "--out", tmp_path / "runs", "--quiet")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "runs" / "tiny"
    again = fairseg("report", folder, "--out", tmp_path / "report", "--no-figures")  # the tables are compared
    assert again.returncode == 0, again.stderr
    for name in ("table1.csv", "table3.csv", "table1_delta.csv"):
        assert (folder / "report" / name).read_bytes() == (tmp_path / "report" / name).read_bytes(), name
    for page in (folder / "report" / "index.html", tmp_path / "report" / "index.html"):
        assert "<th>reference</th><td>mcce (" in page.read_text()
    printed = printed_tables(proc.stdout)
    table3 = pd.read_csv(tmp_path / "report" / "table3.csv").set_index("method")
    assert printed["tce-t1"][PRINTED["sorted_bottom"]] == format_number(table3.loc["tce-t1", "sorted_bottom"])


@pytest.mark.parametrize("raw", ['"mcce,tce:t=1,gamma=0.1,focal:gamma=2"',
                                 '[mcce, "tce:t=1,gamma=0.1", "focal:gamma=2"]'])
def test_a_loss_list_means_the_same_as_a_yaml_string_a_yaml_list_and_an_option(tmp_path, raw):
    from fairseg_bench.cli.run import _losses
    from fairseg_bench.config import load_config

    (tmp_path / "c.yaml").write_text(f"losses: {raw}\n")
    expected = ("mcce", "tce:t=1,gamma=0.1", "focal:gamma=2")
    assert load_config(tmp_path / "c.yaml").losses == expected
    assert _losses(None, None, "mcce,tce:t=1,gamma=0.1,focal:gamma=2") == expected
