"""A retrieval set: images, tokenised texts and which image each text describes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from robust_mmr_pipeline.engine.data import ImageCache
from robust_mmr_pipeline.tasks.data import ImagePerturbation, TextPerturbation


@dataclass
class RetrievalInputs:
    """A retrieval set: images ``[N_i, C, H, W]`` (uint8 0..255 or float [0, 1]), tokenised
    texts ``[N_t, L]`` and ``text_to_image`` long ``[N_t]`` (index of each text's image).

    ``image_perturbation`` is applied on the fly to every image batch, sample ``i`` seeded by
    its image index (text perturbations are applied before tokenisation, by
    :meth:`from_pairs`).
    """

    images: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    text_to_image: Tensor
    image_ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    image_perturbation: ImagePerturbation | None = None
    image_modalities: list[str | None] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be [N, C, H, W], got {tuple(self.images.shape)}")
        if self.input_ids.shape != self.attention_mask.shape or self.input_ids.ndim != 2:
            raise ValueError("input_ids and attention_mask must both be [N_t, L]")
        self.text_to_image = self.text_to_image.long()
        if self.text_to_image.shape != (self.input_ids.shape[0],):
            raise ValueError("text_to_image needs one image index per text")
        if len(self.text_to_image) and (
            int(self.text_to_image.min()) < 0 or int(self.text_to_image.max()) >= self.num_images
        ):
            raise ValueError("text_to_image holds an index outside the images")
        described = torch.zeros(self.num_images, dtype=torch.bool)
        described[self.text_to_image] = True
        if not bool(described.all()):
            raise ValueError("every image needs at least one text (else it has no positive)")

    @property
    def num_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_texts(self) -> int:
        return int(self.input_ids.shape[0])

    def pixel_values(self, index: Tensor) -> Tensor:
        """Float ``[b, C, H, W]`` in [0, 1] for image indices ``index`` ``[b]`` (perturbed
        when an image perturbation is set)."""
        images = self.images[index]
        images = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
        if self.image_perturbation is not None:
            modalities = None
            if self.image_modalities is not None:
                modalities = [self.image_modalities[int(i)] for i in index]
            images = self.image_perturbation.apply(images, index, modalities)
        return images

    def positives_for_images(self, image_index: Tensor) -> Tensor:
        """bool ``[Q, N_t]``: the texts of each query image."""
        return self.text_to_image[None, :] == image_index[:, None]

    def positives_for_texts(self, text_index: Tensor) -> Tensor:
        """bool ``[Q, N_i]``: the image of each query text."""
        images = torch.arange(self.num_images)
        return images[None, :] == self.text_to_image[text_index][:, None]

    @classmethod
    def from_pairs(
        cls,
        pairs: pd.DataFrame,
        cache: ImageCache,
        tokenizer: Any,
        *,
        max_length: int = 64,
        text_column: str = "text",
        image_perturbation: ImagePerturbation | None = None,
        text_perturbation: TextPerturbation | None = None,
    ) -> RetrievalInputs:
        """Build from a pairs frame (``image_id``, ``text``; optional ``modality``).

        Images are the unique image ids in first-seen order, read from ``cache`` (uint8);
        texts are tokenised like :class:`~robust_mmr_pipeline.engine.PairCollator` (padding
        to ``max_length``), after ``text_perturbation`` (text ``j`` seeded by ``j``).
        """
        missing = [c for c in ("image_id", text_column) if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs lack column(s) {missing}")
        pair_images = pairs["image_id"].astype(str).tolist()
        texts = pairs[text_column].fillna("").astype(str).tolist()
        first_seen: dict[str, int] = {}
        text_to_image = [first_seen.setdefault(i, len(first_seen)) for i in pair_images]
        image_ids = list(first_seen)
        images = torch.stack([cache.tensor(i) for i in image_ids]) if image_ids else None
        if images is None:
            raise ValueError("pairs is empty")
        modalities = None
        if "modality" in pairs.columns:
            by_image = dict(zip(pair_images, pairs["modality"].tolist(), strict=True))
            modalities = [m if isinstance(m, str) else None for m in map(by_image.get, image_ids)]
        if text_perturbation is not None:
            texts = text_perturbation.apply(texts, list(range(len(texts))))
        encoded = tokenizer(
            texts,
            max_length=max_length,
            padding="max_length",
            truncation=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return cls(
            images=images.clone(),
            input_ids=encoded["input_ids"].long(),
            attention_mask=encoded["attention_mask"].long(),
            text_to_image=torch.tensor(text_to_image, dtype=torch.long),
            image_ids=image_ids,
            texts=texts,
            image_perturbation=image_perturbation,
            image_modalities=modalities,
        )
