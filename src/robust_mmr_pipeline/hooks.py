"""Project hooks: typed parameter validation and the data requirements check before a run, and
a summary of results after it."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from robust_mmr_pipeline.params import validate_sections

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


class ParameterValidationHooks:
    """Fail before the first node runs when a parameter section does not match its dataclass."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        validate_sections(catalog.load("parameters"), _param_sections(pipeline))


class DataRequirementsHooks:
    """Stop a run whose configured data cannot feed one of its stages, before the work.

    Before the run (when it ingests): the configured sources' declarations against every stage
    the run reads parameters of. Before each stage-entry node (fit_tokenizer, pretrain_model,
    finetune_tasks, evaluate_models, namespaced copies included): the split manifests' counts.
    Tasks the user allowed to skip (``requirements.skip_when_missing``) are removed from that
    node's parameters; anything else missing raises DataRequirementsError
    (robust_mmr_pipeline/data_requirements.py).
    """

    def __init__(self) -> None:
        self._parameters: dict[str, Any] | None = None
        self._skipped: set[str] = set()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        from robust_mmr_pipeline import data_requirements as req

        self._parameters = catalog.load("parameters")
        self._skipped = set()
        sections = set(_param_sections(pipeline))
        if any(n.name.startswith(f"{req.AS_RELEASED_NAMESPACE}.") for n in pipeline.nodes):
            sections.add(req.AS_RELEASED_NAMESPACE)
        if "ingestion" in sections:
            params = self._parameters
            shortfalls = req.static_shortfalls(params, sections)
            self._skipped = req.enforce(
                shortfalls,
                self._requirements().skip_when_missing,
                req.configured_sources(params.get("ingestion")),
                "checked against the configured sources before ingestion",
            )

    @hook_impl
    def before_node_run(self, node, catalog, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from robust_mmr_pipeline import data_requirements as req

        stage = req.STAGE_NODES.get(node.name.rsplit(".", 1)[-1])
        if stage is None:
            return None
        key = next(
            (k for k in inputs if k == f"params:{stage}" or k.endswith(f"{stage}_params")), None
        )
        if key is None:
            return None
        if self._parameters is None:
            self._parameters = catalog.load("parameters")
        manifest = next((v for k, v in inputs.items() if k.endswith("finetune_manifest")), {})
        shortfalls = req.manifest_shortfalls(
            stage,
            inputs[key],
            split_pairs=inputs.get("split_pairs"),
            split_vqa=inputs.get("split_vqa"),
            split_classification=inputs.get("split_classification"),
            finetuned_tasks=list((manifest or {}).get("tasks", {})),
            min_rows=self._requirements().min_rows,
        )
        try:
            sources = req.configured_sources(self._parameters.get("ingestion"))
        except ValueError:
            sources = []
        skipped = self._skipped | req.enforce(
            shortfalls,
            self._requirements().skip_when_missing,
            sources,
            f"checked before node {node.name}",
        )
        updated = req.without_skipped(stage, inputs[key], skipped)
        return {key: updated} if updated != inputs[key] else None

    def _requirements(self) -> Any:
        from robust_mmr_pipeline.data_requirements import RequirementsParams
        from robust_mmr_pipeline.params import parse

        section = (self._parameters or {}).get("requirements")
        return parse(RequirementsParams, section, "requirements")


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
