# twinsr — two commands on a fresh machine: `make demo` (the main job) and `make test`.
# Each sets up .venv on first use (CPU build of torch pinned here only) and reuses it afterwards.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH  ?= torch==2.13.0
OUT    ?= demo-study

.PHONY: demo test venv bench lint study clean docs test-viewer

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# what the tests cover beyond the core: the docs build, the napari viewer, TensorBoard export
EXTRAS_STAMP := $(VENV)/.extras-stamp
$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,docs,viewer,tensorboard]"
	touch $(EXTRAS_STAMP)

demo: $(STAMP)
	$(BIN)/twinsr study --preset demo -o $(OUT)

test: $(STAMP) $(EXTRAS_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow and not gpu"

# the documentation site (examples executed, zero warnings) -> site/
docs: $(EXTRAS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test-viewer: $(EXTRAS_STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q tests/test_viewer.py

study: $(STAMP)
	$(BIN)/twinsr study --preset quick -o quick-study

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	# PoreSpy's tortuosity_fd needs OpenPNM; --no-deps keeps MKL/TBB out of the environment
	$(BIN)/python -m pip install -q --no-deps openpnm==3.6.4 docrep transforms3d chemicals fluids thermo
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info .pytest_cache
