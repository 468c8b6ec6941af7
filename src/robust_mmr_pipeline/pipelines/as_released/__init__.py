"""as_released pipeline: fine-tuning and evaluation on the official split as published."""

from robust_mmr_pipeline.pipelines.as_released.pipeline import create_pipeline

__all__ = ["create_pipeline"]
