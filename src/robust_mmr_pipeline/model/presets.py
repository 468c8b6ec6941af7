"""Named model presets and sizes, and :func:`apply_preset`: defaults -> size -> preset -> overrides.

Presets (objectives switched on; every other objective off):

=================  ==============================================================
``mmr``            MIM + MLM + ITM in one joint masked pass (M3AE objectives)
``mpma``           ``mmr`` + GLA global / local + MA-CMF memory
``robust_mmr``     ``mmr`` + perturbation-aware masking + domain consistency +
                   modality resilience
``robust_mmr_mpma`` both of the above
=================  ==============================================================
"""

from __future__ import annotations

from typing import Any

from robust_mmr_pipeline.model.config import ModelConfig
from robust_mmr_pipeline.model.config_sections import ConfigError
from robust_mmr_pipeline.typed_config import deep_merge

SIZES: dict[str, dict[str, Any]] = {
    # CPU: ~1-2 min of pre-training on 2 cores already moves every loss.
    "small": {},
    # ViT-B/16 + BERT-base + 6 co-attention layers (M3AE sizes) for GPUs.
    "base": {
        "vision": {"image_size": 288, "patch_size": 16, "embed_dim": 768, "depth": 12,
                   "num_heads": 12, "drop_path_rate": 0.1},
        "text": {"hidden_size": 768, "num_layers": 12, "num_heads": 12,
                 "intermediate_size": 3072, "max_length": 64, "dropout": 0.1},
        "fusion": {"hidden_size": 768, "num_layers": 6, "num_heads": 12, "dropout": 0.1},
        "decoder": {"hidden_size": 384, "depth": 5, "num_heads": 6},
        "memory": {"num_slots": 2048, "top_k": 32, "num_heads": 12},
        "robust": {"predictor_hidden": 1024, "projection_dim": 256},
    },
}  # fmt: skip

PRESETS: dict[str, dict[str, Any]] = {
    "mmr": {"objectives": {"mim": True, "mlm": True, "itm": True}},
    "mpma": {
        "objectives": {"mim": True, "mlm": True, "itm": True, "gla_global": True,
                       "gla_local": True},
        "memory": {"enabled": True},
    },
    "robust_mmr": {
        "objectives": {"mim": True, "mlm": True, "itm": True, "domain_consistency": True,
                       "modality_resilience": True},
        "robust": {"perturbation_aware_masking": True},
    },
    "robust_mmr_mpma": {
        "objectives": {"mim": True, "mlm": True, "itm": True, "gla_global": True,
                       "gla_local": True, "domain_consistency": True,
                       "modality_resilience": True},
        "memory": {"enabled": True},
        "robust": {"perturbation_aware_masking": True},
    },
}  # fmt: skip


def apply_preset(
    name: str, overrides: dict[str, Any] | None = None, size: str = "small", section: str = "model"
) -> ModelConfig:
    """Build a validated :class:`ModelConfig`: defaults -> size -> preset -> overrides.

    >>> apply_preset("robust_mmr", {"objectives": {"domain_consistency_weight": 0.3}}).preset
    'robust_mmr'
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    data = ModelConfig().to_dict()
    data = deep_merge(data, SIZES[size])
    data = deep_merge(data, PRESETS[name])
    data["preset"] = name
    return ModelConfig.from_dict(deep_merge(data, overrides or {}), section)
