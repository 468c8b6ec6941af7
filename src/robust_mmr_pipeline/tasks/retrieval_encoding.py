"""Encoding a retrieval set for search: each item's unimodal embedding once
(:func:`encode_inputs`), and cross-encoder ITM scores of (image, text) pairs
(:class:`ITMScorer`), batched, with the unimodal streams reused (tasks/retrieval.py's
docstring)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks.retrieval_inputs import RetrievalInputs


def itm_log_odds(logits: Tensor) -> Tensor:
    """``log P(match) - log P(no match)`` ``[B]`` from ITM logits ``[B, 2]``.

    Monotone in the ITM probability (its sigmoid) but never saturates to 1.0 in float32, so
    confident candidates stay distinguishable when ranked.
    """
    logits = logits.float()
    return logits[:, 1] - logits[:, 0]


def backbone_of(model: nn.Module) -> MMRModel:
    """The MMRModel of ``model`` (a TaskModel's ``backbone`` or the model itself)."""
    backbone = getattr(model, "backbone", model)
    if not isinstance(backbone, MMRModel):
        raise TypeError(f"expected an MMRModel or a TaskModel, got {type(model).__name__}")
    return backbone


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@dataclass
class RetrievalEncoding:
    """Per-item encodings of a :class:`RetrievalInputs` (on the model's device).

    ``image_embeddings`` ``[N_i, d_c]`` / ``text_embeddings`` ``[N_t, d_c]`` L2-normalised;
    ``image_streams`` ``[N_i, 1+K, d]`` / ``text_streams`` ``[N_t, L, d]`` the fusion inputs
    (None when not kept); ``seconds`` the wall time of encoding.
    """

    image_embeddings: Tensor
    text_embeddings: Tensor
    image_streams: Tensor | None
    text_streams: Tensor | None
    seconds: float


def chunks(n: int, size: int) -> list[Tensor]:
    """Index tensors ``[0, size)``, ``[size, 2 size)``, ... covering ``range(n)``."""
    return [torch.arange(s, min(s + size, n)) for s in range(0, n, size)]


@torch.no_grad()
def encode_inputs(
    model: nn.Module,
    inputs: RetrievalInputs,
    *,
    batch_size: int = 128,
    keep_streams: bool = True,
    like: RetrievalEncoding | None = None,
    perturbed: str | None = None,
) -> RetrievalEncoding:
    """Encode every image and text once (eval mode; the model's mode is restored).

    With ``like`` (the clean set's encoding, same items, streams kept) only the ``perturbed``
    modality (``"image"`` / ``"text"``) is encoded and the other reused: the same numbers, as
    encoding is per item."""
    backbone = backbone_of(model)
    device = _device(backbone)
    was_training = backbone.training
    backbone.eval()
    start = time.perf_counter()
    try:
        image_emb, image_streams, text_emb, text_streams = [], [], [], []
        reuse = like is not None and perturbed in ("image", "text")
        if reuse and perturbed == "text":
            assert like is not None and like.image_streams is not None
            image_emb, image_streams = [like.image_embeddings], [like.image_streams]
        if reuse and perturbed == "image":
            assert like is not None and like.text_streams is not None
            text_emb, text_streams = [like.text_embeddings], [like.text_streams]
        for index in chunks(inputs.num_images, batch_size) if not image_emb else []:
            v0, emb = backbone.embed_images(inputs.pixel_values(index).to(device))
            image_emb.append(emb.float())
            if keep_streams:
                image_streams.append(v0)
        for index in chunks(inputs.num_texts, batch_size) if not text_emb else []:
            t0, emb = backbone.embed_texts(
                inputs.input_ids[index].to(device),
                inputs.attention_mask[index].to(device),
            )
            text_emb.append(emb.float())
            if keep_streams:
                text_streams.append(t0)
    finally:
        backbone.train(was_training)
    return RetrievalEncoding(
        image_embeddings=torch.cat(image_emb),
        text_embeddings=torch.cat(text_emb),
        image_streams=torch.cat(image_streams) if keep_streams else None,
        text_streams=torch.cat(text_streams) if keep_streams else None,
        seconds=time.perf_counter() - start,
    )


class ITMScorer:
    """Cross-encoder scores of arbitrary (image, text) index pairs, batched.

    ``scorer(image_index [P], text_index [P]) -> [P]`` float32 ITM log-odds on the CPU.
    ``pairs_scored`` counts the pairs run through the fusion layers.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: RetrievalInputs,
        encoding: RetrievalEncoding | None = None,
        *,
        batch_size: int = 256,
        reuse_unimodal: bool = True,
    ) -> None:
        self.backbone = backbone_of(model)
        if self.backbone.itm_head is None:
            raise RuntimeError("ITM scoring needs a backbone with an ITM head")
        self.inputs = inputs
        self.batch_size = int(batch_size)
        self.reuse_unimodal = reuse_unimodal
        self.device = _device(self.backbone)
        if reuse_unimodal and (encoding is None or encoding.image_streams is None):
            encoding = encode_inputs(model, inputs, batch_size=batch_size, keep_streams=True)
        self.encoding = encoding
        self.pairs_scored = 0

    @torch.no_grad()
    def __call__(self, image_index: Tensor, text_index: Tensor) -> Tensor:
        if image_index.shape != text_index.shape or image_index.ndim != 1:
            raise ValueError("image_index and text_index must be [P] each")
        backbone = self.backbone
        was_training = backbone.training
        backbone.eval()
        out = []
        try:
            for chunk in chunks(len(image_index), self.batch_size):
                images, texts = image_index[chunk].cpu(), text_index[chunk].cpu()
                mask = self.inputs.attention_mask[texts]
                length = max(int(mask.sum(dim=1).max()), 1)  # padding beyond is masked anyway
                mask = mask[:, :length].to(self.device)
                if self.reuse_unimodal:
                    assert self.encoding is not None and self.encoding.image_streams is not None
                    assert self.encoding.text_streams is not None
                    v0 = self.encoding.image_streams[images.to(self.encoding.image_streams.device)]
                    t0 = self.encoding.text_streams[texts.to(self.encoding.text_streams.device)]
                    fused = backbone.fuse(v0.to(self.device), t0[:, :length].to(self.device), mask)
                else:
                    ids = self.inputs.input_ids[texts][:, :length].to(self.device)
                    pixels = self.inputs.pixel_values(images).to(self.device)
                    fused = backbone.encode(pixels, ids, mask).fused
                out.append(itm_log_odds(backbone.itm_logits(fused)).cpu())
                self.pairs_scored += len(chunk)
        finally:
            backbone.train(was_training)
        return torch.cat(out) if out else torch.zeros(0)
