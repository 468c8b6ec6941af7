"""Tiny model configs and synthetic batches for the model tests (fast on 2 CPU cores)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from robust_mmr_pipeline.model import ModelConfig, apply_preset
from robust_mmr_pipeline.model.presets import deep_merge

TINY: dict[str, Any] = {
    "vision": {"image_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "text": {"vocab_size": 64, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
             "intermediate_size": 64, "max_length": 12},
    "fusion": {"hidden_size": 32, "num_layers": 2, "num_heads": 2},
    "decoder": {"hidden_size": 16, "depth": 1, "num_heads": 2},
    "memory": {"num_slots": 16, "top_k": 4, "num_heads": 2},
    "objectives": {"contrastive_dim": 16},
    "robust": {"predictor_hidden": 32},
}  # fmt: skip


def tiny_config(preset: str = "mmr", overrides: dict[str, Any] | None = None) -> ModelConfig:
    """A preset at test size, with extra ``overrides`` merged last."""
    return apply_preset(preset, deep_merge(TINY, overrides or {}))


def make_batch(config: ModelConfig, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random images in [0, 1] and texts ``[CLS] w… [SEP] [PAD]…`` of varying length."""
    gen = torch.Generator().manual_seed(seed)
    v, t = config.vision, config.text
    length = t.max_length
    lens = torch.randint(4, length + 1, (batch_size,), generator=gen)
    ids = torch.randint(5, t.vocab_size, (batch_size, length), generator=gen)
    pos = torch.arange(length)[None]
    attn = (pos < lens[:, None]).long()
    ids[:, 0] = t.cls_token_id
    ids = torch.where(pos == lens[:, None] - 1, torch.full_like(ids, t.sep_token_id), ids)
    ids = torch.where(attn.bool(), ids, torch.full_like(ids, t.pad_token_id))
    special = ((pos == 0) | (pos >= lens[:, None] - 1)).long()
    images = torch.rand(batch_size, v.in_chans, v.image_size, v.image_size, generator=gen)
    # what a TextDegrader collator adds: a style-shifted, re-tokenised text (other words in
    # the same layout here; tests/engine covers the real degrader's other lengths)
    regular = attn.bool() & ~special.bool()
    degraded = torch.where(regular, (ids + 1 - 5) % (t.vocab_size - 5) + 5, ids)
    return {
        "pixel_values": images,
        "input_ids": ids,
        "attention_mask": attn,
        "special_tokens_mask": special,
        "domain_ids": torch.arange(batch_size) % 2,
        "degraded_input_ids": degraded,
        "degraded_attention_mask": attn.clone(),
        "degraded_special_tokens_mask": special.clone(),
        "degraded_severity": torch.randint(1, 6, (batch_size,), generator=gen),
    }


@pytest.fixture
def config_factory() -> Callable[..., ModelConfig]:
    return tiny_config


@pytest.fixture
def batch_factory() -> Callable[..., dict[str, torch.Tensor]]:
    return make_batch


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    """Tiny models run fastest single-threaded, and the CPU cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
