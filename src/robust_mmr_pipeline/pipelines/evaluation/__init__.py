"""Evaluation pipeline: in-domain, cross-domain and perturbed test sets; robustness report."""

from robust_mmr_pipeline.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
