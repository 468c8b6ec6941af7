"""Typed, JSON-safe configuration of the MMR model family.

One dataclass per component, nested in :class:`ModelConfig`. ``to_dict()`` gives plain JSON
types (tuples become lists), ``from_dict()`` rebuilds and validates (a typed config: unknown keys
are errors, so a typo in ``conf/`` fails loudly instead of silently using a default).

The sections live in :mod:`.config_sections`; named presets and sizes in :mod:`.presets`
(resolution order of :func:`~robust_mmr_pipeline.model.presets.apply_preset`: dataclass defaults
-> ``SIZES[size]`` -> ``PRESETS[name]`` -> ``overrides``, each a nested dict merged into the
previous one).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any

from robust_mmr_pipeline.model.config_sections import (
    OBJECTIVES,
    ConfigError,
    DecoderConfig,
    FusionConfig,
    MemoryConfig,
    ObjectivesConfig,
    RobustConfig,
    TextConfig,
    VisionConfig,
)
from robust_mmr_pipeline.typed_config import config, parse

_FIX = "Fix: correct it (the fields are in robust_mmr_pipeline/model/config_sections.py)."


@config
class ModelConfig:
    """The whole model. ``m3ae_style`` switches to M3AE's three forward passes per step."""

    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    objectives: ObjectivesConfig = field(default_factory=ObjectivesConfig)
    robust: RobustConfig = field(default_factory=RobustConfig)
    m3ae_style: bool = False
    preset: str = "custom"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def decoder_read_layer(self) -> int:
        read = self.decoder.read_layer
        return self.fusion.num_layers // 2 if read is None else read

    @property
    def needs_degraded_pass(self) -> bool:
        """Whether a step runs the perturbed / modality-dropped pass."""
        obj = self.objectives
        return (
            self.robust.perturbation_aware_masking
            or obj.domain_consistency
            or obj.modality_resilience
        )

    @property
    def needs_perturbed_views(self) -> bool:
        return self.robust.perturbation_aware_masking or self.objectives.domain_consistency

    # --------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise :class:`ConfigError` listing every invalid field."""
        errors: list[str] = []

        def need(ok: bool, message: str) -> None:
            if not ok:
                errors.append(message)

        v, t, f, d, m, o, r = (
            self.vision,
            self.text,
            self.fusion,
            self.decoder,
            self.memory,
            self.objectives,
            self.robust,
        )
        for name, value in [
            ("vision.image_size", v.image_size),
            ("vision.patch_size", v.patch_size),
            ("vision.in_chans", v.in_chans),
            ("vision.embed_dim", v.embed_dim),
            ("vision.depth", v.depth),
            ("vision.num_heads", v.num_heads),
            ("text.vocab_size", t.vocab_size),
            ("text.hidden_size", t.hidden_size),
            ("text.num_layers", t.num_layers),
            ("text.num_heads", t.num_heads),
            ("text.intermediate_size", t.intermediate_size),
            ("text.max_length", t.max_length),
            ("fusion.hidden_size", f.hidden_size),
            ("fusion.num_layers", f.num_layers),
            ("fusion.num_heads", f.num_heads),
            ("decoder.hidden_size", d.hidden_size),
            ("decoder.depth", d.depth),
            ("decoder.num_heads", d.num_heads),
            ("memory.num_slots", m.num_slots),
            ("memory.top_k", m.top_k),
            ("memory.num_heads", m.num_heads),
            ("objectives.contrastive_dim", o.contrastive_dim),
            ("robust.predictor_hidden", r.predictor_hidden),
            ("robust.projection_dim", r.projection_dim),
        ]:
            need(
                isinstance(value, int) and value > 0,
                f"{name} must be a positive int, got {value!r}",
            )
        if errors:
            raise ConfigError("invalid model config: " + "; ".join(errors))

        need(
            v.image_size % v.patch_size == 0,
            f"vision.image_size ({v.image_size}) must be divisible by vision.patch_size "
            f"({v.patch_size})",
        )
        for prefix, dim, heads in [
            ("vision", v.embed_dim, v.num_heads),
            ("text", t.hidden_size, t.num_heads),
            ("fusion", f.hidden_size, f.num_heads),
            ("decoder", d.hidden_size, d.num_heads),
            ("memory", f.hidden_size, m.num_heads),
        ]:
            need(
                dim % heads == 0,
                f"{prefix}: width {dim} must be divisible by num_heads {heads}",
            )
        need(
            d.hidden_size % 4 == 0,
            f"decoder.hidden_size ({d.hidden_size}) must be divisible by 4 (2-D sin-cos positions)",
        )
        need(
            len(v.pixel_mean) == v.in_chans and len(v.pixel_std) == v.in_chans,
            f"vision.pixel_mean / pixel_std need one value per channel ({v.in_chans})",
        )
        need(all(s > 0 for s in v.pixel_std), "vision.pixel_std values must be > 0")
        need(t.arch in ("bert", "roberta"), f"text.arch: 'bert' or 'roberta', got {t.arch!r}")
        need(f.pooling in ("cls", "mean"), f"fusion.pooling: 'cls' or 'mean', got {f.pooling!r}")
        need(
            len(set(t.special_token_ids)) == 5,
            f"text special token ids must be distinct, got {t.special_token_ids}",
        )
        need(
            max(t.special_token_ids) + 1 < t.vocab_size,
            f"text.vocab_size ({t.vocab_size}) must exceed the special token ids",
        )
        need(t.max_length >= 3, "text.max_length must be >= 3 ([CLS] token [SEP])")
        need(
            0 <= self.decoder_read_layer <= f.num_layers,
            f"decoder.read_layer ({d.read_layer}) must be in [0, fusion.num_layers="
            f"{f.num_layers}] or null",
        )
        need(m.top_k <= m.num_slots, f"memory.top_k ({m.top_k}) > memory.num_slots ({m.num_slots})")
        for name in OBJECTIVES:
            weight = o.weight(name)
            need(
                math.isfinite(weight) and weight >= 0,
                f"objectives.{name}_weight must be finite and >= 0, got {weight}",
            )
        need(bool(o.enabled()), "at least one objective must be enabled")
        need(
            0.0 < o.mim_mask_ratio < 1.0,
            f"objectives.mim_mask_ratio must be in (0, 1), got {o.mim_mask_ratio}",
        )
        need(
            0.0 < o.mlm_probability < 1.0,
            f"objectives.mlm_probability must be in (0, 1), got {o.mlm_probability}",
        )
        need(
            0.0 < o.temperature_min <= o.temperature_init,
            "objectives: need 0 < temperature_min <= temperature_init",
        )
        need(
            len(r.view_probs) == 3
            and all(p >= 0 for p in r.view_probs)
            and abs(sum(r.view_probs) - 1.0) < 1e-6,
            f"robust.view_probs must be 3 non-negative numbers summing to 1, got {r.view_probs}",
        )
        need(
            len(r.image_perturbations) > 0 or r.view_probs[0] + r.view_probs[2] == 0,
            "robust.image_perturbations is empty but image views have non-zero probability",
        )
        need(
            1 <= r.severity_min <= r.severity_max <= 5,
            f"robust: need 1 <= severity_min <= severity_max <= 5, got "
            f"{r.severity_min}..{r.severity_max}",
        )
        need(
            0.0 < r.perturbed_image_mask_ratio < 1.0,
            "robust.perturbed_image_mask_ratio must be in (0, 1)",
        )
        need(
            r.degraded_weight >= 0 and math.isfinite(r.degraded_weight),
            f"robust.degraded_weight must be finite and >= 0, got {r.degraded_weight}",
        )
        need(
            0.0 <= r.severity_curriculum_fraction < 1.0,
            "robust.severity_curriculum_fraction must be in [0, 1)",
        )
        need(
            r.consistency_target in ("unmasked", "masked"),
            "robust.consistency_target: 'unmasked' or 'masked'",
        )
        need(
            len(r.text_perturbations) > 0 or r.view_probs[1] + r.view_probs[2] == 0,
            "robust.text_perturbations is empty but text views have non-zero probability",
        )
        need(
            r.drop_text_prob >= 0
            and r.drop_image_prob >= 0
            and r.drop_text_prob + r.drop_image_prob <= 1.0,
            "robust: drop_text_prob and drop_image_prob must be >= 0 and sum to <= 1",
        )
        need(
            not o.modality_resilience or r.drop_text_prob + r.drop_image_prob > 0,
            "objectives.modality_resilience needs drop_text_prob + drop_image_prob > 0",
        )
        need(r.image_drop_fill in ("mean", "zeros"), "robust.image_drop_fill: 'mean' or 'zeros'")
        need(
            r.domain_align_method in ("coral", "mmd"),
            "robust.domain_align_method must be 'coral' or 'mmd'",
        )
        need(0.0 <= r.ramp_fraction < 1.0, "robust.ramp_fraction must be in [0, 1)")
        if self.m3ae_style:
            extra = [n for n in o.enabled() if n not in ("mim", "mlm", "itm")]
            need(
                not extra and not r.perturbation_aware_masking,
                "m3ae_style reproduces M3AE's three-pass step and supports only the mim, mlm "
                f"and itm objectives; also enabled: {extra or ['perturbation_aware_masking']}",
            )
        if errors:
            raise ConfigError("invalid model config: " + "; ".join(errors))

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: nested dicts, lists for tuples."""
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any], section: str = "model") -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError` naming the key
        under ``section`` (``pretrain.model``: the fix names that parameters file)."""
        return parse(cls, data, section, fix=_FIX if section == "model" else None)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value
