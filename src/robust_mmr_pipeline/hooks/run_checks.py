"""Checks before the work: typed parameters before the run, and the data requirements
before the run and before each stage-entry node."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from robust_mmr_pipeline.params import check_sections, validate_sections


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


class DataRequirementsHooks:
    """Stop a run whose configured data cannot feed one of its stages, before the work.

    Before the run (when it ingests): the configured sources' declarations against every stage
    the run reads parameters of. Before each stage-entry node (fit_tokenizer, pretrain_model,
    finetune_tasks, evaluate_models, namespaced copies included): the split manifests' counts.
    Tasks the user allowed to skip (``requirements.skip_when_missing``) are removed from that
    node's parameters; anything else missing raises DataRequirementsError
    (robust_mmr_pipeline/data_requirements/).
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
