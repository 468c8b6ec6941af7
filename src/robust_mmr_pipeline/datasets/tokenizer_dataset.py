"""A Kedro dataset for a Hugging Face fast tokenizer saved as a folder (tokenizer.json, configs)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io import AbstractDataset, DatasetError


class TokenizerDataset(AbstractDataset[Any, Any]):
    """Saves with ``save_pretrained(folder)``; loads local files only, never from a hub.

    Example catalog entry::

        tokenizer:
          type: robust_mmr_pipeline.datasets.TokenizerDataset
          filepath: data/06_models/tokenizer
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def load(self) -> Any:
        from robust_mmr_pipeline.model.tokenizer import load_tokenizer

        folder = Path(self._filepath)
        if not (folder / "tokenizer.json").is_file():
            raise DatasetError(
                f"No tokenizer at {folder}: run the pretrain pipeline's fit_tokenizer node "
                "(kedro run --pipelines pretrain) first."
            )
        return load_tokenizer(folder)

    def save(self, data: Any) -> None:
        from robust_mmr_pipeline.model.tokenizer import save_tokenizer

        save_tokenizer(data, Path(self._filepath))

    def _exists(self) -> bool:
        return (Path(self._filepath) / "tokenizer.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
