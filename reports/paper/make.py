"""Re-render the TCE paper's Tables 1-3 (and the figures) from its printed per-class IoUs.

A check of the renderer: ``paper_table1.csv`` is the paper's Table 1 and ``paper_sota.csv`` the
SoTA row of its Table 2, typed in (IoU in percent, Cityscapes class order). Run from anywhere:

    python reports/paper/make.py

which is the same as

    fairseg-bench report reports/paper/paper_table1.csv --reference MCCE \\
        --sota reports/paper/paper_sota.csv --out reports/paper
"""
import os
from pathlib import Path

from fairseg_bench.report import build_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> None:
    """Write the paper's tables, figures and index.html next to this script."""
    os.chdir(ROOT)  # the report lists its inputs as given: paths relative to the repository
    here = HERE.relative_to(ROOT)
    written = build_report([here / "paper_table1.csv"], reference="MCCE", out=here,
                           sota_csv=here / "paper_sota.csv")
    print(f"wrote {len(written)} files under {here}")


if __name__ == "__main__":
    main()
