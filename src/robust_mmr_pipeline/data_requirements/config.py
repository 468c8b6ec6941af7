"""``params:requirements`` and the names the checks share: the keys ``skip_when_missing``
accepts, each task's table, and the stage-entry nodes checked against the manifests."""

from __future__ import annotations

from dataclasses import field

from robust_mmr_pipeline.tasks.registry import TASK_SPECS, TASKS
from robust_mmr_pipeline.typed_config import config

CROSS_DOMAIN_SKIP = "cross_domain"
# The namespace of the as_released fine-tuning + evaluation branch (pipelines/as_released).
AS_RELEASED_NAMESPACE = "as_released"
SKIPPABLE: tuple[str, ...] = (*TASKS, CROSS_DOMAIN_SKIP)
TASK_TABLES = {name: spec.table for name, spec in TASK_SPECS.items()}
# The stage-entry nodes checked against the manifests (by function name, so the namespaced
# copies of the as_released branch and the ablation are checked too).
STAGE_NODES: dict[str, str] = {
    "fit_tokenizer": "pretrain",
    "pretrain_model": "pretrain",
    "finetune_tasks": "finetune",
    "evaluate_models": "evaluation",
}


@config
class RequirementsParams:
    """``params:requirements``: how many rows a stage needs, and which stages may be skipped
    when their data is missing.

    ``skip_when_missing``: any of ``vqa``, ``classification``, ``retrieval`` (fine-tuning and
    evaluation of that task) and ``cross_domain`` (the cross-domain evaluation). Empty (the
    default): every shortfall stops the run before the stage starts.
    """

    skip_when_missing: list[str] = field(default_factory=list)
    # Rows a stage needs at least in each split it reads (pre-training pairs; train, val and
    # test rows per task): a val split of 2 questions selects a checkpoint by noise.
    min_rows: int = 1

    def __post_init__(self) -> None:
        if self.min_rows < 1:
            raise ValueError(f"requirements.min_rows must be >= 1, got {self.min_rows}.")
        unknown = sorted(set(self.skip_when_missing) - set(SKIPPABLE))
        if unknown:
            raise ValueError(
                f"requirements.skip_when_missing names {unknown}; the stages that can be skipped "
                f"are {list(SKIPPABLE)} (pre-training cannot: fine-tuning needs its backbone "
                "and tokenizer)."
            )
