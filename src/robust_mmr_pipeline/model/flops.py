"""Analytic FLOPs per sample of one pre-training step (for MFU).

Counts matrix multiplications only (2 FLOPs per multiply-add), following the pass structure of
:mod:`robust_mmr_pipeline.model.mmr`; norms, softmax and element-wise ops are ignored. Training
FLOPs = 3 × forward FLOPs (the backward pass costs twice the forward).

Per layer, with ``n`` query tokens, ``m`` context tokens, width ``d``, MLP ratio ``r``:

    self-attention block   n (8 + 4r) d² + 4 n² d
    co-attention layer     n (12 + 4r) d² + 4 m d² + 4 n² d + 4 n m d
    BERT layer (inner I)   8 L d² + 4 L² d + 4 L d I
"""

from __future__ import annotations

from robust_mmr_pipeline.model.config import ModelConfig
from robust_mmr_pipeline.model.masking import num_kept


def attention_block_flops(n: float, d: int, mlp_ratio: float) -> float:
    """Pre-LN transformer block on ``n`` tokens: QKV + out projections, attention, MLP."""
    return n * (8 + 4 * mlp_ratio) * d * d + 4 * n * n * d


def co_attention_layer_flops(n: float, m: float, d: int, mlp_ratio: float) -> float:
    """Self-attention on ``n`` tokens, cross-attention to ``m`` tokens, FFN."""
    self_part = 8 * n * d * d + 4 * n * n * d
    cross_part = 4 * n * d * d + 4 * m * d * d + 4 * n * m * d
    return self_part + cross_part + 4 * mlp_ratio * n * d * d


def vision_flops(config: ModelConfig, n_kept: float) -> float:
    """Patch embedding of all ``N`` patches + ViT blocks on ``1 + n_kept`` tokens."""
    v = config.vision
    embed = 2 * v.num_patches * v.patch_dim * v.embed_dim
    return embed + v.depth * attention_block_flops(1 + n_kept, v.embed_dim, v.mlp_ratio)


def text_flops(config: ModelConfig) -> float:
    """BERT layers on ``L = max_length`` tokens (padding is computed too)."""
    t = config.text
    length, d = t.max_length, t.hidden_size
    per_layer = 8 * length * d * d + 4 * length * length * d + 4 * length * d * t.intermediate_size
    return t.num_layers * per_layer


def fusion_flops(
    config: ModelConfig, n_image: float, n_text: float, with_embed: bool = True
) -> float:
    """Projections (+ memory) and the co-attention layers of both streams, and the poolers."""
    f, d = config.fusion, config.fusion.hidden_size
    total = 0.0
    if with_embed:
        total += 2 * d * (n_image * config.vision.embed_dim + n_text * config.text.hidden_size)
        if config.memory.enabled:
            # q / out projections + scores and read-out over all S slots (dense softmax)
            total += (n_image + n_text) * (4 * d * d + 4 * config.memory.num_slots * d)
    layer = co_attention_layer_flops(n_text, n_image, d, f.mlp_ratio) + co_attention_layer_flops(
        n_image, n_text, d, f.mlp_ratio
    )
    return total + f.num_layers * layer + 2 * 2 * d * d


def decoder_flops(config: ModelConfig, n_in: float) -> float:
    """MIM decoder: embed ``n_in`` tokens, blocks on ``1 + N``, pixel prediction."""
    dec, v = config.decoder, config.vision
    d, n = dec.hidden_size, v.num_patches
    return (
        2 * n_in * config.fusion.hidden_size * d
        + dec.depth * attention_block_flops(1 + n, d, dec.mlp_ratio)
        + 2 * n * d * v.patch_dim
    )


def mlm_head_flops(config: ModelConfig, n_tokens: float) -> float:
    """Dense + vocab projection on the ``n_tokens`` masked positions."""
    t = config.text
    return 2 * n_tokens * t.hidden_size * (config.fusion.hidden_size + t.vocab_size)


def _pass_flops(config: ModelConfig, n_kept: float, decoder: bool, mlm_tokens: float) -> float:
    n_text = config.text.max_length
    total = vision_flops(config, n_kept) + text_flops(config)
    total += fusion_flops(config, 1 + n_kept, n_text)
    if decoder:
        total += decoder_flops(config, 1 + n_kept)
    return total + mlm_head_flops(config, mlm_tokens)


def forward_flops_per_sample(config: ModelConfig, batch_size: int | None = None) -> float:
    """Forward FLOPs per sample of one step. ``batch_size`` adds the GLA-local similarity
    (``2 B L K d_c`` per sample), which grows with the batch; ``None`` leaves it out."""
    obj, v, t = config.objectives, config.vision, config.text
    n_all = v.num_patches
    mlm_tokens = obj.mlm_probability * (t.max_length - 2) if obj.mlm else 0.0
    if config.m3ae_style:
        total = 0.0
        if obj.mlm:
            total += _pass_flops(config, n_all, False, mlm_tokens)
        if obj.mim:
            total += _pass_flops(config, num_kept(n_all, obj.mim_mask_ratio), True, 0.0)
        if obj.itm:
            total += _pass_flops(config, n_all, False, 0.0)
        return total

    n_kept = num_kept(n_all, obj.mim_mask_ratio) if obj.mim else n_all
    total = _pass_flops(config, n_kept, obj.mim, mlm_tokens)
    if obj.itm:  # negatives: fusion layers only
        total += fusion_flops(config, 1 + n_kept, t.max_length, with_embed=False)
    if obj.gla_local:
        c = obj.contrastive_dim
        total += 2 * c * (t.max_length * t.hidden_size + n_kept * v.embed_dim)
        if batch_size:
            total += 2 * batch_size * t.max_length * n_kept * c
    if config.needs_degraded_pass:
        robust = config.robust
        share = robust.drop_text_prob + robust.drop_image_prob  # only dropped samples run
        if config.needs_perturbed_views:
            share = 1.0
        kept: float = n_all
        if obj.mim:
            kept = num_kept(n_all, obj.mim_mask_ratio)
            if robust.perturbation_aware_masking:
                p_image_view = robust.view_probs[0] + robust.view_probs[2]
                perturbed = num_kept(n_all, robust.perturbed_image_mask_ratio)
                kept = p_image_view * perturbed + (1 - p_image_view) * kept
        recon = robust.degraded_reconstruction
        total += share * _pass_flops(config, kept, obj.mim and recon, mlm_tokens if recon else 0)
    return total


def consistency_target_flops(config: ModelConfig) -> float:
    """The unmasked clean pass under no_grad that domain consistency / modality resilience
    pull towards (forward only; none when they use the masked joint pass)."""
    obj = config.objectives
    if not (obj.domain_consistency or obj.modality_resilience):
        return 0.0
    if config.robust.consistency_target != "unmasked":
        return 0.0
    return _pass_flops(config, config.vision.num_patches, False, 0.0)


def training_flops_per_sample(config: ModelConfig, batch_size: int | None = None) -> float:
    """Forward + backward FLOPs per sample: ``3 ×`` :func:`forward_flops_per_sample`, plus the
    forward-only consistency target pass."""
    return 3.0 * forward_flops_per_sample(config, batch_size) + consistency_target_flops(config)
