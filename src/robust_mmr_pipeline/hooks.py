"""Project hooks: typed parameter validation before a run, and a summary of results after it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from robust_mmr_pipeline.params import check_sections, validate_sections

logger = logging.getLogger(__name__)

# Where results land, relative to the project root (the catalog's layer folders).
RESULT_FOLDERS = {
    "reports": Path("data/08_reporting"),
    "checkpoints": Path("data/06_models"),
}


def _param_sections(pipeline: Pipeline) -> list[str]:
    """The top-level parameter sections read by the pipeline's nodes (``params:x.y`` -> ``x``)."""
    sections = {
        name.removeprefix("params:").split(".")[0]
        for name in pipeline.inputs()
        if name.startswith("params:")
    }
    return sorted(sections)


def _sections_read_by_registered_pipelines() -> set[str]:
    from kedro.framework.project import pipelines

    return {section for registered in pipelines.values() for section in _param_sections(registered)}


class ParameterValidationHooks:
    """Fail before the first node runs when a top-level parameter key is no known section (a
    misspelt ``--params pretrian.x=1``) or a section the pipeline reads does not match its
    dataclass. Runs first (``tryfirst``): no MLflow run is opened for a broken configuration."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        params = catalog.load("parameters")
        check_sections(
            params,
            read_by_nodes=_sections_read_by_registered_pipelines(),
            from_cli=set(run_params.get("runtime_params") or {}),
            env=run_params.get("env"),
        )
        validate_sections(params, _param_sections(pipeline))


class MlflowExperimentHooks:
    """Create the MLflow experiment before kedro-mlflow looks it up, tolerating a race.

    kedro-mlflow checks for the experiment and creates it when missing; two processes starting
    together on a fresh store (``kedro run --pipelines tuning`` workers sharing a study) both
    see it missing and the second creation fails. This hook runs first (``tryfirst``) with
    kedro-mlflow's own configuration and accepts "already exists": the experiment is then there
    when kedro-mlflow's hook runs.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        from kedro.config import MissingConfigException
        from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        try:
            settings = context.config_loader["mlflow"]
        except MissingConfigException:
            return
        config = KedroMlflowConfig.model_validate({**settings})
        try:
            config.setup(context)
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            logger.info("MLflow experiment created by a concurrent process; using it.")


class RunSummaryHooks:
    """Print where the results of a successful run are: reports, checkpoints, MLflow store."""

    def __init__(self) -> None:
        self._started = time.time()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._started = time.time()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        label = ", ".join(n for n in names if n) or "__default__"
        lines = [f"Run finished (pipeline: {label})."]
        for label, folder in RESULT_FOLDERS.items():
            fresh = (
                sorted(
                    str(path)
                    for path in folder.rglob("*")
                    if path.is_file() and path.stat().st_mtime >= self._started - 1
                )
                if folder.is_dir()
                else []
            )
            if fresh:
                shown = fresh[:12] + (
                    [f"... and {len(fresh) - 12} more"] if len(fresh) > 12 else []
                )
                lines.append(f"  {label} ({folder}/):")
                lines += [f"    {item}" for item in shown]
        try:
            import mlflow

            lines.append(
                f"  MLflow tracking store: {mlflow.get_tracking_uri()} "
                "(browse with: make mlflow-ui)"
            )
        except ImportError:
            pass
        print("\n".join(lines))  # noqa: T201 - the user-facing summary of `kedro run`
