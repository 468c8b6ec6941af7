"""Fine-tuning node: a thin wrapper over ``robust_mmr_pipeline.recipes.finetune``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.finetune.params import FinetuneParams
from robust_mmr_pipeline.recipes import finetune as recipe

logger = logging.getLogger(__name__)


def _task_tables(
    params: FinetuneParams,
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    pairs = split_pairs[split_pairs["text_kind"].isin(params.text_kinds)]
    return {"vqa": split_vqa, "classification": split_classification, "retrieval": pairs}


def finetune_tasks(
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
    image_cache: dict[str, Any],
    tokenizer: Any,
    pretrain_checkpoint: dict[str, Any],
    parameters: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fine-tune every configured task on the protocol's train split, select on its val split.

    Returns the manifest (per task: best checkpoint, step, validation history, the rows it saw)
    and the flat validation metrics for ``dvc metrics show``.
    """
    params = parse(FinetuneParams, parameters, "finetune")
    tables = _task_tables(params, split_vqa, split_classification, split_pairs)
    if not params.from_scratch and not pretrain_checkpoint.get("checkpoint"):
        raise ValueError(
            "finetune.from_scratch is false but the backbone manifest names no checkpoint "
            "(a no-pretraining manifest): set finetune.from_scratch: true or run pretrain first."
        )
    backbone = None if params.from_scratch else pretrain_checkpoint["checkpoint"]
    # A pre-trained backbone's token embeddings follow the ids of the tokenizer stored with its
    # checkpoint; given none, finetune_task takes that one (the catalog's may be newer).
    task_tokenizer = None if backbone else tokenizer
    model_config = recipe.manifest_backbone_config(pretrain_checkpoint, params.model)
    manifest: dict[str, Any] = {
        "protocol": params.protocol,
        "from_scratch": params.from_scratch,
        "backbone_checkpoint": backbone,
        "preset": pretrain_checkpoint.get("preset"),
        "text_kinds": list(params.text_kinds),
        "tasks": {},
    }
    metrics: dict[str, Any] = {}
    for task in params.tasks:
        train_rows = recipe.task_rows(tables[task], params.protocol, "train")
        val_rows = recipe.task_rows(tables[task], params.protocol, "val")
        logger.info(
            "Fine-tuning %s (%s): %d train / %d val rows.",
            task,
            "from scratch" if params.from_scratch else "from pre-training",
            len(train_rows),
            len(val_rows),
        )
        summary = recipe.finetune_task(
            task,
            train_rows,
            val_rows,
            image_cache["cache_dir"],
            task_tokenizer,
            backbone,
            model_config,
            params.task_options.get(task, {}),
            params.trainer_for(task),
            params.task_dir(task),
            log_to_mlflow=params.log_to_mlflow,
        )
        entry = summary.as_dict()
        entry["retrieval_k"] = recipe.split_task_options(params.task_options.get(task))[1][
            "retrieval_k"
        ]
        manifest["tasks"][task] = entry
        metrics[task] = {
            "best_step": summary.best_step,
            **{f"val_{k}": v for k, v in summary.val_metrics.items() if _reported(k)},
        }
        _log_mlflow({f"finetune/{task}/best_step": float(summary.best_step)})
    return manifest, metrics


def _reported(name: str) -> bool:
    """Validation metrics worth a `dvc metrics show` column (no counts, no timings)."""
    return not (name == "n" or name.startswith("n_") or name.endswith(("_n", "seconds", "pairs")))


def _log_mlflow(values: dict[str, float]) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics(values)
