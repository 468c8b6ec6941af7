# The two README commands: `make run` (the default pipeline on SynthRad) and `make test`.
# Both create .venv and install the project on first use; later calls skip the install.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
# CPU wheel by default; e.g. `make TORCH_SPEC=torch==2.9.1 TORCH_INDEX=https://download.pytorch.org/whl/cu128 run`
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
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

.PHONY: install run ablation test lint format bench viz notebooks mlflow-ui optuna-dashboard clean

install: $(STAMP)

# torch first, then everything else under a constraint pinning the torch just installed, so no
# other requirement can swap it for a (CUDA, multi-GB) build of a newer version.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple)
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/kedro run --env $(KEDRO_ENV)

# The 15-run ablation table (about an hour on 2 CPU cores); re-running resumes where it stopped.
ablation: $(STAMP)
	$(BIN)/kedro run --pipelines ablation --only-missing-outputs --env $(KEDRO_ENV)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all --out data/08_reporting/benchmarks.json

viz: $(STAMP)
	$(BIN)/kedro viz run --autoreload

# JupyterLab is an optional extra (the tests execute the notebooks with nbclient alone).
notebooks: $(STAMP)
	$(BIN)/python -m pip install -q -c $(VENV)/constraints.txt -e ".[dev,notebooks]"
	$(BIN)/kedro jupyter lab --no-browser

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

optuna-dashboard: $(STAMP)
	$(BIN)/optuna-dashboard sqlite:///data/06_models/optuna.db

clean:
	rm -rf $(VENV) build .pytest_cache
