# The two README commands: `make run` (the default pipeline on SynthRad) and `make test`.
# Both create .venv and install the project on first use; later calls skip the install.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# CPU wheel by default. GPU: `make TORCH_SPEC="torch==2.9.1 torchvision==0.24.1"
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 install` (the packages named in TORCH_SPEC
# come from TORCH_INDEX, everything else from the same lock).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# Where `make lock` finds the CPU torch wheel it resolves against (so no CUDA-only dependency
# of PyPI's torch enters the lock).
TORCH_FIND_LINKS ?= /opt/wheels
LOCK := requirements.lock
NOTEBOOKS_LOCK := requirements-notebooks.lock
TORCH_NAMES := $(shell echo '$(TORCH_SPEC)' | tr ' ' '\n' | sed -E 's/[=<>!~].*//' | paste -sd'|')
KEDRO_ENV ?= local
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export KEDRO_DISABLE_TELEMETRY := 1
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export KEDRO_LOGGING_CONFIG := $(CURDIR)/conf/logging.yml

.PHONY: install lock run ablation test test-scaleout lint format bench diagnose viz notebooks mlflow-ui optuna-dashboard clean

install: $(STAMP)

# torch first; then exactly the committed lock (every package pinned, --no-deps, so nothing is
# resolved on the machine and nothing can swap torch), minus the packages TORCH_SPEC installs;
# then the project itself; `pip check` proves the set is consistent. The .pth file guards the
# torchvision import of every program in the venv (src/robust_mmr_pipeline/_torchvision_compat.py):
# `accelerate launch` imports timm, so torchvision, before any module of this project.
$(STAMP): $(LOCK) pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	$(BIN)/python -m pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	grep -v -i -E '^($(TORCH_NAMES))==' $(LOCK) > $(VENV)/lock-install.txt
	$(BIN)/python -m pip install -q --no-deps -c $(VENV)/constraints.txt -r $(VENV)/lock-install.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'robust_mmr_pipeline_torchvision.pth').write_text('import robust_mmr_pipeline._torchvision_compat as guard; guard.install_import_guard()\\n')"
	$(BIN)/python -m pip check
	touch $(STAMP)

# Regenerate the locks from pyproject.toml (resolved against the CPU torch of TORCH_SPEC; torch
# itself is left out: the install step takes it from TORCH_SPEC / TORCH_INDEX).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv>=0.5"
	echo '$(TORCH_SPEC)' | tr ' ' '\n' > $(VENV)/torch-pin.txt
	for spec in "$(LOCK):--extra dev" "$(NOTEBOOKS_LOCK):--extra dev --extra notebooks"; do \
	  $(BIN)/python -m uv pip compile pyproject.toml $${spec#*:} --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --find-links $(TORCH_FIND_LINKS) \
	    -c $(VENV)/torch-pin.txt --no-emit-package torch --quiet --custom-compile-command "make lock" \
	    -o $${spec%%:*} || exit 1; \
	done

run: $(STAMP)
	$(BIN)/kedro run --env $(KEDRO_ENV)

# The 15-run ablation table (about an hour on 2 CPU cores); re-running resumes where it stopped.
ablation: $(STAMP)
	$(BIN)/kedro run --pipelines ablation --only-missing-outputs --env $(KEDRO_ENV)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# README "Scale-out": Optuna workers on a throwaway PostgreSQL server (one killed mid-trial),
# an MLflow tracking server on it, accelerate launch of pre-training (also part of `make test`).
test-scaleout: $(STAMP)
	$(BIN)/python -m pytest -m scaleout $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all --out data/08_reporting/benchmarks.json

# Learning diagnostics (fixed-batch memorisation, LR range tests, ITM pooling) on the data of a
# finished `make run` -> data/08_reporting/learning.json + .png
diagnose: $(STAMP)
	$(BIN)/python -m benchmarks.diagnose_learning --env $(KEDRO_ENV)

viz: $(STAMP)
	$(BIN)/kedro viz run --autoreload

# JupyterLab is an optional extra (the tests execute the notebooks with nbclient alone).
notebooks: $(STAMP)
	grep -v -i -E '^($(TORCH_NAMES))==' $(NOTEBOOKS_LOCK) > $(VENV)/lock-notebooks.txt
	$(BIN)/python -m pip install -q --no-deps -c $(VENV)/constraints.txt -r $(VENV)/lock-notebooks.txt
	$(BIN)/kedro jupyter lab --no-browser

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

optuna-dashboard: $(STAMP)
	$(BIN)/optuna-dashboard sqlite:///data/06_models/optuna.db

clean:
	rm -rf $(VENV) build .pytest_cache
