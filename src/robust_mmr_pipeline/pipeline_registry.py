"""Project pipelines: every folder under ``pipelines/`` registers itself by name."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# The end-to-end chain run by `kedro run` / `make run`, in order; names not (yet) built are
# skipped. `tuning` and `ablation` are long searches run on demand, not part of the default.
DEFAULT_CHAIN = ("ingestion", "validation", "domain_split", "pretrain", "finetune", "evaluation")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; ``__default__`` chains those of DEFAULT_CHAIN."""
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_CHAIN if name in pipelines), Pipeline([])
    )
    return pipelines
