# The two commands of the README: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean-venv

install: $(STAMP)

# Re-install only when the package metadata changes; the package itself is installed editable.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The public benchmark pairs (seconds to make from skimage's photos) feed the blind-radius tests.
test: $(STAMP)
	test -f data/benchmark/meta.json || $(BIN)/python scripts/make_benchmark.py --out data/benchmark
	$(BIN)/python -m pytest -q

# Deblur the bundled examples with the shipped checkpoint; results and a metrics table in results/demo/.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py --output results/demo

clean-venv:
	rm -rf $(VENV)
