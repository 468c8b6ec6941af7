"""Custom Kedro datasets where kedro-datasets has none."""

from robust_mmr_pipeline.datasets.tokenizer_dataset import TokenizerDataset

__all__ = ["TokenizerDataset"]
