"""Tiny models, datasets and a tokenizer for the engine tests (also imported by the DDP script).

Kept dependency-light and fast: every model has a few hundred parameters.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from robust_mmr_pipeline.engine import register_model_class


@dataclass
class TinyConfig:
    """Config of :class:`TinyModel` (JSON-safe)."""

    in_dim: int = 4
    hidden: int = 8
    out_dim: int = 3
    dropout: float = 0.0
    noise: float = 0.0
    tie: bool = False
    nan_term_from_progress: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TinyConfig:
        return cls(**data)


@dataclass
class TinyOutput:
    """What the engine reads: a scalar loss and detached per-objective terms."""

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    prediction: torch.Tensor


@register_model_class
class TinyModel(nn.Module):
    """Regression MLP with an embedding, a norm and optional randomness from every RNG.

    ``noise`` > 0 draws from torch, numpy and Python ``random`` each forward (to test that all
    three streams are checkpointed); ``nan_term_from_progress`` makes the ``aux`` term NaN once
    ``progress`` reaches it. ``tie`` ties ``out.weight`` to ``embed.weight``.
    """

    config_class = TinyConfig

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.out_dim, config.hidden)
        self.encoder = nn.Linear(config.in_dim, config.hidden)
        self.norm = nn.LayerNorm(config.hidden)
        self.head = nn.Linear(config.hidden, config.out_dim)
        self.out = nn.Linear(config.hidden, config.out_dim, bias=False)
        if config.tie:
            self.out.weight = self.embed.weight
        self.drop = nn.Dropout(config.dropout)

    def forward(self, batch: dict[str, torch.Tensor], progress: float = 1.0) -> TinyOutput:
        hidden = self.drop(self.norm(torch.tanh(self.encoder(batch["x"]))))
        if self.config.noise > 0:
            jitter = float(np.random.rand()) + random.random()
            hidden = hidden + self.config.noise * (torch.randn_like(hidden) + jitter)
        prediction = self.head(hidden) + 0.1 * self.out(hidden)
        mse = (prediction - batch["y"]).pow(2).mean()
        aux = 0.01 * (1.0 + progress) * hidden.pow(2).mean()
        if progress >= self.config.nan_term_from_progress:
            aux = aux * float("nan")
        loss = mse + aux
        return TinyOutput(
            loss=loss,
            losses={"mse": mse.detach(), "aux": aux.detach()},
            prediction=prediction.detach(),
        )

    def flops_per_sample(self) -> float:
        """Rough forward+backward FLOPs per sample."""
        c = self.config
        return 6.0 * (c.in_dim * c.hidden + 2 * c.hidden * c.out_dim)


@register_model_class
class GroupedModel(TinyModel):
    """TinyModel that defines its own parameter groups (head x head_lr_mult, no-decay set)."""

    def param_groups(self, weight_decay: float, head_lr_mult: float) -> list[dict[str, Any]]:
        head = [self.head.weight, self.out.weight]
        no_decay = [self.head.bias, self.norm.weight, self.norm.bias, self.embed.weight]
        backbone = [self.encoder.weight, self.encoder.bias]
        return [
            {"params": backbone, "weight_decay": weight_decay, "lr_mult": 1.0, "name": "bb"},
            {"params": head, "weight_decay": weight_decay, "lr_mult": head_lr_mult, "name": "hd"},
            {"params": no_decay, "weight_decay": 0.0, "lr_mult": head_lr_mult, "name": "nd"},
        ]


class RegressionDataset(Dataset):
    """``n`` fixed random (x, y) pairs; items are dicts so the default collate stacks them."""

    def __init__(self, n: int = 24, in_dim: int = 4, out_dim: int = 3, seed: int = 123) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, in_dim, generator=generator)
        self.y = torch.randn(n, out_dim, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[index], "y": self.y[index], "index": torch.tensor(index)}


def make_model(seed: int = 0, **overrides: Any) -> TinyModel:
    """A TinyModel initialised deterministically."""
    torch.manual_seed(seed)
    return TinyModel(TinyConfig(**overrides))


RADIOLOGY_WORDS = ("no", "acute", "findings", "chest", "ct", "left", "lung", "opacity", "normal")


def make_tokenizer(words: tuple[str, ...] = (*RADIOLOGY_WORDS, "mri")) -> Any:
    """A WordLevel fast tokenizer over a tiny radiology vocabulary, wrapped for transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: index for index, token in enumerate([*specials, *words])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
