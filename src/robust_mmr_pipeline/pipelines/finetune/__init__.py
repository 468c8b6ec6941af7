"""Fine-tuning pipeline."""

from robust_mmr_pipeline.pipelines.finetune.pipeline import create_pipeline

__all__ = ["create_pipeline"]
