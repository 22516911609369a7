# Two commands do everything on a fresh machine with Python 3.10+:
#   make demo   # set up .venv and train the quickstart (DPO on the embedded synthetic world)
#   make test   # set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-all lint bench bench-tldr sweep lab lab-rlhf

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

# Test files are shared between 2 worker processes (pytest-xdist; a file stays on one worker, so its module
# fixtures are built once): the default suite takes about 7.5 minutes on 2 cores instead of 12.5 in one process.
PYTEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

test-all: setup
	$(BIN)/python -m pytest -m "" -n $(PYTEST_WORKERS) --dist loadfile

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

# The full lab, committed in docs/lab/: the toy MDP over 12 seeds, then 3 sizes (33.7x) x 3 objectives x 5 betas
# x 8 seeds with an SFT model per seed, the R-DPO ablation and a data-quantity control (2 worker processes), the
# classic-RLHF arm on the sweep's SFT models, then the report with its findings table, samples of the headline run
# and the independent check of the table. Resumable: run it again after an interruption.
SEEDS12 := 0 1 2 3 4 5 6 7 8 9 10 11
LAB_SEEDS := 0 1 2 3 4 5 6 7
lab: setup
	$(BIN)/lit-daa toy-mdp --reference-rejected-mass 0.9 --pairs 2 --seeds $(SEEDS12) --out docs/lab/toy_mdp
	OMP_NUM_THREADS=1 $(BIN)/lit-daa sweep --config configs/sweeps/lab.yaml
	$(MAKE) lab-rlhf RLHF_SIZES="tiny base large" RLHF_SEEDS="$(LAB_SEEDS)" RLHF_SFT_ROOT=runs/sweeps/lab/runs \
		RLHF_OUT=runs/sweeps/lab/rlhf
	cp runs/sweeps/lab/results.csv docs/lab/results.csv
	mkdir -p docs/lab/best_of_n && cp runs/sweeps/lab/rlhf/bon-*.csv docs/lab/best_of_n/
	$(BIN)/lit-daa analyze docs/lab/results.csv --out docs/lab --toy-mdp docs/lab/toy_mdp/summary.csv \
		--best-of-n docs/lab/best_of_n/*.csv
	$(BIN)/lit-daa sweep --config configs/sweeps/lab.yaml --excerpt tiny-DPO-beta0.01-s0 > docs/lab/samples.md
	$(BIN)/python tests/lab_check.py docs/lab

# The classic-RLHF arm beside the lab's DAAs: per size and seed, a Bradley-Terry reward model on that seed's
# preference draw (from that seed's SFT model), then best-of-n on it and on gold from one pool of N samples per prompt,
# judged like the lab's checkpoints. SFT models: the sweep's per-seed references under RLHF_SFT_ROOT
# (RUN = SIZE-sft-sSEED) when given, else one trained here per size. Writes RLHF_OUT/bon-SIZE-sSEED.csv;
# `lit-daa analyze --best-of-n` reads them. Each step is skipped when its output exists (resumable).
RLHF_SIZES ?= tiny
RLHF_SEEDS ?= 0 1 2
RLHF_N ?= 64
RLHF_SFT_ROOT ?=
RLHF_OUT ?= runs/rlhf
RLHF_EVAL := --world.min_length 2 --world.max_length 8 --world.human_on_topic 0.6 --world.human_off_topic 0.1 \
	--judge lit_daa.evaluation.GoldRewardJudge --judge.relevance_weight 1.0 --judge.length_weight 1.0 \
	--judge.target_length 8 --judge.overlength_weight 2.0 --prompts_seed 12345 --num_prompts 512 \
	--max_new_tokens 24 --batch_size 256
lab-rlhf: setup
	for size in $(RLHF_SIZES); do \
	  for seed in $(RLHF_SEEDS); do \
	    if [ -n "$(RLHF_SFT_ROOT)" ]; then sft=$(RLHF_SFT_ROOT)/$$size-sft-s$$seed/hf_policy; else \
	      sft=$(RLHF_OUT)/$$size-sft/hf_policy; \
	      test -d $$sft || OMP_NUM_THREADS=1 $(BIN)/lit-daa fit --config configs/lab/sft.yaml \
	        --model.policy embedded:neox-$$size --trainer.default_root_dir $(RLHF_OUT)/$$size-sft \
	        --trainer.logger.init_args.save_dir $(RLHF_OUT)/$$size-sft --export.enabled=true || exit 1; \
	    fi; \
	    test -d $(RLHF_OUT)/rm-$$size-s$$seed/hf_reward_model || OMP_NUM_THREADS=1 $(BIN)/lit-daa fit \
	      --config configs/lab/reward_model.yaml --model.init_args.policy $$sft \
	      --trainer.default_root_dir $(RLHF_OUT)/rm-$$size-s$$seed --trainer.logger.init_args.save_dir \
	      $(RLHF_OUT)/rm-$$size-s$$seed --seed_everything $$seed --data.source.init_args.seed $$seed || exit 1; \
	    test -f $(RLHF_OUT)/bon-$$size-s$$seed.csv || OMP_NUM_THREADS=1 $(BIN)/lit-daa best-of-n \
	      --policy $$sft --reward_model $(RLHF_OUT)/rm-$$size-s$$seed/hf_reward_model \
	      --n $(RLHF_N) --seed $$seed --model_name $$size --out $(RLHF_OUT)/bon-$$size-s$$seed.csv $(RLHF_EVAL) || exit 1; \
	  done; \
	done
