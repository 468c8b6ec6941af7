"""Ablation pipeline: pretrain -> finetune -> evaluate per setting x seed, then one comparison."""

from robust_mmr_pipeline.pipelines.ablation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
