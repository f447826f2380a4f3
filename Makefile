# Fieldmark: `make demo` to see it, `make test` to check it. `make help` lists everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[pipeline,dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Fieldmark with every extra

demo: $(STAMP) ## Build the demo data, model and reports (cached after the first run)
	$(VENV)/bin/fieldmark demo

test: $(STAMP) ## Run the whole test suite
	$(PY) -m pytest

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP) ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: bench-data bench-explain bench-web bench-crash bench-export bench-stats ## Every CPU benchmark; results go to docs/benchmarks.md

bench-data: $(STAMP) ## Synthesis speed, training time and accuracy -> docs/benchmarks.md
	$(PY) -m benchmarks.data

bench-explain: $(STAMP) ## Heatmaps (104 images), SAG, XNN: ~2.5 h on 2 cores (python -m benchmarks.explain --per-class 4: ~50 min) -> docs/benchmarks.md
	$(PY) -m benchmarks.explain

bench-web: $(STAMP) ## 300 simulated participants against uvicorn (SQLite, PostgreSQL) -> docs/benchmarks.md
	$(PY) -m benchmarks.web

bench-crash: $(STAMP) ## SIGKILL the server under 200 participants: nothing lost or duplicated (SQLite, PostgreSQL) -> docs/benchmarks.md
	$(PY) -m benchmarks.crash

bench-export: $(STAMP) ## Export 1,000,000 trial rows: time and peak memory -> docs/benchmarks.md
	$(PY) -m benchmarks.export

bench-stats: $(STAMP) ## Calibration of the primary analysis, agreement with lme4, power (~1 h) -> docs/benchmarks.md
	$(PY) -m benchmarks.stats

bench-explain-gpu: $(STAMP) ## I-GOS / iGOS++ timing on ResNet-50 (needs CUDA) -> var/bench/gpu.md
	$(PY) -m benchmarks.explain_gpu

clean: ## Remove generated data, models and caches (keeps .venv)
	rm -rf var .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install demo test lint format bench bench-data bench-explain bench-explain-gpu bench-web bench-crash bench-export bench-stats clean
