"""The component sections of the model configuration (one dataclass each), the objective names,
the default training perturbation families and the configuration error type. Nested in
:class:`~robust_mmr_pipeline.model.config.ModelConfig`.
"""

from __future__ import annotations

from typing import Literal

from robust_mmr_pipeline.typed_config import ParameterError, PathStr, config

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


# The one config error type under the model's name (callers catch either).
ConfigError = ParameterError


@config
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
    pretrained_path: PathStr | None = None

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


@config
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
    pretrained_path: PathStr | None = None

    @property
    def special_token_ids(self) -> tuple[int, ...]:
        return (
            self.pad_token_id,
            self.unk_token_id,
            self.cls_token_id,
            self.sep_token_id,
            self.mask_token_id,
        )


@config
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


@config
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


@config
class MemoryConfig:
    """MA-CMF: learned memory ``M [num_slots, d]`` read with top-k multi-head attention."""

    enabled: bool = False
    num_slots: int = 256
    top_k: int = 16
    num_heads: int = 4


@config
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


@config
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
    # covariance = Σ_{i≠j} C_ij² / k. Off in the model config; conf/base turns them on (the
    # centred 1 - cos term collapses there: every projection on one line within 300 steps;
    # the collapse statistics are logged every step, objectives.collapse_statistics).
    variance_weight: float = 0.0
    covariance_weight: float = 0.0
    domain_align_method: Literal["coral", "mmd"] = "coral"
    # α, λ_dc, λ_mr (and λ_align) ramp linearly from 0 to their weight over this share.
    ramp_fraction: float = 0.1
