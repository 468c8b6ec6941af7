"""Downstream classifier head (M3AE's VQA / classification head).

    fused [B, d]  ->  Linear(d, h)  ->  LayerNorm(h)  ->  GELU  ->  (Dropout)  ->  Linear(h, C)

``d`` is the backbone's fused width (``2 × fusion.hidden_size``: ``[t_pool ; v_pool]``),
``h = d`` by default (M3AE), ``C`` the number of classes (answers of the TRAIN vocabulary for
VQA, labels for classification). Weights: truncated normal (std 0.02), zero biases, LayerNorm
ones / zeros (the BERT / M3AE convention for new layers).
"""

from __future__ import annotations

from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """``[B, d] -> [B, C]`` logits: Linear–LayerNorm–GELU–Linear (M3AE)."""

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_dim < 1 or num_classes < 1:
            raise ValueError(
                f"ClassifierHead needs in_dim >= 1 and num_classes >= 1, got {in_dim}, "
                f"{num_classes}"
            )
        hidden = in_dim if hidden_dim is None else int(hidden_dim)
        self.in_dim = int(in_dim)
        self.num_classes = int(num_classes)
        self.hidden_dim = hidden
        self.dropout_p = float(dropout)
        self.dense = nn.Linear(in_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Truncated-normal linear weights (std 0.02), zero biases, unit LayerNorm."""
        for linear in (self.dense, self.classifier):
            nn.init.trunc_normal_(linear.weight, std=0.02)
            nn.init.zeros_(linear.bias)
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, fused: Tensor) -> Tensor:
        """``fused`` ``[B, d]`` -> logits ``[B, C]``."""
        hidden = self.act(self.norm(self.dense(fused)))
        return self.classifier(self.dropout(hidden))
