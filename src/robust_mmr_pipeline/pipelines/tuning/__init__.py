"""Tuning pipeline: an Optuna search over the Robust-MMR loss weights (run on demand)."""

from robust_mmr_pipeline.pipelines.tuning.pipeline import create_pipeline

__all__ = ["create_pipeline"]
