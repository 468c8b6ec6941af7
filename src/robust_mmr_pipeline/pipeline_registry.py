"""Project pipelines: every folder under ``pipelines/`` registers itself by name."""

from __future__ import annotations

import importlib

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline, pipeline

# The end-to-end chain run by `kedro run` / `make run`, in order; names not (yet) built are
# skipped. `tuning` and `ablation` are long searches run on demand, not part of the default.
DEFAULT_CHAIN = ("ingestion", "validation", "domain_split", "pretrain", "finetune", "evaluation")


def as_stage(name: str, stage: Pipeline) -> Pipeline:
    """``stage``'s nodes in the namespace ``name``: Kedro-Viz draws each stage of the chain as
    one collapsible group, and node names read ``<stage>.<node>`` (``kedro run --nodes
    ingestion.ingest_sources``). Dataset and parameter names keep no prefix: the catalog, DVC
    and every other pipeline name them as before."""
    return pipeline(stage, namespace=name, prefix_datasets_with_namespace=False)


def stage_pipeline(name: str) -> Pipeline:
    """Stage ``name`` of :data:`DEFAULT_CHAIN`, namespaced (:func:`as_stage`)."""
    module = importlib.import_module(f"robust_mmr_pipeline.pipelines.{name}")
    return as_stage(name, module.create_pipeline())


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; ``__default__`` chains those of DEFAULT_CHAIN, each
    in its stage's namespace."""
    pipelines = find_pipelines(raise_errors=True)
    for name in DEFAULT_CHAIN:
        if name in pipelines:
            pipelines[name] = as_stage(name, pipelines[name])
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_CHAIN if name in pipelines), Pipeline([])
    )
    return pipelines
