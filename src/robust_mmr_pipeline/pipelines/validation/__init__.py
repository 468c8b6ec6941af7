"""Validation pipeline."""

from robust_mmr_pipeline.pipelines.validation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
