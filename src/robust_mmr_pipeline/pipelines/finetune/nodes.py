"""Fine-tuning nodes: thin wrappers over ``robust_mmr_pipeline.recipes.finetune``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.finetune.params import FinetuneParams
from robust_mmr_pipeline.recipes import finetune as recipe


def _task_tables(
    params: FinetuneParams,
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    pairs = split_pairs[split_pairs["text_kind"].isin(params.text_kinds)]
    return {"vqa": split_vqa, "classification": split_classification, "retrieval": pairs}


def _log_best_step(prefix: str) -> Any:
    def log(task: str, summary: Any) -> None:
        import mlflow

        if mlflow.active_run() is not None:
            mlflow.log_metrics({f"{prefix}/{task}/best_step": float(summary.best_step)})

    return log


def finetune_tasks(
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
    image_cache: dict[str, Any],
    tokenizer: Any,
    pretrain_checkpoint: dict[str, Any],
    parameters: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fine-tune every configured task from the pre-trained backbone (or from scratch when
    ``finetune.from_scratch``), select on the protocol's val split."""
    params = parse(FinetuneParams, parameters, "finetune")
    return recipe.finetune_all(
        _task_tables(params, split_vqa, split_classification, split_pairs),
        image_cache["cache_dir"],
        tokenizer,
        pretrain_checkpoint,
        params,
        from_scratch=params.from_scratch,
        output_dir=params.output_dir,
        on_task_done=_log_best_step("finetune"),
    )


def finetune_reference(
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
    image_cache: dict[str, Any],
    tokenizer: Any,
    pretrain_checkpoint: dict[str, Any],
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """The no-pretraining reference: the same tasks, architecture and recipe from random
    weights (``finetune.reference_from_scratch``; nothing when the main run is already from
    scratch)."""
    params = parse(FinetuneParams, parameters, "finetune")
    if not params.reference_from_scratch or params.from_scratch:
        reason = (
            "finetune.reference_from_scratch is false"
            if not params.reference_from_scratch
            else "the main run is itself from scratch"
        )
        return {"tasks": {}, "skipped": reason}
    manifest, _metrics = recipe.finetune_all(
        _task_tables(params, split_vqa, split_classification, split_pairs),
        image_cache["cache_dir"],
        tokenizer,
        pretrain_checkpoint,
        params,
        from_scratch=True,
        output_dir=f"{params.output_dir}/from_scratch",
        on_task_done=_log_best_step("finetune_from_scratch"),
        log_prefix="from_scratch",
    )
    return manifest


def finetune_plain_reference(
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
    image_cache: dict[str, Any],
    tokenizer: Any,
    pretrain_checkpoint: dict[str, Any],
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """Plain fine-tuning of the pre-trained backbone: the from-scratch recipe (no LP-FT, no
    layer-wise decay) at the budgets of ``finetune.pretrained.plain_ft_reference``, so the
    report shows what the fine-tuning recipe adds (nothing when that list is empty)."""
    params = parse(FinetuneParams, parameters, "finetune")
    budgets = list(params.pretrained.plain_ft_reference)
    if not budgets or params.from_scratch:
        reason = "the main run is from scratch" if budgets else "no plain_ft_reference budget"
        return {"tasks": {}, "label_budgets": {}, "skipped": reason}
    tasks = [t for t in params.tasks if t in params.budget_tasks] or params.tasks
    manifest, _metrics = recipe.finetune_all(
        _task_tables(params, split_vqa, split_classification, split_pairs),
        image_cache["cache_dir"],
        tokenizer,
        pretrain_checkpoint,
        dataclasses.replace(params, tasks=tasks),
        from_scratch=False,
        output_dir=f"{params.output_dir}/plain_ft",
        log_prefix="plain_ft",
        pretrained_recipe=False,
        budgets=budgets,
        full_budget=1.0 in budgets,
    )
    return manifest
