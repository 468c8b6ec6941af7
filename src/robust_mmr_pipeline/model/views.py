"""Degraded views for Robust-MMR: perturbed images / reporting-style shifts / dropped modalities.

One degraded batch per step, built from the clean batch:

1. Modality dropping (if modality resilience is on): per sample ``u ~ U(0, 1)``;
   ``u < p_t`` drops the text (only ``[CLS] [SEP]`` left), ``p_t <= u < p_t + p_i`` drops the
   image (the normalisation-mean image, i.e. zeros after normalisation, or black).
2. Asymmetric perturbation (if perturbed views are needed): one view per step,
   ``image-only / text-only / both`` with ``robust.view_probs``.

   * Images: per sample a corruption from ``robust.image_perturbations`` at severity
     ``s ~ U{s_min..s_max(t)}`` (``perturb.perturb_image``).
   * Texts: the reporting-style shifts of ``perturb.text`` (abbreviations, telegraphic
     style, synonyms, ...) applied to the STRING and re-tokenised. That happens in the data
     collator (:class:`TextDegrader`, one family and severity per sample, drawn from torch's
     global RNG), which adds ``degraded_input_ids`` / ``degraded_attention_mask`` /
     ``degraded_special_tokens_mask`` / ``degraded_severity`` to the batch; here a sample
     takes its degraded text when its severity is within the curriculum's ``s_max(t)``.
   * ``s_max(t)`` (curriculum) grows linearly from ``s_min`` to ``s_max`` over the first
     ``robust.severity_curriculum_fraction`` of training (0 = the full range from step 0).

   Dropped samples keep their present modality clean, so modality resilience measures
   missingness alone. MLM targets of the degraded pass are CLEAN tokens: a degraded text's
   positions take the clean token the collator aligned them with (``degraded_clean_targets``,
   ``engine.pairs.align_clean_targets``; inserted / deleted / re-split tokens get none), a
   clean text's its own tokens, a dropped text none. A batch without
   ``degraded_clean_targets`` (hand-built) gives degraded texts no MLM targets.

Without perturbed views only the dropped samples form the degraded batch (no wasted compute).
Randomness: torch's global RNG only (the trainer checkpoints it, so a resumed run draws the
same views).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from robust_mmr_pipeline.model.config import ModelConfig
from robust_mmr_pipeline.model.config_sections import ConfigError
from robust_mmr_pipeline.model.masking import IGNORE_INDEX, eligible_tokens
from robust_mmr_pipeline.perturb import (
    IMAGE_PERTURBATIONS,
    TEXT_PERTURBATIONS,
    perturb_image,
    perturb_text,
)

VIEWS: tuple[str, str, str] = ("image", "text", "both")
DEGRADED_TEXT_KEYS: tuple[str, ...] = (
    "degraded_input_ids",
    "degraded_attention_mask",
    "degraded_special_tokens_mask",
)


@dataclass
class DegradedBatch:
    """Inputs of the degraded pass; ``rows`` index the clean batch (its targets).

    Attributes:
        rows: long ``[B']``.
        pixel_values: ``[B', C, H, W]`` in [0, 1] (perturbed / dropped / clean).
        input_ids, attention_mask, special_tokens_mask: ``[B', L']``.
        clean_text: bool ``[B']``, the text is the clean one.
        clean_targets: long ``[B', L']``, the clean token id MLM predicts at each position
            (the own token of a clean text, the aligned clean token of a degraded one);
            ``IGNORE_INDEX`` where none (unaligned, special, padding, dropped text).
        perturbed_image: bool ``[B']``, the image is corrupted.
        drop_text, drop_image: bool ``[B']``.
        view: ``"image" | "text" | "both"`` or ``"none"`` (modality dropping only).
        severity_max: the curriculum's current maximum severity.
    """

    rows: Tensor
    pixel_values: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    special_tokens_mask: Tensor
    clean_text: Tensor
    clean_targets: Tensor
    perturbed_image: Tensor
    drop_text: Tensor
    drop_image: Tensor
    view: str
    severity_max: int

    @property
    def image_view(self) -> bool:
        return self.view in ("image", "both")

    @property
    def text_view(self) -> bool:
        return self.view in ("text", "both")

    @property
    def dropped(self) -> Tensor:
        return self.drop_text | self.drop_image


def check_perturbations(config: ModelConfig) -> None:
    """Fail at model build, not mid-training, on unknown perturbation names."""
    if not config.needs_perturbed_views:
        return
    robust = config.robust
    unknown = [n for n in robust.image_perturbations if n not in IMAGE_PERTURBATIONS]
    if unknown:
        raise ConfigError(
            f"robust.image_perturbations: unknown {unknown}; known: {list(IMAGE_PERTURBATIONS)}"
        )
    unknown = [n for n in robust.text_perturbations if n not in TEXT_PERTURBATIONS]
    if unknown:
        raise ConfigError(
            f"robust.text_perturbations: unknown {unknown}; known: {list(TEXT_PERTURBATIONS)}"
        )


def curriculum_severity(config: ModelConfig, progress: float) -> int:
    """``s_max(t)``: from ``severity_min`` up to ``severity_max`` over the curriculum share."""
    robust = config.robust
    fraction = robust.severity_curriculum_fraction
    share = 1.0 if fraction <= 0 else min(1.0, max(0.0, progress) / fraction)
    span = robust.severity_max - robust.severity_min
    return robust.severity_min + round(share * span)


class TextDegrader:
    """Collator hook: reporting-style shifts of each text, re-tokenised (see module docstring).

    ``__call__(texts)`` returns the degraded strings and each one's severity; the family and
    the severity (``U{s_min..s_max}``) and the perturbation seed come from torch's global RNG.
    """

    def __init__(self, names: Sequence[str], severity_min: int, severity_max: int) -> None:
        unknown = [n for n in names if n not in TEXT_PERTURBATIONS]
        if unknown or not names:
            raise ConfigError(
                f"text degradation needs known perturbation names; unknown {unknown}, "
                f"known: {list(TEXT_PERTURBATIONS)}"
            )
        self.names = tuple(names)
        self.severity_min, self.severity_max = int(severity_min), int(severity_max)

    @classmethod
    def for_model(cls, config: ModelConfig) -> TextDegrader | None:
        """The degrader a model with this config needs (None when it takes no text views)."""
        robust = config.robust
        if not config.needs_perturbed_views or robust.view_probs[1] + robust.view_probs[2] == 0:
            return None
        return cls(robust.text_perturbations, robust.severity_min, robust.severity_max)

    def __call__(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        n = len(texts)
        which = torch.randint(len(self.names), (n,)).tolist()
        severity = torch.randint(self.severity_min, self.severity_max + 1, (n,)).tolist()
        seeds = torch.randint(0, 2**31 - 1, (n,)).tolist()
        out = [
            perturb_text(str(text), self.names[k], s, seed)
            for text, k, s, seed in zip(texts, which, severity, seeds, strict=True)
        ]
        return out, severity


def sample_view(probs: Sequence[float]) -> str:
    """Draw ``image`` / ``text`` / ``both`` with probabilities ``probs``."""
    index = int(torch.multinomial(torch.tensor(probs, dtype=torch.float), 1).item())
    return VIEWS[index]


def perturb_images(
    images: Tensor, names: Sequence[str], severity_min: int, severity_max: int
) -> Tensor:
    """Per sample: a corruption from ``names`` at severity ``U{min..max}``; ``[B, C, H, W]``."""
    b = images.shape[0]
    which = torch.randint(len(names), (b,))
    severity = torch.randint(severity_min, severity_max + 1, (b,))
    out = images.clone()
    for k in torch.unique(which).tolist():
        sel = which == k
        dev_sel = sel.to(images.device)
        out[dev_sel] = perturb_image(images[dev_sel], names[k], severity[sel].to(images.device)).to(
            images.dtype
        )
    return out


def _pad_to(ids: Tensor, length: int, value: int) -> Tensor:
    if ids.shape[1] >= length:
        return ids
    return torch.nn.functional.pad(ids, (0, length - ids.shape[1]), value=value)


def drop_texts(
    input_ids: Tensor, rows: Tensor, cls_id: int, sep_id: int, pad_id: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Replace the texts of ``rows`` (bool ``[B]``) by ``[CLS] [SEP] [PAD]…``.

    Returns new ``(input_ids, attention_mask, special_tokens_mask)`` for those rows only;
    callers ``torch.where`` them in.
    """
    b, length = input_ids.shape
    empty = torch.full((b, length), pad_id, dtype=input_ids.dtype, device=input_ids.device)
    empty[:, 0], empty[:, 1] = cls_id, sep_id
    attn = torch.zeros_like(empty)
    attn[:, :2] = 1
    keep = ~rows[:, None]
    special = torch.ones_like(empty)
    return torch.where(keep, input_ids, empty), attn, special


def _own_targets(ids: Tensor, attn: Tensor, special: Tensor) -> Tensor:
    """A clean text's MLM targets: its own regular tokens, ``IGNORE_INDEX`` elsewhere."""
    return torch.where(eligible_tokens(attn, special), ids, torch.full_like(ids, IGNORE_INDEX))


def _degraded_texts(
    batch: dict[str, Any], rows: Tensor, present: Tensor, severity_max: int, pad_id: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Clean texts of ``rows`` with the collator's degraded text where severity allows.

    Returns ``(input_ids, attention_mask, special_tokens_mask, clean_targets)`` ``[B', L']``
    and ``clean_text`` bool ``[B']``.
    """
    missing = [k for k in (*DEGRADED_TEXT_KEYS, "degraded_severity") if k not in batch]
    if missing:
        raise ValueError(
            f"a text view needs the batch keys {missing}: build the collator with "
            "text_degrader=TextDegrader.for_model(config) (model/views.py)"
        )
    ids, attn = batch["input_ids"][rows], batch["attention_mask"][rows].long()
    special = batch["special_tokens_mask"][rows].long()
    new_ids, new_attn, new_special = (batch[k][rows].long() for k in DEGRADED_TEXT_KEYS)
    length = max(ids.shape[1], new_ids.shape[1])
    ids, new_ids = _pad_to(ids, length, pad_id), _pad_to(new_ids, length, pad_id)
    attn, new_attn = _pad_to(attn, length, 0), _pad_to(new_attn, length, 0)
    special, new_special = _pad_to(special, length, 1), _pad_to(new_special, length, 1)
    if "degraded_clean_targets" in batch:
        aligned = _pad_to(batch["degraded_clean_targets"][rows].long(), length, IGNORE_INDEX)
    else:  # a hand-built batch: no alignment, so degraded texts get no MLM targets
        aligned = torch.full_like(new_ids, IGNORE_INDEX)
    severity = batch["degraded_severity"][rows].to(ids.device)
    take = present & (severity <= severity_max)
    pick = take[:, None]
    return (
        torch.where(pick, new_ids, ids),
        torch.where(pick, new_attn, attn),
        torch.where(pick, new_special, special),
        torch.where(pick, aligned, _own_targets(ids, attn, special)),
        ~take,
    )


def build_degraded_batch(
    batch: dict[str, Any], config: ModelConfig, progress: float = 1.0
) -> DegradedBatch | None:
    """The degraded view of a clean batch (see the module docstring); None if it would be empty."""
    robust, text_cfg = config.robust, config.text
    images, ids = batch["pixel_values"], batch["input_ids"]
    b, device = ids.shape[0], ids.device

    drop_text = torch.zeros(b, dtype=torch.bool)
    drop_image = torch.zeros(b, dtype=torch.bool)
    if config.objectives.modality_resilience:
        u = torch.rand(b)
        drop_text = u < robust.drop_text_prob
        drop_image = (u >= robust.drop_text_prob) & (
            u < robust.drop_text_prob + robust.drop_image_prob
        )
    drop_text, drop_image = drop_text.to(device), drop_image.to(device)

    perturbed = config.needs_perturbed_views
    rows = torch.arange(b, device=device) if perturbed else (drop_text | drop_image).nonzero()[:, 0]
    if rows.numel() == 0:
        return None
    severity_max = curriculum_severity(config, progress)
    images = images[rows]
    drop_text, drop_image = drop_text[rows], drop_image[rows]
    present = ~(drop_text | drop_image)
    view = sample_view(robust.view_probs) if perturbed else "none"

    perturbed_image = torch.zeros_like(present)
    if view in ("image", "both") and bool(present.any()):
        images = images.clone()
        images[present] = perturb_images(
            images[present], robust.image_perturbations, robust.severity_min, severity_max
        )
        perturbed_image = present.clone()
    if view in ("text", "both"):
        ids, attn, special, targets, clean_text = _degraded_texts(
            batch, rows, present, severity_max, text_cfg.pad_token_id
        )
    else:
        ids = batch["input_ids"][rows]
        attn = batch["attention_mask"][rows].long()
        special = batch["special_tokens_mask"][rows].long()
        targets = _own_targets(ids, attn, special)
        clean_text = torch.ones_like(present)

    if bool(drop_text.any()):
        ids, empty_attn, empty_special = drop_texts(
            ids, drop_text, text_cfg.cls_token_id, text_cfg.sep_token_id, text_cfg.pad_token_id
        )
        attn = torch.where(drop_text[:, None], empty_attn, attn)
        special = torch.where(drop_text[:, None], empty_special, special)
        clean_text = clean_text & ~drop_text
        targets = targets.masked_fill(drop_text[:, None], IGNORE_INDEX)
    if bool(drop_image.any()):
        if robust.image_drop_fill == "mean":
            fill = torch.tensor(config.vision.pixel_mean, dtype=images.dtype, device=device)
            fill = fill.view(1, -1, 1, 1).expand_as(images)
        else:
            fill = torch.zeros_like(images)
        images = torch.where(drop_image[:, None, None, None], fill, images)
    return DegradedBatch(
        rows=rows,
        pixel_values=images,
        input_ids=ids,
        attention_mask=attn,
        special_tokens_mask=special,
        clean_text=clean_text,
        clean_targets=targets,
        perturbed_image=perturbed_image,
        drop_text=drop_text,
        drop_image=drop_image,
        view=view,
        severity_max=severity_max,
    )
