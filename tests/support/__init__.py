"""What the tests share that is not a fixture: paths, fabricated data, CLI runners, table parsers."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_CAMVID = ROOT.parent / "shared" / "data" / "camvid"  # the real CamVid copy, where present
