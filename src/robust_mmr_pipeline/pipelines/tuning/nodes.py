"""Tuning node: a thin wrapper over ``robust_mmr_pipeline.tuning.tune``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.pretrain.params import PretrainParams
from robust_mmr_pipeline.tuning.config import TuningParams


def tune_robust_weights(
    split_pairs: pd.DataFrame,
    split_vqa: pd.DataFrame,
    image_cache: dict[str, Any],
    tokenizer: Any,
    pretrain_parameters: dict[str, Any],
    parameters: dict[str, Any],
) -> tuple[dict[str, Any], str, pd.DataFrame, Any, Any, Any]:
    """Run this worker's share of the study; the overlay file goes to ``tuning.overlay_path``.

    Returns the summary (best trial, overlay, ``--params``), the ``--params`` text, the trials
    table and the three study plots.
    """
    # Optuna and torch load only when the study runs (Kedro-Viz and `kedro registry` stay fast).
    from robust_mmr_pipeline.tuning.runner import params_text, tune

    params = parse(TuningParams, parameters, "tuning")
    pretrain = parse(PretrainParams, pretrain_parameters, "pretrain")
    summary, trials, figures = tune(
        split_pairs, split_vqa, image_cache["cache_dir"], tokenizer, pretrain, params
    )
    return (
        summary,
        params_text(summary),
        trials,
        figures["optimization_history"],
        figures["param_importances"],
        figures["parallel_coordinate"],
    )
