"""M3AE co-attention fusion: two streams, each layer attends to itself then to the other.

Embedding (both streams, width d):

    t_0 = T W_t + type[0]            [B, L, d]       T = text encoder output
    v_0 = V W_v + type[1]            [B, 1+K, d]     V = image encoder output
    (MA-CMF)  t_0, v_0 = Mem(t_0), Mem(v_0)

Layer i = 1..n (pre-LN; both streams read the other's layer i-1 output):

    t_i = t' + FFN(LN(t')),  t' = t'' + CrossAttn(LN(t''), LN(v_{i-1})),
                             t'' = t_{i-1} + SelfAttn(LN(t_{i-1}))
    v_i  likewise with the roles swapped

Attention is ``F.scaled_dot_product_attention``; text padding is a boolean key mask in both the
text self-attention and the image-to-text cross-attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_mmr_pipeline.model.config_sections import FusionConfig, MemoryConfig
from robust_mmr_pipeline.model.memory import CrossModalMemory

TEXT_TYPE, IMAGE_TYPE = 0, 1


class Attention(nn.Module):
    """Multi-head attention ``softmax(Q K^T / sqrt(d_h) + mask) V`` via SDPA."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: Tensor, context: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """``x`` ``[B, Lq, d]`` attends to ``context`` ``[B, Lk, d]``.

        ``key_mask`` bool ``[B, Lk]``, True = attend (every row needs one True key).
        """
        b, lq, d = x.shape
        h = self.num_heads
        q = self.q(x).view(b, lq, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, lq, d))


class CoAttentionLayer(nn.Module):
    """Pre-LN self-attention -> cross-attention to the other stream -> FFN."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads, dropout)
        self.norm_cross = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, num_heads, dropout)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        other: Tensor,
        x_mask: Tensor | None = None,
        other_mask: Tensor | None = None,
    ) -> Tensor:
        """``x`` ``[B, Lx, d]``, ``other`` ``[B, Lo, d]`` (previous layer) -> ``[B, Lx, d]``."""
        h = self.norm_self(x)
        x = x + self.drop(self.self_attn(h, h, x_mask))
        x = x + self.drop(self.cross_attn(self.norm_cross(x), self.norm_context(other), other_mask))
        return x + self.drop(self.ffn(self.norm_ffn(x)))


@dataclass
class FusionOutput:
    """Final (LayerNorm-ed) streams and, if asked, the image stream after one layer."""

    image: Tensor  # [B, 1+K, d]
    text: Tensor  # [B, L, d]
    image_at_layer: Tensor | None = None  # [B, 1+K, d], input of the MIM decoder


class CoAttentionFusion(nn.Module):
    """Projection + modality-type embeddings (+ MA-CMF memory) + ``n`` co-attention layers."""

    def __init__(
        self,
        text_width: int,
        image_width: int,
        config: FusionConfig,
        memory: MemoryConfig | None = None,
    ) -> None:
        super().__init__()
        d = config.hidden_size
        self.text_proj = nn.Linear(text_width, d)
        self.image_proj = nn.Linear(image_width, d)
        self.type_embed = nn.Embedding(2, d)
        self.memory = CrossModalMemory(d, memory) if memory is not None and memory.enabled else None
        layer_args = (d, config.num_heads, config.mlp_ratio, config.dropout)
        self.text_layers = nn.ModuleList(
            CoAttentionLayer(*layer_args) for _ in range(config.num_layers)
        )
        self.image_layers = nn.ModuleList(
            CoAttentionLayer(*layer_args) for _ in range(config.num_layers)
        )
        self.text_norm = nn.LayerNorm(d)
        self.image_norm = nn.LayerNorm(d)

    def embed(self, image: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder outputs -> fusion inputs ``v_0 [B, 1+K, d]``, ``t_0 [B, L, d]``."""
        return self.embed_image(image), self.embed_text(text)

    def embed_image(self, image: Tensor) -> Tensor:
        """Vision encoder output ``[B, 1+K, D_v]`` -> ``v_0 [B, 1+K, d]`` (per stream: the two
        halves of :meth:`embed` are independent, so retrieval embeds each item once)."""
        v = self.image_proj(image) + self.type_embed.weight[IMAGE_TYPE]
        return self.memory(v) if self.memory is not None else v

    def embed_text(self, text: Tensor) -> Tensor:
        """Text encoder output ``[B, L, D_t]`` -> ``t_0 [B, L, d]``."""
        t = self.text_proj(text) + self.type_embed.weight[TEXT_TYPE]
        return self.memory(t) if self.memory is not None else t

    def forward(
        self,
        image: Tensor,
        text: Tensor,
        text_mask: Tensor,
        return_image_layer: int | None = None,
    ) -> FusionOutput:
        """Run the co-attention layers on embedded streams (see :meth:`embed`).

        Args:
            image: ``v_0`` ``[B, 1+K, d]``.
            text: ``t_0`` ``[B, L, d]``.
            text_mask: ``[B, L]`` attention mask (1 / True = token).
            return_image_layer: also return ``v_i`` for this ``i`` (0 = input).
        """
        key_mask = text_mask.bool()
        v, t = image, text
        picked = v if return_image_layer == 0 else None
        for i, (t_layer, v_layer) in enumerate(
            zip(self.text_layers, self.image_layers, strict=True), start=1
        ):
            t, v = t_layer(t, v, key_mask, None), v_layer(v, t, None, key_mask)
            if i == return_image_layer:
                picked = v
        return FusionOutput(self.image_norm(v), self.text_norm(t), picked)


def fused_feature(text_pooled: Tensor, image_pooled: Tensor) -> Tensor:
    """M3AE's fused representation ``[t_pool ; v_pool]``: ``[B, 2d]``."""
    return torch.cat([text_pooled, image_pooled], dim=-1)
