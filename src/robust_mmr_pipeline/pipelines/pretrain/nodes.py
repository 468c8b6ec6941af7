"""Pre-training nodes: thin wrappers over ``robust_mmr_pipeline.recipes.pretrain``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.pretrain.params import PretrainParams
from robust_mmr_pipeline.recipes import pretrain as recipe


def fit_tokenizer(split_pairs: pd.DataFrame, parameters: dict[str, Any]) -> Any:
    """WordPiece tokenizer trained on the pre-training (train split) texts; a run that resumes
    (or initialises from) a checkpoint gets the tokenizer stored with it instead."""
    params = parse(PretrainParams, parameters, "pretrain")
    pairs = recipe.select_training_pairs(split_pairs, params.protocol, params.text_kinds)
    config = recipe.build_model_config(params.preset, params.size, params.model, None)
    return recipe.fit_tokenizer(
        pairs["text"].tolist(),
        vocab_size=params.tokenizer.vocab_size,
        min_frequency=params.tokenizer.min_frequency,
        max_length=config.text.max_length,
        checkpoint=recipe.continued_checkpoint(
            params.run_dir, params.trainer, params.init_checkpoint
        ),
    )


def build_image_cache(
    images: pd.DataFrame, image_roots: dict[str, str], parameters: dict[str, Any]
) -> dict[str, Any]:
    """Decode every ingested image once, at the model's resolution, into the memory-mapped cache."""
    params = parse(PretrainParams, parameters, "pretrain")
    vision = recipe.build_model_config(params.preset, params.size, params.model, None).vision
    return recipe.build_image_cache(
        images,
        image_roots,
        cache_dir=params.image_cache.cache_dir,
        image_size=vision.image_size,
        channels=vision.in_chans,
        resize_mode=params.image_cache.resize_mode,
        workers=params.image_cache.workers,
    )


def pretrain_model(
    split_pairs: pd.DataFrame,
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    image_cache: dict[str, Any],
    tokenizer: Any,
    parameters: dict[str, Any],
) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    """Train the configured preset, watched on validation (``pretrain.watch``: held-out
    losses and a frozen-feature probe on the labeled val rows); returns the checkpoint
    manifest (the checkpoint chosen on the probe), loss history and plot."""
    params = parse(PretrainParams, parameters, "pretrain")
    pairs = recipe.select_training_pairs(split_pairs, params.protocol, params.text_kinds)
    config = recipe.build_model_config(params.preset, params.size, params.model, tokenizer)
    watch = recipe.build_watch(
        params, split_pairs, {"vqa": split_vqa, "classification": split_classification},
        image_cache["cache_dir"], tokenizer, config,
    )  # fmt: skip
    summary, losses = recipe.run_pretraining(
        pairs,
        image_cache["cache_dir"],
        tokenizer,
        config,
        params.trainer,
        params.run_dir,
        init_checkpoint=params.init_checkpoint,
        register_as=f"robust_mmr_pipeline-{params.preset}" if params.register_model else None,
        watch=watch,
        watch_every=params.watch.every,
        select_best=params.watch.select_best,
    )
    history = (summary.watch or {}).get("history")
    figure = recipe.loss_figure(losses, f"pre-training losses ({params.preset})", history)
    return summary.as_dict(), pd.DataFrame(losses), figure


def scratch_backbone(tokenizer: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """The backbone manifest of the no-pretraining baseline: the preset's architecture (sized
    to the tokenizer), no weights; the finetune node builds it with random weights."""
    params = parse(PretrainParams, parameters, "pretrain")
    config = recipe.build_model_config(params.preset, params.size, params.model, tokenizer)
    return recipe.scratch_manifest(config)
