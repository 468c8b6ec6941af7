"""MA-CMF: memory-augmented cross-modal fusion (MPMA; the formulation is ours).

A learned memory ``M ∈ R^{S×d}`` shared by both streams is read with multi-head attention
restricted to each query's top-k slots:

    Q = X W_q,  K = M W_k,  V = M W_v                  (split into h heads of width d_h)
    a = Q K^T / sqrt(d_h)                               [B, h, L, S]
    a' = a on the top-k slots of each query, -inf elsewhere
    response = concat_h(softmax(a') V) W_o              [B, L, d]
    X' = LN(X + response)

Applied to the visual and the text stream before co-attention, so one slot bank stores
patterns of both modalities (report reconstruction can draw on visual memory).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_mmr_pipeline.model.config_sections import MemoryConfig


class CrossModalMemory(nn.Module):
    """Top-k multi-head read of a learned slot memory, residual + LayerNorm."""

    def __init__(self, dim: int, config: MemoryConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = dim // config.num_heads
        self.top_k = config.top_k
        self.slots = nn.Parameter(torch.randn(config.num_slots, dim) * dim**-0.5)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``[B, L, d]`` -> ``LN(x + response)`` ``[B, L, d]``."""
        b, n, d = x.shape
        h, dh = self.num_heads, self.head_dim
        q = self.q(x).view(b, n, h, dh).transpose(1, 2)  # [B, h, L, dh]
        k, v = self.kv(self.slots).view(-1, 2, h, dh).permute(1, 2, 0, 3)  # [h, S, dh] each
        scores = torch.einsum("bhld,hsd->bhls", q, k) * dh**-0.5  # [B, h, L, S]
        top, idx = scores.topk(self.top_k, dim=-1)
        # Dense softmax over a -inf-filled copy keeps the matmul below a plain [S, dh] product.
        sparse = torch.full_like(scores, float("-inf")).scatter(-1, idx, top)
        attn = F.softmax(sparse, dim=-1)
        response = torch.einsum("bhls,hsd->bhld", attn, v)
        response = self.proj(response.transpose(1, 2).reshape(b, n, d))
        return self.norm(x + response)
