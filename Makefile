# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing. torch is pinned and installed first: the CPU wheel
# lies in pip's find-links here, and an unpinned torch would pull GBs of CUDA packages.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,plot]'
	touch $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh

# One pytest worker per core (pytest-xdist), each test file on one worker so its module-scoped
# trained fixtures are built once; tests run torch on one thread (tests/conftest.py).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check rnnkit cli tests benchmarks
	$(BIN)/ruff format --check rnnkit cli tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info demo-out
