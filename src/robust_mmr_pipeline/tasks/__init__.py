"""Downstream tasks: VQA, image–text classification and retrieval on an MMRModel backbone.

Plain torch (no Kedro). :class:`TaskModel` wraps a pre-trained (or from-scratch) backbone with
M3AE's classifier head or, for retrieval, fine-tunes its ITM head and contrastive embeddings;
the engine trains and checkpoints it like the pre-training model. :mod:`.data` builds task
batches from the engine's image cache and pair collator (with on-the-fly perturbations for
robustness test sets), :mod:`.retrieval` ranks with contrastive top-k + ITM re-ranking or the
full cross-encoder, :mod:`.metrics` / :mod:`.evaluation` compute the metrics with bootstrap
CIs and the robustness summaries (drop, mCE, mean-rank degradation), :mod:`.selection`
picks checkpoints on validation only.

torchvision is made importable first: timm and transformers import it, and PyPI's CUDA wheel
fails beside the CPU torch.
"""

from robust_mmr_pipeline._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

from robust_mmr_pipeline.tasks.config import (  # noqa: E402
    TASKS,
    TaskConfig,
    TaskConfigError,
    TaskOptions,
)
from robust_mmr_pipeline.tasks.data import (  # noqa: E402
    ANSWER_TYPE_IDS,
    ClassificationDataset,
    ImagePerturbation,
    RetrievalPairDataset,
    TaskCollator,
    TextPerturbation,
    VQADataset,
    answer_type_ids,
    answer_vocabulary,
    encode_labels,
    label_vocabulary,
)
from robust_mmr_pipeline.tasks.evaluation import (  # noqa: E402
    classification_metrics,
    collect_predictions,
    evaluate_classification,
    evaluate_retrieval,
    evaluate_vqa,
    retrieval_metrics,
    vqa_metrics,
)
from robust_mmr_pipeline.tasks.heads import ClassifierHead  # noqa: E402
from robust_mmr_pipeline.tasks.metrics import (  # noqa: E402
    OOV_LABEL,
    ConfidenceInterval,
    accuracy,
    bootstrap_ci,
    corruption_error,
    macro_f1,
    mean_corruption_error,
    mean_rank_degradation,
    performance_drop,
    rank_metrics,
    ranks_from_scores,
    recall_at_k,
    vqa_accuracy,
)
from robust_mmr_pipeline.tasks.model import TaskModel, TaskOutput  # noqa: E402
from robust_mmr_pipeline.tasks.retrieval import (  # noqa: E402
    ITMScorer,
    RetrievalInputs,
    RetrievalResult,
    contrastive_search,
    cross_encoder_search,
    encode_inputs,
    two_stage_search,
)
from robust_mmr_pipeline.tasks.selection import Selection, select_best  # noqa: E402

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
