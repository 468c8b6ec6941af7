"""Pre-training: tokenizer -> image cache -> MMR / MPMA / Robust-MMR training run."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.pretrain.nodes import (
    build_image_cache,
    fit_tokenizer,
    pretrain_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                fit_tokenizer,
                inputs=["split_pairs", "params:pretrain"],
                outputs="tokenizer",
                name="fit_tokenizer",
            ),
            node(
                build_image_cache,
                inputs=["images", "image_roots", "params:pretrain"],
                outputs="image_cache",
                name="build_image_cache",
            ),
            node(
                pretrain_model,
                inputs=[
                    "split_pairs",
                    "split_vqa",
                    "split_classification",
                    "image_cache",
                    "tokenizer",
                    "params:pretrain",
                ],
                outputs=["pretrain_checkpoint", "pretrain_losses", "pretrain_loss_plot"],
                name="pretrain_model",
            ),
        ]
    )
