"""What the MMR model returns: a pre-training step's losses, the fused encoding, one pass."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from robust_mmr_pipeline.model.fusion import FusionOutput


@dataclass
class PretrainOutput:
    """``loss`` scalar (weighted total), ``losses`` detached per objective, ``metrics`` floats,
    ``diagnostics`` detached scalars the trainer logs and plots like the losses (the same keys
    every step; not part of the total): the consistency terms' collapse statistics."""

    loss: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class FusedOutput:
    """Unmasked multi-modal representation for fine-tuning (``d`` = fusion width)."""

    image_tokens: Tensor  # [B, 1+N, d]
    text_tokens: Tensor  # [B, L, d]
    image_pooled: Tensor  # [B, d]
    text_pooled: Tensor  # [B, d]
    fused: Tensor  # [B, 2d] = [text_pooled ; image_pooled]


@dataclass
class EncoderPass:
    """Everything one encoder + fusion pass produces."""

    image_unimodal: Tensor  # [B, 1+K, D_v]
    text_unimodal: Tensor  # [B, L, D_t]
    image_embedded: Tensor  # [B, 1+K, d] fusion input v_0
    text_embedded: Tensor  # [B, L, d] fusion input t_0
    fusion: FusionOutput
    image_pooled: Tensor  # [B, d]
    text_pooled: Tensor  # [B, d]
    fused: Tensor  # [B, 2d]
