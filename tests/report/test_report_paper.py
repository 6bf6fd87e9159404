"""The paper's own tables, re-rendered from its per-class numbers, against what it printed."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from support import ROOT
from support.tables import markdown_tables, plain

from fairseg_bench.report import build_report

PAPER = ROOT / "reports" / "paper"

# Table 3 of the paper as printed: sorted bottom, top; (25th perc. threshold, mIoU) bottom, top;
# worst, std.
PRINTED_TABLE3 = {
    "MCCE": (57.69, 94.81, 64.60, 57.69, 88.74, 94.81, 48.46, 14.96),
    "Focal loss": (63.86, 93.79, 67.64, 60.85, 88.28, 93.79, 49.11, 13.35),
    "TCE t=0.1": (63.76, 94.93, 69.22, 62.23, 89.34, 94.93, 49.36, 13.34),
    "TCE t=1": (64.29, 94.66, 65.86, 61.29, 89.33, 94.66, 53.47, 13.57),
}
TABLE3_KEYS = ("sorted_bottom", "sorted_top", "pct_bottom_threshold", "pct_bottom_mean",
               "pct_top_threshold", "pct_top_mean", "worst", "std")
PRINTED_MIOU = {"MCCE": 75.79, "Focal loss": 77.14, "TCE t=0.1": 78.16, "TCE t=1": 77.35, "SoTA MCCE": 78.73}
# The paper's column orders (its abbreviations spelled out).
TABLE1_ORDER = ["wall", "train", "rider", "fence", "terrain", "truck", "motorcycle", "pole", "bus", "traffic light",
                "bicycle", "traffic sign", "person", "sidewalk", "vegetation", "building", "sky", "car", "road"]
TABLE2_ORDER = ["wall", "fence", "rider", "terrain", "motorcycle", "pole", "traffic light", "bicycle", "traffic sign",
                "train", "person", "sidewalk", "truck", "bus", "vegetation", "building", "sky", "car", "road"]


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("paper")
    build_report([PAPER / "paper_table1.csv"], reference="MCCE", out=out, sota_csv=PAPER / "paper_sota.csv",
                 formats="md,csv,latex", figures=False)
    return out


def test_table3_matches_the_printed_table(paper_report):
    table = pd.read_csv(paper_report / "table3.csv", index_col="method")
    for method, printed in PRINTED_TABLE3.items():
        for key, value in zip(TABLE3_KEYS, printed):
            assert table.loc[method, key] == pytest.approx(value, abs=0.01), (method, key)
    # and the rendered cells read exactly as printed
    block = next(t for t in markdown_tables((paper_report / "report.md").read_text()) if t[0][1] == "sorted 25% bottom")
    for row in block[1:]:
        assert [plain(c) for c in row[1:9]] == [f"{v:.2f}" for v in PRINTED_TABLE3[row[0]]]


def test_tables_1_and_2_keep_the_papers_order_and_means(paper_report):
    table1 = pd.read_csv(paper_report / "table1.csv", index_col="method")
    assert list(table1.columns) == TABLE1_ORDER + ["mIoU"]
    table2 = pd.read_csv(paper_report / "table2.csv", index_col="method")
    assert list(table2.columns) == TABLE2_ORDER + ["mIoU"]
    for method, miou in PRINTED_MIOU.items():
        row = table2 if method == "SoTA MCCE" else table1
        assert row.loc[method, "mIoU"] == pytest.approx(miou, abs=0.005)
    md = markdown_tables((paper_report / "report.md").read_text())
    first, second = md[0], md[1]
    assert first[0][1:] == TABLE1_ORDER[:10] and second[0][1:] == TABLE1_ORDER[10:] + ["mIoU"]
    # best per class in bold: TCE t=1 on wall, Focal on train
    cells = {row[0]: dict(zip(first[0][1:], row[1:])) for row in first[1:]}
    assert cells["TCE t=1"]["wall"] == "**53.47**" and cells["Focal loss"]["train"] == "**79.55**"
    assert cells["MCCE"]["wall"] == "48.46"


def test_committed_paper_report_is_current(paper_report):
    """reports/paper/ is generated: regenerate it with `python reports/paper/make.py`."""
    for name in ("report.md", "table1.csv", "table2.csv", "table3.csv", "table1.tex", "table3.tex"):
        committed, fresh = ((p / name).read_text().split("## Figures")[0].rstrip() for p in (PAPER, paper_report))
        assert committed == fresh, f"reports/paper/{name} is stale"
