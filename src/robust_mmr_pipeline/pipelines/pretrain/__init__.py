"""Pre-training pipeline."""

from robust_mmr_pipeline.pipelines.pretrain.pipeline import create_pipeline

__all__ = ["create_pipeline"]
