"""Split encoding of an :class:`MMRModel` for retrieval: unimodal once per item, fusion per pair.

``MMRModel.encode`` / ``itm_score`` run both unimodal encoders for every (image, text) pair.
Ranking N images against N texts with the cross-encoder needs N² fused pairs but only N image
and N text encodings, so retrieval splits the model in two stages:

1. per item (once): ``V = vision(x)`` ``[B, 1+K, D_v]``, ``T = text(ids, mask)`` ``[B, L, D_t]``;
   fusion inputs ``v_0 = Mem(V W_v + type_v)`` ``[B, 1+K, d]`` and
   ``t_0 = Mem(T W_t + type_t)`` ``[B, L, d]`` (the two halves of ``CoAttentionFusion.embed``,
   which treats each stream independently); contrastive embeddings
   ``e = normalize(P(CLS))`` ``[B, d_c]`` (``P`` the GLA projection when the model has one,
   else the fusion input projection: exactly what ``MMRModel.contrastive_embeddings`` does);
2. per pair: co-attention layers on ``(v_0[i], t_0[j])``, poolers, fused ``[t_pool ; v_pool]``
   ``[P, 2d]`` and the ITM head.

The result equals ``encode`` / ``contrastive_embeddings`` / ``itm_score`` of the model (tested
in ``tests/tasks``); it reads the model's public sub-modules ``vision``, ``text``, ``fusion``
(``image_proj``, ``text_proj``, ``type_embed``, ``memory``), ``text_pooler``,
``image_pooler``, ``itm_head`` and the contrastive projections.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.model.fusion import IMAGE_TYPE, TEXT_TYPE, fused_feature


def embed_image_stream(backbone: MMRModel, image_tokens: Tensor) -> Tensor:
    """Vision encoder output ``[B, 1+K, D_v]`` -> fusion input ``v_0`` ``[B, 1+K, d]``."""
    fusion = backbone.fusion
    embedded = fusion.image_proj(image_tokens) + fusion.type_embed.weight[IMAGE_TYPE]
    return fusion.memory(embedded) if fusion.memory is not None else embedded


def embed_text_stream(backbone: MMRModel, text_tokens: Tensor) -> Tensor:
    """Text encoder output ``[B, L, D_t]`` -> fusion input ``t_0`` ``[B, L, d]``."""
    fusion = backbone.fusion
    embedded = fusion.text_proj(text_tokens) + fusion.type_embed.weight[TEXT_TYPE]
    return fusion.memory(embedded) if fusion.memory is not None else embedded


def image_contrastive_embedding(backbone: MMRModel, image_tokens: Tensor) -> Tensor:
    """L2-normalised image embedding ``[B, d_c]`` from the vision output's CLS token."""
    proj = backbone.image_contrastive if backbone.has_contrastive else backbone.fusion.image_proj
    return F.normalize(proj(image_tokens[:, 0]), dim=-1)


def text_contrastive_embedding(backbone: MMRModel, text_tokens: Tensor) -> Tensor:
    """L2-normalised text embedding ``[B, d_c]`` from the text output's CLS token."""
    proj = backbone.text_contrastive if backbone.has_contrastive else backbone.fusion.text_proj
    return F.normalize(proj(text_tokens[:, 0]), dim=-1)


def encode_images(backbone: MMRModel, pixel_values: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, C, H, W]`` -> (fusion input ``v_0`` ``[B, 1+K, d]``, embedding ``[B, d_c]``)."""
    tokens = backbone.vision(pixel_values)
    return embed_image_stream(backbone, tokens), image_contrastive_embedding(backbone, tokens)


def encode_texts(
    backbone: MMRModel, input_ids: Tensor, attention_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """``[B, L]`` ids + mask -> (fusion input ``t_0`` ``[B, L, d]``, embedding ``[B, d_c]``)."""
    tokens = backbone.text(input_ids, attention_mask)
    return embed_text_stream(backbone, tokens), text_contrastive_embedding(backbone, tokens)


def fuse_streams(
    backbone: MMRModel, image_embedded: Tensor, text_embedded: Tensor, attention_mask: Tensor
) -> Tensor:
    """Co-attention + poolers on embedded pairs (row i with row i): fused ``[B, 2d]``."""
    out = backbone.fusion(image_embedded, text_embedded, attention_mask)
    return fused_feature(backbone.text_pooler(out.text), backbone.image_pooler(out.image))


def itm_logits(backbone: MMRModel, fused: Tensor) -> Tensor:
    """ITM head on fused features: ``[B, 2d] -> [B, 2]`` (class 1 = matched)."""
    if backbone.itm_head is None:
        raise RuntimeError("ITM scoring needs a backbone trained with objectives.itm enabled")
    return backbone.itm_head(fused)


def itm_log_odds(logits: Tensor) -> Tensor:
    """``log P(match) - log P(no match)`` ``[B]`` from ITM logits ``[B, 2]``.

    Monotone in ``itm_score`` (= sigmoid of it) but never saturates to 1.0 in float32, so
    confident candidates stay distinguishable when ranked.
    """
    logits = logits.float()
    return logits[:, 1] - logits[:, 0]
