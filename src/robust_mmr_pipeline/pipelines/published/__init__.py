"""published pipeline: the default chain, then the as_released branch and benchmark page."""

from robust_mmr_pipeline.pipelines.published.pipeline import create_pipeline

__all__ = ["create_pipeline"]
