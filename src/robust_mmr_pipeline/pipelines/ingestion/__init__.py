"""Ingestion pipeline."""

from robust_mmr_pipeline.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
