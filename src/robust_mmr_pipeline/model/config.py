"""Typed, JSON-safe configuration of the MMR model family.

One dataclass per component, nested in :class:`ModelConfig`. ``to_dict()`` gives plain JSON
types (tuples become lists), ``from_dict()`` rebuilds and validates (unknown keys are errors, so
a typo in ``conf/`` fails loudly instead of silently using a default).

Resolution order of :func:`apply_preset`: dataclass defaults -> ``SIZES[size]`` ->
``PRESETS[name]`` -> ``overrides`` (each a nested dict merged into the previous one).

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

import copy
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

# Training perturbation families of the degraded views. Disjoint from the evaluation's
# default test families (gaussian_noise, contrast, jpeg; typos, word_dropout) and from the
# held-out site's acquisition shift, so a robustness gain is not a copy of the test.
IMAGE_PERTURBATION_DEFAULTS: tuple[str, ...] = (
    "gaussian_blur",
    "motion_blur",
    "speckle_noise",
    "shot_noise",
    "gamma",
    "brightness",
    "pixelate",
    "downsample",
)
TEXT_PERTURBATION_DEFAULTS: tuple[str, ...] = (
    "abbreviation_contract",
    "abbreviation_expand",
    "synonym_swap",
    "negation_rephrase",
    "section_headers",
    "sentence_order",
    "punctuation_case",
    "number_format",
)


class ConfigError(ValueError):
    """A model configuration value is invalid; the message names the field(s)."""


@dataclass
class VisionConfig:
    """timm ViT image encoder. Images enter the model as float ``[B, C, H, W]`` in ``[0, 1]``."""

    image_size: int = 64
    patch_size: int = 8
    in_chans: int = 1
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    # Per-channel normalisation applied inside the model: x_n = (x - mean) / std.
    pixel_mean: tuple[float, ...] = (0.5,)
    pixel_std: tuple[float, ...] = (0.25,)
    # Local safetensors / timm state-dict file; never downloaded.
    pretrained_path: str | None = None

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def patch_dim(self) -> int:
        """Pixels per patch, ``p * p * C`` (the MIM target width)."""
        return self.patch_size**2 * self.in_chans


@dataclass
class TextConfig:
    """transformers BERT / RoBERTa text encoder built from a config (no download)."""

    arch: Literal["bert", "roberta"] = "bert"
    vocab_size: int = 4096  # set from the trained tokenizer: len(tokenizer)
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_length: int = 48
    dropout: float = 0.0
    # Ids of the WordPiece tokenizer of tokenizer.py (special tokens are trained first).
    pad_token_id: int = 0
    unk_token_id: int = 1
    cls_token_id: int = 2
    sep_token_id: int = 3
    mask_token_id: int = 4
    # Local HF model folder or state-dict file (.safetensors / .pt); never downloaded.
    pretrained_path: str | None = None

    @property
    def special_token_ids(self) -> tuple[int, ...]:
        return (
            self.pad_token_id,
            self.unk_token_id,
            self.cls_token_id,
            self.sep_token_id,
            self.mask_token_id,
        )


@dataclass
class FusionConfig:
    """M3AE co-attention: ``num_layers`` layers per stream (self-attn, cross-attn, FFN).

    ``pooling``: what the poolers (fused feature) and the contrastive embeddings read:
    ``"cls"`` the first token (M3AE, for pre-trained encoders) or ``"mean"`` the masked token
    mean (default: from-scratch encoders give near-identical CLS outputs at initialisation,
    which stalls ITM and the task heads; see ``heads.Pooler``).
    """

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    pooling: Literal["cls", "mean"] = "mean"


@dataclass
class DecoderConfig:
    """MAE-style MIM decoder reading the image stream after fusion layer ``read_layer``.

    ``read_layer`` counts fusion layers from 1; 0 reads the fusion input (encoder output after
    projection and memory); ``None`` means the middle layer, ``fusion.num_layers // 2``
    (M3AE: 3 of 6).
    """

    hidden_size: int = 96
    depth: int = 1
    num_heads: int = 4
    mlp_ratio: float = 4.0
    read_layer: int | None = None
    norm_pix_loss: bool = True


@dataclass
class MemoryConfig:
    """MA-CMF: learned memory ``M [num_slots, d]`` read with top-k multi-head attention."""

    enabled: bool = False
    num_slots: int = 256
    top_k: int = 16
    num_heads: int = 4


@dataclass
class ObjectivesConfig:
    """One switch and one weight per objective; L = Σ_k enabled_k · weight_k · L_k."""

    mim: bool = True
    mim_weight: float = 1.0
    mlm: bool = True
    mlm_weight: float = 1.0
    itm: bool = True
    itm_weight: float = 1.0
    gla_global: bool = False
    gla_global_weight: float = 1.0
    gla_local: bool = False
    gla_local_weight: float = 0.5
    domain_consistency: bool = False
    domain_consistency_weight: float = 0.5
    domain_align: bool = False  # CORAL / MMD across domain ids (robust.domain_align_method)
    domain_align_weight: float = 0.1
    modality_resilience: bool = False
    modality_resilience_weight: float = 0.1
    # Masking and objective hyper-parameters.
    mim_mask_ratio: float = 0.75
    mlm_probability: float = 0.15
    itm_hard_negatives: bool = True  # mined from GLA similarities; only when gla_global is on
    contrastive_dim: int = 256
    temperature_init: float = 0.07
    temperature_min: float = 0.01  # clamp: logit scale <= 1 / temperature_min (CLIP: 100)

    def enabled(self) -> tuple[str, ...]:
        """Names of the enabled objectives, in a fixed order (also the loss-dict keys)."""
        return tuple(name for name in OBJECTIVES if getattr(self, name))

    def weight(self, name: str) -> float:
        return float(getattr(self, f"{name}_weight"))


OBJECTIVES: tuple[str, ...] = (
    "mim",
    "mlm",
    "itm",
    "gla_global",
    "gla_local",
    "domain_consistency",
    "domain_align",
    "modality_resilience",
)
ROBUST_OBJECTIVES: tuple[str, ...] = ("domain_consistency", "domain_align", "modality_resilience")


@dataclass
class RobustConfig:
    """Robust-MMR: degraded views, their reconstruction, consistency and resilience.

    Total loss (``model/mmr.py``): ``L = L_mmr(clean) + α·r(t)·L_rec(degraded)
    + λ_dc·r(t)·L_dc + λ_mr·r(t)·L_mr``; α = ``degraded_weight``, λ the objectives' weights,
    ``r`` the linear ramp over ``ramp_fraction`` of training. The clean terms keep MMR's full
    weight.
    """

    perturbation_aware_masking: bool = False
    # P(view) for (image-only, text-only, both) perturbed, drawn once per step.
    view_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)
    image_perturbations: tuple[str, ...] = IMAGE_PERTURBATION_DEFAULTS
    # String-level reporting-style shifts (perturb/text.py), re-tokenised by the collator.
    text_perturbations: tuple[str, ...] = TEXT_PERTURBATION_DEFAULTS
    severity_min: int = 1
    severity_max: int = 5
    # Curriculum: the maximum severity grows from severity_min to severity_max over this
    # share of training (0: the whole range from the first step).
    severity_curriculum_fraction: float = 0.5
    perturbed_image_mask_ratio: float = 0.8
    # MIM / MLM on the degraded view (targets: the CLEAN patches / tokens), weight α.
    degraded_reconstruction: bool = True
    degraded_weight: float = 0.5
    # Target of domain consistency and modality resilience: the fused feature of an UNMASKED
    # clean pass under no_grad ("unmasked"), or the masked joint pass ("masked", earlier
    # behaviour: mostly teaches invariance to which patches happen to be visible).
    consistency_target: Literal["unmasked", "masked"] = "unmasked"
    # Modality resilience: per sample, drop the text (CLS/SEP only) or the image.
    drop_text_prob: float = 0.15
    drop_image_prob: float = 0.15
    image_drop_fill: Literal["mean", "zeros"] = "mean"
    # Own projection heads of the consistency terms: projector p (fused -> projection_dim,
    # applied to both branches) and predictor q (online branch only).
    predictor_hidden: int = 256
    projection_dim: int = 128
    # Centre p's outputs by their clean-batch mean (objectives.consistency_center); False is
    # METHOD.md's formula verbatim, which a constant p satisfies trivially.
    consistency_center: bool = True
    # VICReg's anti-collapse terms (Bardes et al., ICLR 2022) on the projector output p(z̃) of
    # the online branch, inside each consistency term: variance = mean_j relu(1 - std_j),
    # covariance = Σ_{i≠j} C_ij² / k. Off by default until measured on the default run (the
    # centred 1 - cos term collapses there: every projection on one line within 300 steps;
    # the collapse statistics are logged every step, objectives.collapse_statistics).
    variance_weight: float = 0.0
    covariance_weight: float = 0.0
    domain_align_method: Literal["coral", "mmd"] = "coral"
    # α, λ_dc, λ_mr (and λ_align) ramp linearly from 0 to their weight over this share.
    ramp_fraction: float = 0.1


@dataclass
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
            raise ConfigError("invalid model config:\n  " + "\n  ".join(errors))

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
            raise ConfigError("invalid model config:\n  " + "\n  ".join(errors))

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: nested dicts, lists for tuples."""
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        return _build(cls, data, "")


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    return value


def _build(cls: type, data: dict[str, Any], path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in {path or 'model config'}; valid: {sorted(names)}"
        )
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{path}{key}.")
        elif value is not None and _is_tuple_hint(hint):
            if not isinstance(value, list | tuple):
                raise ConfigError(f"{path}{key} must be a list, got {value!r}")
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _is_tuple_hint(hint: Any) -> bool:
    if typing.get_origin(hint) is tuple:
        return True
    return any(typing.get_origin(arg) is tuple for arg in typing.get_args(hint))


# ---------------------------------------------------------------- presets / sizes
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


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated recursively by ``update`` (neither is modified)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_preset(
    name: str, overrides: dict[str, Any] | None = None, size: str = "small"
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
    return ModelConfig.from_dict(deep_merge(data, overrides or {}))
