"""What the wheel must carry: every file the commands read at run time, one version, the docs' API."""
import re
import subprocess
import sys
import tarfile
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

import fairseg_bench

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fairseg_bench"
if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the dev extra)
    import tomli as tomllib
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def package_files() -> list[str]:
    """Every file of the package in the checkout, as paths relative to the repository."""
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def test_every_data_file_of_the_package_is_package_data():
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]["fairseg_bench"]
    data = [f for f in package_files() if not f.endswith(".py")]
    assert "fairseg_bench/presets/quick.yaml" in data and "fairseg_bench/py.typed" in data
    missing = [f for f in data if not any(fnmatch(f.removeprefix("fairseg_bench/"), g) for g in globs)]
    assert not missing, f"add these to [tool.setuptools.package-data]: {missing}"


def test_the_version_has_one_source():
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fairseg_bench.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", fairseg_bench.__version__)


def test_the_api_reference_covers_the_public_names_and_core_modules():
    public = (ROOT / "docs" / "api" / "index.md").read_text()
    for name in fairseg_bench.__all__:
        assert f"`{name}`" in public, f"docs/api/index.md does not list {name}"
    core = (ROOT / "docs" / "api" / "core.md").read_text()
    for module in sorted((PACKAGE / "core").glob("[!_]*.py")):
        assert f"::: fairseg_bench.core.{module.stem}\n" in core, f"docs/api/core.md lacks core.{module.stem}"


def test_the_getting_started_example_runs():
    text = (ROOT / "docs" / "getting-started.md").read_text()
    code = re.search(r"## Library use\s+```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "docs/getting-started.md", "exec"), {})  # noqa: S102 - our own docs


@pytest.mark.slow
def test_the_wheel_built_from_the_sdist_holds_every_package_file(tmp_path):
    """As pip builds from a source release: sdist first, then the wheel from it."""
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT)], check=True,
                   capture_output=True)
    wheel = zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist()
    sdist = [n.split("/", 1)[1] for n in tarfile.open(next(tmp_path.glob("*.tar.gz"))).getnames() if "/" in n]
    for name in package_files():
        assert name in wheel, f"{name} missing from the wheel"
        assert name in sdist, f"{name} missing from the sdist"
