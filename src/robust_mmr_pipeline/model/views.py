"""Degraded views for Robust-MMR: perturbed images / texts and dropped modalities.

One degraded batch per step, built from the clean batch:

1. Modality dropping (if modality resilience is on): per sample ``u ~ U(0, 1)``;
   ``u < p_t`` drops the text (only ``[CLS] [SEP]`` left), ``p_t <= u < p_t + p_i`` drops the
   image (the normalisation-mean image, i.e. zeros after normalisation, or black).
2. Asymmetric perturbation (if perturbed views are needed): one view per step,
   ``image-only / text-only / both`` with ``robust.view_probs``. Images: a perturbation name
   per sample from ``robust.image_perturbations`` and a severity ``s ~ U{s_min..s_max}`` per
   sample via ``perturb.perturb_image``; texts: ``perturb.perturb_token_ids`` with a severity
   per sample (length-preserving, so the clean ids stay the per-position targets). Dropped
   samples keep their present modality clean, so modality resilience measures missingness
   alone.

Without perturbed views only the dropped samples form the degraded batch (no wasted compute).
Randomness: torch's global RNG only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from robust_mmr_pipeline.model.config import ConfigError, ModelConfig
from robust_mmr_pipeline.perturb import (
    IMAGE_PERTURBATIONS,
    TOKEN_KINDS,
    perturb_image,
    perturb_token_ids,
)

VIEWS: tuple[str, str, str] = ("image", "text", "both")


@dataclass
class DegradedBatch:
    """Inputs of the degraded pass; ``rows`` index the clean batch (its targets).

    Attributes:
        rows: long ``[B']``.
        pixel_values: ``[B', C, H, W]`` in [0, 1] (perturbed / dropped / clean).
        input_ids, attention_mask, special_tokens_mask: ``[B', L]``.
        changed_tokens: bool ``[B', L]``, tokens the text perturbation changed.
        drop_text, drop_image: bool ``[B']``.
        view: ``"image" | "text" | "both"`` or ``"none"`` (modality dropping only).
    """

    rows: Tensor
    pixel_values: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    special_tokens_mask: Tensor
    changed_tokens: Tensor
    drop_text: Tensor
    drop_image: Tensor
    view: str

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
    """Fail at model build, not mid-training, on unknown perturbation names or token kinds."""
    if not config.needs_perturbed_views:
        return
    robust = config.robust
    unknown = [n for n in robust.image_perturbations if n not in IMAGE_PERTURBATIONS]
    if unknown:
        raise ConfigError(
            f"robust.image_perturbations: unknown {unknown}; known: {list(IMAGE_PERTURBATIONS)}"
        )
    kinds = robust.text_perturbation_kinds
    if kinds is not None and (not kinds or any(k not in TOKEN_KINDS for k in kinds)):
        raise ConfigError(
            f"robust.text_perturbation_kinds must be a non-empty subset of {TOKEN_KINDS}"
        )


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


def perturb_tokens(
    input_ids: Tensor,
    attention_mask: Tensor,
    special_tokens_mask: Tensor,
    *,
    vocab_size: int,
    severity_min: int,
    severity_max: int,
    kinds: Sequence[str] | None,
    special_ids: Sequence[int],
    unk_token_id: int,
) -> tuple[Tensor, Tensor]:
    """Length-preserving token perturbation, severity ``U{min..max}`` per sample.

    Special tokens and padding are never changed, and ``replace`` never draws a special id.
    Returns ``(perturbed_ids [B, L], changed bool [B, L])``.
    """
    severity = torch.randint(severity_min, severity_max + 1, (input_ids.shape[0],))
    extra = {} if kinds is None else {"kinds": tuple(kinds)}
    ids, changed = perturb_token_ids(
        input_ids,
        severity.to(input_ids.device),
        special_tokens_mask,
        vocab_size,
        attention_mask=attention_mask,
        dropout_token_id=unk_token_id,
        excluded_ids=list(special_ids),
        **extra,
    )
    return ids, changed.bool()


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


def build_degraded_batch(batch: dict[str, Tensor], config: ModelConfig) -> DegradedBatch | None:
    """The degraded view of a clean batch (see the module docstring); None if it would be empty."""
    robust, text_cfg = config.robust, config.text
    images, ids = batch["pixel_values"], batch["input_ids"]
    attn, special = batch["attention_mask"].long(), batch["special_tokens_mask"].long()
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
    images, ids, attn, special = images[rows], ids[rows], attn[rows], special[rows]
    drop_text, drop_image = drop_text[rows], drop_image[rows]
    changed = torch.zeros_like(ids, dtype=torch.bool)
    view = sample_view(robust.view_probs) if perturbed else "none"

    present = ~(drop_text | drop_image)
    if view in ("image", "both") and bool(present.any()):
        images = images.clone()
        images[present] = perturb_images(
            images[present], robust.image_perturbations, robust.severity_min, robust.severity_max
        )
    if view in ("text", "both") and bool(present.any()):
        new_ids, new_changed = perturb_tokens(
            ids[present],
            attn[present],
            special[present],
            vocab_size=text_cfg.vocab_size,
            severity_min=robust.severity_min,
            severity_max=robust.severity_max,
            kinds=robust.text_perturbation_kinds,
            special_ids=text_cfg.special_token_ids,
            unk_token_id=text_cfg.unk_token_id,
        )
        ids, changed = ids.clone(), changed.clone()
        ids[present], changed[present] = new_ids, new_changed

    if bool(drop_text.any()):
        empty_ids, empty_attn, empty_special = drop_texts(
            ids, drop_text, text_cfg.cls_token_id, text_cfg.sep_token_id, text_cfg.pad_token_id
        )
        ids = empty_ids
        attn = torch.where(drop_text[:, None], empty_attn, attn)
        special = torch.where(drop_text[:, None], empty_special, special)
        changed = changed & ~drop_text[:, None]
    if bool(drop_image.any()):
        if robust.image_drop_fill == "mean":
            fill = torch.tensor(config.vision.pixel_mean, dtype=images.dtype, device=device)
            fill = fill.view(1, -1, 1, 1).expand_as(images)
        else:
            fill = torch.zeros_like(images)
        images = torch.where(drop_image[:, None, None, None], fill, images)
    return DegradedBatch(rows, images, ids, attn, special, changed, drop_text, drop_image, view)
