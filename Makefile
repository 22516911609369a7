# Two commands do everything on a fresh machine with Python 3.10+:
#   make demo   # set up .venv and train the quickstart (DPO on the embedded synthetic world)
#   make test   # set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-all lint bench bench-tldr sweep lab

setup: $(VENV)/.installed

# torch first, pinned to the CPU build this machine provides; the package's torch range accepts it.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/lit-daa fit --config configs/quickstart.yaml

test: setup
	$(BIN)/python -m pytest

test-all: setup
	$(BIN)/python -m pytest -m ""

lint: setup
	$(BIN)/ruff check lit_daa tests benchmarks && $(BIN)/ruff format --check lit_daa tests benchmarks

bench: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/step_benchmark.py --model embedded:neox-small --batch-size 8 --steps 30 --warmup 5 --repeats 3 --threads 1

# TL;DR-shaped pairs (prompts 150-500 tokens, responses 10-60): every lit-daa layout, cached reference, TRL.
bench-tldr: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/step_benchmark.py --data tldr --model random-neox:256x4x4 --prompt-range 150,500 \
		--response-words 10,60 --max-length 600 --max-prompt-length 520 --batch-size 8 --steps 16 --warmup 4 \
		--bucket-batches 8 --token-budget 1200 \
		--frameworks lit-daa,lit-daa-shared,lit-daa-packed,lit-daa-shared-cached,lit-daa-packed-cached,trl

# The over-optimization demo: 2 sizes x 3 objectives x 5 betas, 5 checkpoints each, then the analysis report.
sweep: setup
	OMP_NUM_THREADS=1 $(BIN)/lit-daa sweep --config configs/sweeps/demo.yaml --analyze

# The full lab, committed in docs/lab/: the toy MDP over 12 seeds, then 3 sizes x 3 objectives x 7 betas x 3 seeds
# with controls and ablations (2 worker processes), then the report with its findings table, samples of the
# headline run and the independent check of the table.
SEEDS12 := 0 1 2 3 4 5 6 7 8 9 10 11
lab: setup
	$(BIN)/lit-daa toy-mdp --reference-rejected-mass 0.9 --pairs 2 --seeds $(SEEDS12) --out docs/lab/toy_mdp
	OMP_NUM_THREADS=1 $(BIN)/lit-daa sweep --config configs/sweeps/lab.yaml
	cp runs/sweeps/lab/results.csv docs/lab/results.csv
	$(BIN)/lit-daa analyze docs/lab/results.csv --out docs/lab --toy-mdp docs/lab/toy_mdp/summary.csv
	$(BIN)/lit-daa sweep --config configs/sweeps/lab.yaml --excerpt tiny-DPO-beta0.01-s0 > docs/lab/samples.md
	$(BIN)/python tests/lab_check.py docs/lab
