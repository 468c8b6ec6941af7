"""Kedro project settings.

Telemetry of Kedro, MLflow and DVC is off without the user doing anything: the environment
defaults below apply to every ``kedro`` command run in this project (the ``.telemetry`` file at
the project root answers kedro-telemetry's consent question, and ``.dvc/config`` sets
``core.analytics = false``).
"""

import os
from pathlib import Path

from kedro.config import OmegaConfigLoader

from robust_mmr_pipeline.hooks import (
    DataRequirementsHooks,
    LaunchedProcessHooks,
    MlflowExperimentHooks,
    MlflowRunStateHooks,
    ParameterValidationHooks,
    ProjectRunLockHooks,
    ReplacedCheckpointHooks,
    RunSummaryHooks,
)

for _name, _value in {
    "KEDRO_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

HOOKS = (
    MlflowExperimentHooks(),
    ParameterValidationHooks(),
    DataRequirementsHooks(),
    RunSummaryHooks(),
    # One run per project at a time; tuning workers may share it (they join one Optuna study).
    ProjectRunLockHooks(shared_pipelines=("tuning",)),
    MlflowRunStateHooks(),
    ReplacedCheckpointHooks(),
    # A multi-process launch (accelerate launch): process 0 alone writes outputs and MLflow.
    LaunchedProcessHooks(),
)

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # Soft merge: an env (local, test, gpu, vqa_rad) or --params overrides single keys of
    # parameters_<pipeline>.yml without wiping their siblings.
    "merge_strategy": {"parameters": "soft", "mlflow": "soft"},
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**"],
    },
    # ${project_dir:} = the folder Kedro runs in (the project root). MLflow caches stores by
    # URI string, so a relative sqlite:///mlflow.db would keep pointing at the first project a
    # process opened; conf/base/mlflow.yml spells the absolute path with it.
    "custom_resolvers": {"project_dir": lambda: Path.cwd().as_posix()},
}
