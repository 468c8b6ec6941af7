"""Downstream tasks: VQA, image–text classification and retrieval on an MMRModel backbone.

Plain torch (no Kedro). :class:`TaskModel` wraps a pre-trained (or from-scratch) backbone with
M3AE's classifier head or, for retrieval, fine-tunes its ITM head and contrastive embeddings;
the engine trains and checkpoints it like the pre-training model. :mod:`.data` builds task
batches from the engine's image cache and pair collator (with on-the-fly perturbations for
robustness test sets), :mod:`.retrieval` ranks with contrastive top-k + ITM re-ranking or the
full cross-encoder (its set in :mod:`.retrieval_inputs`, encoding and ITM scores in
:mod:`.retrieval_encoding`), :mod:`.metrics` / :mod:`.evaluation` compute the metrics with bootstrap
CIs and the robustness summaries (drop, mCE, mean-rank degradation), :mod:`.selection`
picks checkpoints on validation only.

The names below load on first use (PEP 562 ``__getattr__``): :mod:`.registry` is read when
Kedro starts and must not pull torch in. torchvision is made importable first: timm and
transformers import it, and PyPI's CUDA wheel fails beside the CPU torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule defining it
_EXPORTS: dict[str, str] = {
    "TASKS": "registry",
    "TaskConfig": "config",
    "TaskConfigError": "config",
    "TaskOptions": "config",
    "ANSWER_TYPE_IDS": "data",
    "ClassificationDataset": "data",
    "ImagePerturbation": "data",
    "RetrievalPairDataset": "data",
    "TaskCollator": "data",
    "TextPerturbation": "data",
    "VQADataset": "data",
    "answer_type_ids": "data",
    "answer_vocabulary": "data",
    "encode_labels": "data",
    "label_vocabulary": "data",
    "classification_metrics": "evaluation",
    "collect_predictions": "evaluation",
    "evaluate_classification": "evaluation",
    "evaluate_retrieval": "evaluation",
    "evaluate_vqa": "evaluation",
    "retrieval_metrics": "evaluation",
    "vqa_metrics": "evaluation",
    "ClassifierHead": "heads",
    "OOV_LABEL": "metrics",
    "ConfidenceInterval": "metrics",
    "accuracy": "metrics",
    "bootstrap_ci": "metrics",
    "corruption_error": "metrics",
    "macro_f1": "metrics",
    "mean_corruption_error": "metrics",
    "mean_rank_degradation": "metrics",
    "performance_drop": "metrics",
    "rank_metrics": "metrics",
    "ranks_from_scores": "metrics",
    "recall_at_k": "metrics",
    "vqa_accuracy": "metrics",
    "TaskModel": "model",
    "TaskOutput": "model",
    "ITMScorer": "retrieval_encoding",
    "RetrievalInputs": "retrieval_inputs",
    "RetrievalResult": "retrieval",
    "contrastive_search": "retrieval",
    "cross_encoder_search": "retrieval",
    "encode_inputs": "retrieval_encoding",
    "two_stage_search": "retrieval",
    "Selection": "selection",
    "select_best": "selection",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module != "registry":
        from robust_mmr_pipeline._torchvision_compat import ensure_torchvision_importable

        ensure_torchvision_importable()
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ANSWER_TYPE_IDS",
    "OOV_LABEL",
    "TASKS",
    "ClassificationDataset",
    "ClassifierHead",
    "ConfidenceInterval",
    "ITMScorer",
    "ImagePerturbation",
    "RetrievalInputs",
    "RetrievalPairDataset",
    "RetrievalResult",
    "Selection",
    "TaskCollator",
    "TaskConfig",
    "TaskConfigError",
    "TaskModel",
    "TaskOptions",
    "TaskOutput",
    "TextPerturbation",
    "VQADataset",
    "accuracy",
    "answer_type_ids",
    "answer_vocabulary",
    "bootstrap_ci",
    "classification_metrics",
    "collect_predictions",
    "contrastive_search",
    "corruption_error",
    "cross_encoder_search",
    "encode_inputs",
    "encode_labels",
    "evaluate_classification",
    "evaluate_retrieval",
    "evaluate_vqa",
    "label_vocabulary",
    "macro_f1",
    "mean_corruption_error",
    "mean_rank_degradation",
    "performance_drop",
    "rank_metrics",
    "ranks_from_scores",
    "recall_at_k",
    "retrieval_metrics",
    "select_best",
    "two_stage_search",
    "vqa_accuracy",
    "vqa_metrics",
]
