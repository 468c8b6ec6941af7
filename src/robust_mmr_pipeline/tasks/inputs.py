"""One evaluation set, prepared once for every scorer (the model and the trivial baselines).

A set is rows (VQA questions, classification samples) that share images: VQA asks about ten
questions per image. :class:`EvalInputs` holds the UNIQUE images (perturbed once each) and the
per-row texts (perturbed per row), so

* the model encodes each image once and each distinct text once, and runs only the fusion
  layers and the head per row (:func:`classifier_logits`), and
* the baselines (:mod:`robust_mmr_pipeline.baselines`) read exactly the same perturbed pixels
  and strings, so every row of the report is scored on the same inputs.

Seeding: image ``i`` (index among the unique images, first-seen order) is perturbed with
``item_seed(seed, i)``; text ``j`` (row index) with ``item_seed(seed, j)``: one image shows the
same corruption in every question about it, as in the retrieval sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from robust_mmr_pipeline.engine.data import ImageCache
from robust_mmr_pipeline.tasks.data import ImagePerturbation, TextPerturbation


@dataclass
class EvalInputs:
    """Unique images ``[N_i, C, H, W]`` float in [0, 1] (perturbed), ``row_image`` long ``[n]``
    (each row's image index), ``texts`` (``n`` strings, perturbed), ``image_ids`` (``N_i``)."""

    images: Tensor
    row_image: Tensor
    texts: list[str]
    image_ids: list[str]
    image_modalities: list[str | None] | None = None  # per unique image, for the corruptions

    @property
    def num_rows(self) -> int:
        return len(self.texts)

    @classmethod
    def from_rows(
        cls,
        rows: pd.DataFrame,
        cache: ImageCache,
        *,
        text_column: str,
        image_perturbation: ImagePerturbation | None = None,
        text_perturbation: TextPerturbation | None = None,
    ) -> EvalInputs:
        """Read the rows' images from ``cache`` once each and apply the perturbations."""
        if rows.empty:
            raise ValueError("no rows to prepare")
        row_ids = rows["image_id"].astype(str).tolist()
        first_seen: dict[str, int] = {}
        row_image = [first_seen.setdefault(i, len(first_seen)) for i in row_ids]
        image_ids = list(first_seen)
        images = torch.stack([cache.tensor(i) for i in image_ids]).float().div_(255.0)
        modalities = None
        if "modality" in rows.columns:
            by_image = dict(zip(row_ids, rows["modality"].tolist(), strict=True))
            modalities = [by_image[i] if isinstance(by_image[i], str) else None
                          for i in image_ids]  # fmt: skip
        texts = rows[text_column].fillna("").astype(str).tolist()
        clean = cls(images, torch.tensor(row_image, dtype=torch.long), texts, image_ids, modalities)
        return clean.perturbed(image_perturbation, text_perturbation)

    def perturbed(
        self,
        image_perturbation: ImagePerturbation | None = None,
        text_perturbation: TextPerturbation | None = None,
    ) -> EvalInputs:
        """These (clean) inputs under the perturbations; the untouched modality is shared, not
        copied (the evaluation encodes it once for every perturbed set)."""
        images, texts = self.images, self.texts
        if image_perturbation is not None:
            indices = list(range(len(self.image_ids)))
            images = image_perturbation.apply(images.clone(), indices, self.image_modalities)
        if text_perturbation is not None:
            texts = text_perturbation.apply(texts, list(range(len(texts))))
        return EvalInputs(images, self.row_image, texts, self.image_ids, self.image_modalities)

    def row_pixels(self) -> Tensor:
        """``[n, C, H, W]``: each row's (perturbed) image."""
        return self.images[self.row_image]


def _chunks(n: int, size: int) -> list[Tensor]:
    return [torch.arange(s, min(s + size, n)) for s in range(0, n, size)]


@dataclass
class Streams:
    """An ``MMRModel``'s fusion inputs for an :class:`EvalInputs`: ``images`` ``[N_i, 1+K, d]``
    (one per unique image), ``texts`` ``[N_t, L, d]`` and ``mask`` ``[N_t, L]`` (one per
    distinct text), ``row_text`` long ``[n]`` (each row's distinct text)."""

    images: Tensor
    texts: Tensor
    mask: Tensor
    row_text: Tensor


@torch.no_grad()
def image_streams(backbone: nn.Module, images: Tensor, batch_size: int = 128) -> Tensor:
    """``embed_images`` of every image, batched (eval mode expected)."""
    device = next(backbone.parameters()).device
    streams = [backbone.embed_images(images[index].to(device))[0]
               for index in _chunks(len(images), batch_size)]  # fmt: skip
    return torch.cat(streams)


@torch.no_grad()
def text_streams(
    backbone: nn.Module, texts: list[str], tokenizer: Any, max_length: int, batch_size: int = 128
) -> tuple[Tensor, Tensor, Tensor]:
    """``(streams [N_t, L, d], mask [N_t, L], row_text [n])``: ``embed_texts`` once per distinct
    text, padded to the longest (at most ``max_length``), batched (eval mode expected)."""
    device = next(backbone.parameters()).device
    distinct: dict[str, int] = {}
    row_text = torch.tensor([distinct.setdefault(t, len(distinct)) for t in texts],
                            dtype=torch.long)  # fmt: skip
    encoded = tokenizer(
        list(distinct),
        max_length=max_length,
        padding="longest",
        truncation=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    ids = encoded["input_ids"].long().to(device)
    mask = encoded["attention_mask"].long().to(device)
    streams = torch.cat(
        [backbone.embed_texts(ids[i], mask[i])[0] for i in _chunks(len(ids), batch_size)]
    )
    return streams, mask, row_text


@torch.no_grad()
def encode_streams(
    backbone: nn.Module,
    inputs: EvalInputs,
    tokenizer: Any,
    max_length: int,
    batch_size: int = 128,
    *,
    like: Streams | None = None,
    perturbed: str | None = None,
) -> Streams:
    """:class:`Streams` of ``inputs``; with ``like`` (the clean set's streams, same rows) only
    the ``perturbed`` modality (``"image"`` / ``"text"``) is encoded, the other reused (the
    same numbers: encoding is per item). Eval mode; the module's mode is restored."""
    was_training = backbone.training
    backbone.eval()
    try:
        if like is not None and perturbed == "text":
            images = like.images
        else:
            images = image_streams(backbone, inputs.images, batch_size)
        if like is not None and perturbed == "image":
            texts, mask, row_text = like.texts, like.mask, like.row_text
        else:
            texts, mask, row_text = text_streams(
                backbone, inputs.texts, tokenizer, max_length, batch_size
            )
    finally:
        backbone.train(was_training)
    return Streams(images, texts, mask, row_text)


@torch.no_grad()
def fuse_streams(
    backbone: nn.Module, streams: Streams, row_image: Tensor, batch_size: int = 128
) -> Tensor:
    """The fused feature ``[n, 2d]`` of every row (``fuse`` per row, batched)."""
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    try:
        fused = []
        for index in _chunks(len(row_image), batch_size):
            image_rows = row_image[index].to(device)
            text_rows = streams.row_text[index].to(device)
            fused.append(
                backbone.fuse(
                    streams.images[image_rows], streams.texts[text_rows], streams.mask[text_rows]
                )
            )
    finally:
        backbone.train(was_training)
    return torch.cat(fused)


@torch.no_grad()
def fused_features(
    backbone: nn.Module,
    inputs: EvalInputs,
    tokenizer: Any,
    max_length: int,
    batch_size: int = 128,
) -> Tensor:
    """The fused feature ``[n, 2d]`` of every row of ``inputs`` under an ``MMRModel``.

    Split encoding (``embed_images`` / ``embed_texts`` once per unique image / text, ``fuse``
    per row) gives the same features as ``encode(...).fused`` row by row, at a fraction of the
    cost when rows share images or texts. Texts are padded to the longest distinct text (at
    most ``max_length``). Eval mode; the module's mode is restored.
    """
    streams = encode_streams(backbone, inputs, tokenizer, max_length, batch_size)
    return fuse_streams(backbone, streams, inputs.row_image, batch_size)


def head_logits(model: nn.Module, fused: Tensor, batch_size: int = 128) -> Tensor:
    """A TaskModel head's logits ``[n, C]`` (CPU, float) of fused features, batched."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = [model.head_logits(fused[index]).float().cpu()
                      for index in _chunks(len(fused), batch_size)]  # fmt: skip
    finally:
        model.train(was_training)
    return torch.cat(logits)


@torch.no_grad()
def classifier_logits(
    model: nn.Module,
    inputs: EvalInputs,
    tokenizer: Any,
    max_length: int,
    batch_size: int = 128,
) -> Tensor:
    """Logits ``[n, C]`` of a VQA / classification :class:`~.model.TaskModel` on ``inputs``:
    :func:`fused_features` of its backbone, then its head."""
    was_training = model.training
    model.eval()
    try:
        fused = fused_features(model.backbone, inputs, tokenizer, max_length, batch_size)
        logits = [
            model.head_logits(fused[index]).float().cpu()
            for index in _chunks(len(fused), batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(logits)
