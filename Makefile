# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: setup run test test-slow lint bench docs typecheck clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The documentation tools (the `docs` extra) are not needed to run or test the package.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[dev,docs]'
	@touch $(DOCS_STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/fairseg-bench run --losses mcce,focal,tce --jobs 3  # one single-thread process per loss

test: $(STAMP)
	$(VENV)/bin/ruff check fairseg_bench tests benchmarks
	$(PY) -m pytest -q -n auto --maxprocesses 8 --dist loadfile  # a worker per core, at most 8 (each holds torch); a file's tests share its fixtures
	$(PY) -m pytest -q --doctest-modules fairseg_bench/core

lint: $(STAMP)
	$(VENV)/bin/ruff check fairseg_bench tests benchmarks

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict  # the variable silences a theme banner

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist site *.egg-info
