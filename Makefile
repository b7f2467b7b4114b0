# Set-up and main jobs. `make demo` and `make test` work on a fresh clone (PyPI only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   ?= demo-out
# Metrics that need no downloaded file; after `aigiqa assets import DIR` add niqe,brisque.
DEMO_METRICS ?= sharpness,colourfulness,entropy,contrast,piqe
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aigiqa demo --out $(DEMO)/database --n 300 --seed 0
	$(BIN)/aigiqa bench --database demo --root $(DEMO)/database \
		--metrics $(DEMO_METRICS) --store $(DEMO)/scores.sqlite \
		--out $(DEMO)/results --workers 2
	@echo "HTML report: $(DEMO)/results/report.html"

test: $(STAMP)
	bash .ci/system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: $(STAMP)
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO) build dist src/*.egg-info
