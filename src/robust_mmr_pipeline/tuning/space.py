"""The search space: sample one trial's Robust-MMR knobs and turn them into model overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from robust_mmr_pipeline.tuning.config import FloatRange, SearchSpace

VIEW_NAMES = ("image_only", "text_only", "both")


def _float(trial: optuna.Trial, name: str, bounds: FloatRange) -> float:
    return trial.suggest_float(name, bounds.low, bounds.high, log=bounds.log)


def sample(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Suggest every dimension; returns the raw Optuna parameters (names as in the study)."""
    values: dict[str, Any] = {
        "domain_consistency_weight": _float(
            trial, "domain_consistency_weight", space.domain_consistency_weight
        ),
        "modality_resilience_weight": _float(
            trial, "modality_resilience_weight", space.modality_resilience_weight
        ),
    }
    for view in VIEW_NAMES:
        values[f"view_weight_{view}"] = _float(trial, f"view_weight_{view}", space.view_weight)
    low = space.severity_min
    values["severity_min"] = trial.suggest_int("severity_min", low.low, low.high)
    high = space.severity_max
    values["severity_max"] = trial.suggest_int(
        "severity_max",
        max(high.low, values["severity_min"]),
        max(high.high, values["severity_min"]),
    )
    values["perturbed_image_mask_ratio"] = _float(
        trial, "perturbed_image_mask_ratio", space.perturbed_image_mask_ratio
    )
    values["degraded_weight"] = _float(trial, "degraded_weight", space.degraded_weight)
    return values


def view_probs(values: Mapping[str, Any]) -> list[float]:
    """The three raw view weights normalised to probabilities (uniform when all are 0)."""
    raw = [float(values[f"view_weight_{view}"]) for view in VIEW_NAMES]
    total = sum(raw)
    if total <= 0:
        return [1 / 3, 1 / 3, 1 / 3]
    probs = [round(w / total, 6) for w in raw]
    probs[-1] = round(1.0 - probs[0] - probs[1], 6)  # sums to 1 exactly in the config check
    return probs


def model_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """``pretrain.model`` overrides (objectives + robust) for the sampled values."""
    return {
        "objectives": {
            "domain_consistency_weight": float(values["domain_consistency_weight"]),
            "modality_resilience_weight": float(values["modality_resilience_weight"]),
        },
        "robust": {
            "view_probs": view_probs(values),
            "severity_min": int(values["severity_min"]),
            "severity_max": int(values["severity_max"]),
            "perturbed_image_mask_ratio": float(values["perturbed_image_mask_ratio"]),
            "degraded_weight": float(values["degraded_weight"]),
        },
    }
