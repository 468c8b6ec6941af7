"""Domain split pipeline."""

from robust_mmr_pipeline.pipelines.domain_split.pipeline import create_pipeline

__all__ = ["create_pipeline"]
