"""Typed parameters of the pretrain pipeline (``params:pretrain``)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from robust_mmr_pipeline.typed_config import config, lazy_overrides

# Partial overrides of the model / trainer configs, typed by them (imported on first use: the
# model and engine packages import torch, which listing the pipelines must not).
ModelOverrides = lazy_overrides("robust_mmr_pipeline.model.config:ModelConfig")
TrainerOverrides = lazy_overrides("robust_mmr_pipeline.engine.config:TrainerConfig")


@config
class TokenizerParams:
    vocab_size: int = 4096
    min_frequency: int = 2


@config
class ImageCacheParams:
    cache_dir: str = "data/04_feature/image_cache"
    resize_mode: Literal["pad", "crop", "stretch"] = "pad"
    workers: int = 0  # >1: decode with a process pool


@config
class WatchParams:
    """Pre-training watched on validation (recipes/pretrain_watch.py): every ``every`` steps
    (0: off) and at the end, the held-out losses on up to ``max_val_pairs`` val pairs of the
    pre-training protocol and a frozen-feature probe of ``probe_task`` (fitted on
    ``probe_train_fraction`` of ``probe_protocol``'s train rows, by image, scored on its val
    rows). ``select_best``: fine-tuning gets the checkpoint with the best probe accuracy."""

    every: int = 0
    probe_task: Literal["vqa", "classification"] | None = "vqa"
    probe_protocol: str = "in_domain"
    probe_train_fraction: float = 0.1
    max_val_pairs: int = 256
    select_best: bool = True

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"watch.every must be >= 0 (0: off), got {self.every}")
        if not 0.0 < self.probe_train_fraction <= 1.0:
            raise ValueError(
                f"watch.probe_train_fraction must lie in (0, 1], got {self.probe_train_fraction}"
            )


@config
class PretrainParams:
    """One pre-training run.

    ``preset`` (mmr | mpma | robust_mmr | robust_mmr_mpma) and ``size`` (small | base) pick the
    model; ``model`` overrides single fields of ModelConfig (e.g. objective weights);
    ``trainer`` holds TrainerConfig fields. ``init_checkpoint`` is a local checkpoint folder
    whose weights initialise the model (users with pretrained weights; never downloaded).
    ``watch``: validation during pre-training and the choice of the checkpoint handed on.
    """

    preset: str = "robust_mmr"
    size: str = "small"
    protocol: str = "pretrain"
    text_kinds: list[str] = field(default_factory=lambda: ["report", "caption"])
    model: ModelOverrides = field(default_factory=dict)
    trainer: TrainerOverrides = field(default_factory=dict)
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    image_cache: ImageCacheParams = field(default_factory=ImageCacheParams)
    output_dir: str = "data/06_models/pretrain"
    init_checkpoint: str | None = None
    register_model: bool = True
    watch: WatchParams = field(default_factory=WatchParams)

    def __post_init__(self) -> None:
        # Keys and types are checked by the field types; building the configs checks how the
        # values go together (e.g. widths divisible by the number of heads) before the run.
        from robust_mmr_pipeline.engine import TrainerConfig
        from robust_mmr_pipeline.model import apply_preset

        apply_preset(self.preset, self.model, size=self.size, section="pretrain.model")
        TrainerConfig.from_dict({**self.trainer, "output_dir": self.output_dir}, "pretrain.trainer")

    @property
    def run_dir(self) -> str:
        return f"{self.output_dir}/{self.preset}"

    def model_config(self) -> Any:
        """The ModelConfig of ``preset`` / ``size`` / ``model`` (vocabulary not yet sized)."""
        from robust_mmr_pipeline.model import apply_preset

        return apply_preset(self.preset, self.model, size=self.size)

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
