# Learning from Training Dynamics -- an executable reproduction.
#
#   make book        set up, execute every chapter, build the HTML book
#   make test        set up, run the test suite (every tier)
#   make test TIER=unit   one tier: unit, smoke (chapters through papermill, smoke book build) or slow
#   make smoke-book  same with MISLABEL_PROFILE=smoke (tiny runs), built into
#                    _build/smoke/ so its cached outputs never mix with the full book
#   make check-pages list what runs past its box on the built book's pages (headless Chromium)
#   make chapter CH=01 ARGS="-p noise_rate 0.6"
#                    run one chapter with other parameters into runs/<chapter>/ (ARGS may add --name NAME)
#   make benchmark   run every benchmark in benchmarks/ (results in benchmarks/results/)
#   make clean       remove the built book

SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
TIER ?=
BENCH_ARGS ?=
JB_ARGS ?= -W -n --keep-going

VPY := $(VENV)/bin/python

# Spinning OpenMP threads make small CPU workloads 2-10x slower on 2 cores (see book/performance.md).
export OMP_WAIT_POLICY ?= PASSIVE
STAMP := $(VENV)/.stamp

.PHONY: setup data test book check-pages smoke-book chapter clean benchmark

setup: $(STAMP) data

# The stamp is rebuilt only when the pinned requirements or the package
# metadata change, so a second `make setup` costs nothing.  torch is installed
# first and on its own so that resolving the rest never swaps it for another
# build.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q 'torch==2.13.0'
	$(VPY) -m pip install -q -r requirements.txt
	$(VPY) -m pip install -q -e . --no-deps
	@# A kernel named python3 inside the venv, so papermill / jupyter-book
	@# execute the notebooks with the venv's interpreter.
	$(VPY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

data:
	@bash scripts/get_data.sh

test: setup
	@case "$(TIER)" in ''|unit|smoke|slow) ;; *) echo "TIER must be unit, smoke or slow (or unset for all), got '$(TIER)'"; exit 2;; esac
	$(VPY) -m pytest -q tests/$(TIER) $(PYTEST_ARGS)

# Jupyter Book re-executes a chapter only when its code cells change; a changed library (code or
# shipped weights) clears that cache first, so the book never shows results of an older library.
book: setup
	$(VPY) scripts/library_stamp.py _build
	$(VENV)/bin/jupyter-book build . $(JB_ARGS)
	@echo "Book: $(abspath _build/html/index.html)"

# Code, output or tables wider than their box at a 1280-px window (a reader sees a scroll bar); after `make book`.
check-pages:
	$(VPY) scripts/page_overflow.py _build/html

smoke-book: setup
	$(VPY) scripts/library_stamp.py _build/smoke/_build
	MISLABEL_PROFILE=smoke $(VENV)/bin/jupyter-book build . --path-output _build/smoke $(JB_ARGS)
	@echo "Book (smoke profile): $(abspath _build/smoke/_build/html/index.html)"

# One chapter (notebooks/$(CH)_*.md) converted by jupytext and executed by papermill with ARGS (`-p NAME VALUE`,
# `--name NAME`); the executed notebook and its metrics.json land in runs/<name>/ (see book/intro.md).
chapter: setup
	@test -n "$(CH)" || { echo 'usage: make chapter CH=01 ARGS="-p noise_rate 0.6"'; exit 2; }
	$(VENV)/bin/mislabel-book run $(CH) $(ARGS)

# Every benchmark (35-45 min on 2 cores, most of it the book build timing); on a shared machine use BENCH_ARGS="--threads 1".
benchmark: setup
	$(VPY) benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf _build
