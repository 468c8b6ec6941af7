"""Fine-tuning: VQA / classification / retrieval from the pre-trained (or a fresh) backbone."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.finetune.nodes import (
    finetune_plain_reference,
    finetune_reference,
    finetune_tasks,
)

# Both nodes read the same tables, cache, tokenizer and backbone manifest: the reference runs
# the same recipe from random weights.
FINETUNE_INPUTS = [
    "split_vqa",
    "split_classification",
    "split_pairs",
    "image_cache",
    "tokenizer",
    "pretrain_checkpoint",
    "params:finetune",
]


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                finetune_tasks,
                inputs=FINETUNE_INPUTS,
                outputs=["finetune_manifest", "finetune_metrics"],
                name="finetune_tasks",
            ),
            node(
                finetune_reference,
                inputs=FINETUNE_INPUTS,
                outputs="finetune_reference_manifest",
                name="finetune_reference",
            ),
            node(
                finetune_plain_reference,
                inputs=FINETUNE_INPUTS,
                outputs="finetune_plain_manifest",
                name="finetune_plain_reference",
            ),
        ]
    )
