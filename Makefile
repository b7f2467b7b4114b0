# Set-up and main jobs. `make demo` and `make test` work on a fresh clone (PyPI and Debian only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   ?= demo-out
# Metrics that need no downloaded file; after `aigiqa assets import DIR` add niqe,brisque.
DEMO_METRICS ?= sharpness,colourfulness,entropy,contrast,piqe
# The offline default learned model: EfficientNet-Lite0 with its packaged ImageNet weights,
# backbone frozen, head trained on the demo's train split (selected on val).
LEARNED := effnet-lite0:backbone_lr=0
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-learned: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[learned]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-learned

demo: $(VENV)/.installed-learned
	$(BIN)/aigiqa demo --out $(DEMO)/database --n 300 --seed 0
	$(BIN)/aigiqa train --metric $(LEARNED) --database demo --root $(DEMO)/database \
		--out $(DEMO)/effnet-lite0 --epochs 30 --batch-size 16 --lr 1e-3 --workers 2 --no-resume
	$(BIN)/aigiqa bench --database demo --root $(DEMO)/database --split test \
		--metrics $(DEMO_METRICS),$(LEARNED):checkpoint=$(DEMO)/effnet-lite0/model.pt \
		--store $(DEMO)/scores.sqlite --out $(DEMO)/results --workers 2
	@echo "HTML report: $(DEMO)/results/report.html"

# An install without extras, to check what a core install says (tests/test_no_torch.py).
CORE := .venv-core
$(CORE)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CORE)
	$(CORE)/bin/python -m pip install --quiet --upgrade pip
	$(CORE)/bin/python -m pip install --quiet -e .
	touch $@

test: $(VENV)/.installed-dev $(CORE)/.installed
	bash .ci/system-deps
	AIGIQA_CORE_PYTHON=$(CURDIR)/$(CORE)/bin/python $(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

bench: $(VENV)/.installed-dev
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(CORE) $(DEMO) build dist src/*.egg-info
