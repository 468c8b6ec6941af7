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

    def validate_with(self, parameters: Any) -> None:
        """Before the run (ParameterValidationHooks): the weight files and the checkpoint this
        run starts from exist and are readable, so a bad path stops it before any node."""
        from robust_mmr_pipeline.engine.checkpoint import (
            CheckpointError,
            read_model_meta,
            verify_checkpoint,
        )
        from robust_mmr_pipeline.model import apply_preset
        from robust_mmr_pipeline.model.weights import check_weight_source
        from robust_mmr_pipeline.params import ParameterError

        config = apply_preset(self.preset, self.model, size=self.size)
        for name, part in (("vision", config.vision), ("text", config.text)):
            if part.pretrained_path:
                try:
                    check_weight_source(
                        part.pretrained_path, f"pretrain.model.{name}.pretrained_path"
                    )
                except (FileNotFoundError, ValueError) as exc:
                    raise ParameterError(str(exc)) from None
        if self.init_checkpoint:
            try:
                read_model_meta(verify_checkpoint(self.init_checkpoint))
            except CheckpointError as exc:
                raise ParameterError(
                    f"pretrain.init_checkpoint = {self.init_checkpoint} is no usable checkpoint: "
                    f"{exc} Fix: point pretrain.init_checkpoint at a checkpoint folder written "
                    "by this project (with model.json and model.safetensors), or remove it."
                ) from None
