"""Heads on top of the encoders and the fusion streams.

* :class:`MIMDecoder`   image stream [B, 1+K, d] + ids_restore -> pixels [B, N, p*p*C]
* :class:`MLMHead`      text tokens [M, d] -> vocab logits [M, V] (weight tied to word embeddings)
* :class:`ITMHead`      fused feature [B, 2d] -> match logits [B, 2]
* :class:`Pooler`       first token or masked token mean, dense + tanh: [B, L, d] -> [B, d]
* :class:`ProjectionHead` contrastive projection [..., d] -> [..., 256]
* :class:`ConsistencyHead` projector p + predictor q of a robust consistency term
"""

from __future__ import annotations

import math

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from robust_mmr_pipeline.model.config_sections import DecoderConfig


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """``[P] -> [P, dim]``: ``[sin(p ω_i), cos(p ω_i)]``, ``ω_i = 10000^{-2i/dim}``."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega
    angles = positions.double()[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_size: int, cls_token: bool = True) -> Tensor:
    """Fixed 2-D sin-cos positions (MAE): ``[(1 +) g*g, dim]``; half the width per axis.

    The CLS row (if any) is zeros. ``dim`` must be divisible by 4.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position width must be divisible by 4, got {dim}")
    coords = torch.arange(grid_size)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    emb = torch.cat(
        [sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1
    )
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)
    return emb.float()


class MIMDecoder(nn.Module):
    """Light MAE decoder: LN + embed, insert mask tokens, fixed positions, timm blocks, pixels."""

    def __init__(
        self, in_dim: int, num_patches: int, patch_dim: int, config: DecoderConfig
    ) -> None:
        super().__init__()
        dim = config.hidden_size
        grid = math.isqrt(num_patches)
        self.num_patches = num_patches
        self.norm_in = nn.LayerNorm(in_dim)  # the read fusion layer is a raw pre-LN residual
        self.embed = nn.Linear(in_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("pos_embed", sincos_2d(dim, grid)[None], persistent=False)
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, mlp_ratio=config.mlp_ratio, qkv_bias=True)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_dim)

    def forward(self, x: Tensor, ids_restore: Tensor) -> Tensor:
        """Reconstruct every patch.

        Args:
            x: ``[B, 1 + K, d_in]`` image stream (CLS + kept patches in keep order).
            ids_restore: long ``[B, N]``, position of each patch in ``[kept..., masked...]``.

        Returns:
            ``[B, N, p * p * C]`` predictions in original patch order.
        """
        x = self.embed(self.norm_in(x))
        b, n_tokens, dim = x.shape
        n_masked = self.num_patches - (n_tokens - 1)
        patches = torch.cat([x[:, 1:], self.mask_token.expand(b, n_masked, -1)], dim=1)
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dim))
        x = torch.cat([x[:, :1], patches], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.pred(self.norm(x))[:, 1:]


class MLMHead(nn.Module):
    """BERT LM head: dense-GELU-LN, then ``W_E^T`` (tied word embeddings) + own bias.

    ``logits = LN(GELU(h W_1 + b_1)) W_E^T + b``, ``W_E`` the ``[V, D_t]`` input embeddings.
    """

    def __init__(self, in_dim: int, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        vocab, width = word_embeddings.weight.shape
        self.dense = nn.Linear(in_dim, width)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(width)
        self.decoder = nn.Linear(width, vocab)
        self.decoder.weight = word_embeddings.weight  # tied: one Parameter, two users

    def forward(self, hidden: Tensor) -> Tensor:
        """``[..., d] -> [..., V]``."""
        return self.decoder(self.norm(self.act(self.dense(hidden))))


class ITMHead(nn.Module):
    """``logits = [t_cls ; v_cls] W + b``: ``[B, 2d] -> [B, 2]`` (class 1 = matched)."""

    def __init__(self, fused_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(fused_dim, 2)

    def forward(self, fused: Tensor) -> Tensor:
        return self.fc(fused)


def summarize_tokens(tokens: Tensor, mask: Tensor | None, mode: str) -> Tensor:
    """``[B, L, d] -> [B, d]``: the first token (``"cls"``) or the mean of the tokens where
    ``mask`` (``[B, L]``, 1 = token; None = all) is set (``"mean"``)."""
    if mode == "cls":
        return tokens[:, 0]
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class Pooler(nn.Module):
    """``tanh(s(x) W + b)``: ``[B, L, d] -> [B, d]``, ``s`` = :func:`summarize_tokens`.

    ``"cls"`` is the M3AE / BERT pooler (first token). ``"mean"`` (masked mean over the
    tokens) is our default for encoders trained from scratch: at initialisation every sample's
    CLS output is nearly the same vector, so heads reading it (ITM, VQA) sit on a plateau until
    attention learns to fill it, while the token mean differs between samples from step 0.
    """

    def __init__(self, dim: int, mode: str = "cls") -> None:
        super().__init__()
        self.mode = mode
        self.dense = nn.Linear(dim, dim)
        self.act = nn.Tanh()

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.act(self.dense(summarize_tokens(tokens, mask, self.mode)))


class ProjectionHead(nn.Module):
    """Linear contrastive projection without bias (CLIP): ``[..., d] -> [..., d_c]``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Linear(hidden, out_dim)
    )


class ConsistencyHead(nn.Module):
    """The own head of a consistency term (BYOL / SimSiam shape), so the term constrains a
    projection of the fused feature, not the fused feature the task heads read.

    ``p(z) = W_2 GELU(LN(W_1 z))``: ``[B, 2d] -> [B, k]`` on both branches;
    ``q(x) = W_4 GELU(LN(W_3 x))``: ``[B, k] -> [B, k]`` on the online (degraded) branch only.
    """

    def __init__(self, dim: int, hidden: int, projection_dim: int) -> None:
        super().__init__()
        self.projector = _mlp(dim, hidden, projection_dim)
        self.predictor = _mlp(projection_dim, hidden, projection_dim)

    def project(self, z: Tensor) -> Tensor:
        return self.projector(z)

    def forward(self, z: Tensor) -> Tensor:
        """Online branch ``q(p(z))``."""
        return self.predictor(self.projector(z))
