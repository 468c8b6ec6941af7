"""Project hooks (registered in settings.py): typed parameter validation and the data
requirements check before a run, a summary of results after it, one run at a time per project
(run lock), no MLflow run left RUNNING by a dead or interrupted process, a replaced run's
checkpoints deleted only once no manifest names them, and in a multi-process launch one
process that writes.

- run_checks.py    parameters and data requirements, before the run and each stage
- outputs.py       where the results are; replaced checkpoints retired
- processes.py     a process as another can recognise it later (host, pid, start)
- run_lock.py      one Kedro run at a time per project
- mlflow_runs.py   the MLflow experiment and the state of this project's runs
- launched.py      a multi-process launch: process 0 alone writes
"""

from robust_mmr_pipeline.hooks.launched import LaunchedProcessHooks
from robust_mmr_pipeline.hooks.mlflow_runs import (
    TAG_HOST,
    TAG_KILLED,
    TAG_PID,
    TAG_PROCESS_START,
    TAG_PROJECT,
    MlflowExperimentHooks,
    MlflowRunStateHooks,
    TrackingConfigError,
    terminate_runs_of_dead_processes,
)
from robust_mmr_pipeline.hooks.outputs import (
    RESULT_FOLDERS,
    ReplacedCheckpointHooks,
    RunSummaryHooks,
)
from robust_mmr_pipeline.hooks.processes import ProcessRecord
from robust_mmr_pipeline.hooks.run_checks import DataRequirementsHooks, ParameterValidationHooks
from robust_mmr_pipeline.hooks.run_lock import ProjectBusyError, ProjectRunLock, ProjectRunLockHooks

__all__ = [
    "RESULT_FOLDERS",
    "TAG_HOST",
    "TAG_KILLED",
    "TAG_PID",
    "TAG_PROCESS_START",
    "TAG_PROJECT",
    "DataRequirementsHooks",
    "LaunchedProcessHooks",
    "MlflowExperimentHooks",
    "MlflowRunStateHooks",
    "ParameterValidationHooks",
    "ProcessRecord",
    "ProjectBusyError",
    "ProjectRunLock",
    "ProjectRunLockHooks",
    "ReplacedCheckpointHooks",
    "RunSummaryHooks",
    "TrackingConfigError",
    "terminate_runs_of_dead_processes",
]
