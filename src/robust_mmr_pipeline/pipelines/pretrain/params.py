"""Typed parameters of the pretrain pipeline (``params:pretrain``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class TokenizerParams:
    vocab_size: int = 4096
    min_frequency: int = 2


@dataclass
class ImageCacheParams:
    cache_dir: str = "data/04_feature/image_cache"
    resize_mode: Literal["pad", "crop", "stretch"] = "pad"
    workers: int = 0  # >1: decode with a process pool


@dataclass
class PretrainParams:
    """One pre-training run.

    ``preset`` (mmr | mpma | robust_mmr | robust_mmr_mpma) and ``size`` (small | base) pick the
    model; ``model`` overrides single fields of ModelConfig (e.g. objective weights);
    ``trainer`` holds TrainerConfig fields. ``init_checkpoint`` is a local checkpoint folder
    whose weights initialise the model (users with pretrained weights; never downloaded).
    """

    preset: str = "robust_mmr"
    size: str = "small"
    protocol: str = "cross_domain"
    text_kinds: list[str] = field(default_factory=lambda: ["report", "caption"])
    model: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    image_cache: ImageCacheParams = field(default_factory=ImageCacheParams)
    output_dir: str = "data/06_models/pretrain"
    init_checkpoint: str | None = None
    register_model: bool = True

    def __post_init__(self) -> None:
        # Building the configs validates every field name and value before the run starts.
        from robust_mmr_pipeline.engine import TrainerConfig
        from robust_mmr_pipeline.model import apply_preset

        apply_preset(self.preset, self.model, size=self.size)
        trainer = TrainerConfig.from_dict({**self.trainer, "output_dir": self.output_dir})
        # Keep the user's keys, with the values as the trainer reads them (e.g. a YAML `no`).
        self.trainer = {key: trainer.to_dict()[key] for key in self.trainer}

    @property
    def run_dir(self) -> str:
        return f"{self.output_dir}/{self.preset}"
