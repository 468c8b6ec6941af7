"""Image-patch and text-token masking: random (MAE / BERT) and perturbation-aware (Robust-MMR).

Patches. A mask keeps ``K = int(N (1 - ratio))`` of the ``N`` patches (MAE's rounding). Masked
patches are sampled without replacement with probabilities ``π`` by the Gumbel-top-k trick: the
``N - K`` largest ``log π_i + G_i`` (``G_i ~ Gumbel(0, 1)``) are masked. Random masking is
``π = 1/N`` (equivalent to MAE's argsort of uniform noise). Perturbation-aware masking uses

    d_i = || P(x)_i - x_i ||²                                  (per-patch deviation)
    π_i = ½ · 1/N + ½ · softmax_i( d / mean(d) )

so changed patches are masked more often while every patch keeps probability >= 1 / (2N).
Dividing by ``mean(d)`` makes the bias independent of the corruption's overall strength.

Tokens. BERT's 15 %: each eligible token (attended, not special) is selected w.p. ``p``; at
least one per text. Selected tokens become ``[MASK]`` (80 %), a random regular token (10 %) or
stay (10 %); labels are the CLEAN ids at selected positions, ``-100`` elsewhere. On a perturbed
text, changed tokens are selected w.p. ``q = ½`` and the other tokens w.p.
``clamp((p · n_eligible - n_changed_selected) / n_unchanged, 0, 1)``, i.e. random up to ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robust_mmr_pipeline.model.vision import patchify

IGNORE_INDEX = -100


@dataclass
class PatchMask:
    """A patch mask in MAE's convention.

    Attributes:
        keep_ids: long ``[B, K]``, kept patch indices (encoder input order).
        ids_restore: long ``[B, N]``, position of patch ``j`` in ``[kept..., masked...]``.
        mask: bool ``[B, N]``, True = masked (dropped from the encoder, reconstructed).
    """

    keep_ids: Tensor
    ids_restore: Tensor
    mask: Tensor


def num_kept(num_patches: int, ratio: float) -> int:
    """``K = max(1, int(N (1 - ratio)))``."""
    return max(1, int(num_patches * (1.0 - ratio)))


def mask_from_keys(keys: Tensor, n_keep: int) -> PatchMask:
    """Keep the ``n_keep`` patches with the smallest ``keys`` ``[B, N]``."""
    ids_shuffle = torch.argsort(keys, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones_like(keys, dtype=torch.bool)
    mask[:, :n_keep] = False
    return PatchMask(ids_shuffle[:, :n_keep], ids_restore, torch.gather(mask, 1, ids_restore))


def random_patch_mask(
    batch_size: int, num_patches: int, ratio: float, device: torch.device | str = "cpu"
) -> PatchMask:
    """Uniform random masking of ``ratio`` of the patches (MAE)."""
    noise = torch.rand(batch_size, num_patches, device=device)
    return mask_from_keys(noise, num_kept(num_patches, ratio))


def patch_deviation(clean: Tensor, perturbed: Tensor, patch_size: int) -> Tensor:
    """``d_i = ||P(x)_i - x_i||²``: ``[B, C, H, W]`` x 2 -> ``[B, N]``."""
    diff = patchify(perturbed.float(), patch_size) - patchify(clean.float(), patch_size)
    return diff.pow(2).sum(-1)


def perturbation_aware_probs(deviation: Tensor, eps: float = 1e-12) -> Tensor:
    """``π = ½/N + ½ softmax(d / mean(d))`` per row: ``[B, N] -> [B, N]`` (rows sum to 1).

    A row with ``d = 0`` (an unperturbed image) gets the uniform distribution.
    """
    n = deviation.shape[1]
    scaled = deviation / (deviation.mean(dim=1, keepdim=True) + eps)
    return 0.5 / n + 0.5 * torch.softmax(scaled, dim=1)


def perturbation_aware_patch_mask(deviation: Tensor, ratio: float) -> PatchMask:
    """Mask ``N - K`` patches sampled without replacement ∝ :func:`perturbation_aware_probs`."""
    probs = perturbation_aware_probs(deviation)
    uniform = torch.rand_like(probs).clamp_(1e-20, 1.0 - 1e-7)
    gumbel = -torch.log(-torch.log(uniform))
    # mask_from_keys keeps the smallest keys, so the N - K largest log π + G are masked.
    keys = probs.log() + gumbel
    return mask_from_keys(keys, num_kept(deviation.shape[1], ratio))


# ---------------------------------------------------------------------- tokens
@dataclass
class TokenMask:
    """MLM inputs and targets: ``input_ids`` ``[B, L]`` (corrupted), ``labels`` ``[B, L]``."""

    input_ids: Tensor
    labels: Tensor


def eligible_tokens(attention_mask: Tensor, special_tokens_mask: Tensor) -> Tensor:
    """bool ``[B, L]``: real, non-special tokens (the only ones MLM / FILIP use)."""
    return attention_mask.bool() & ~special_tokens_mask.bool()


def _at_least_one(selected: Tensor, eligible: Tensor) -> Tensor:
    """Select one random eligible token in rows where nothing was selected."""
    empty = ~selected.any(dim=1) & eligible.any(dim=1)
    if bool(empty.any()):
        scores = torch.rand(eligible.shape, device=eligible.device).masked_fill(~eligible, -1.0)
        pick = torch.zeros_like(selected).scatter_(1, scores.argmax(dim=1, keepdim=True), True)
        selected = selected | (pick & empty[:, None])
    return selected


def corrupt_80_10_10(
    input_ids: Tensor,
    selected: Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    first_regular_id: int,
) -> Tensor:
    """Selected tokens -> ``[MASK]`` 80 %, a random regular token 10 %, unchanged 10 %."""
    u = torch.rand(input_ids.shape, device=input_ids.device)
    device = input_ids.device
    random_ids = torch.randint(first_regular_id, vocab_size, input_ids.shape, device=device)
    out = torch.where(selected & (u < 0.8), torch.full_like(input_ids, mask_token_id), input_ids)
    return torch.where(selected & (u >= 0.8) & (u < 0.9), random_ids, out)


def random_token_mask(
    input_ids: Tensor,
    eligible: Tensor,
    *,
    probability: float,
    mask_token_id: int,
    vocab_size: int,
    first_regular_id: int,
    targets: Tensor | None = None,
) -> TokenMask:
    """BERT masking: select eligible tokens w.p. ``probability``, 80/10/10.

    Labels are ``targets`` (default ``input_ids``) at selected positions: pass the clean ids
    when ``input_ids`` is a perturbed text.
    """
    selected = (torch.rand(input_ids.shape, device=input_ids.device) < probability) & eligible
    selected = _at_least_one(selected, eligible)
    corrupted = corrupt_80_10_10(
        input_ids,
        selected,
        mask_token_id=mask_token_id,
        vocab_size=vocab_size,
        first_regular_id=first_regular_id,
    )
    targets = input_ids if targets is None else targets
    labels = torch.where(selected, targets, torch.full_like(input_ids, IGNORE_INDEX))
    return TokenMask(corrupted, labels)


def perturbation_aware_token_mask(
    clean_ids: Tensor,
    perturbed_ids: Tensor,
    changed: Tensor,
    eligible: Tensor,
    *,
    probability: float,
    changed_probability: float,
    mask_token_id: int,
    vocab_size: int,
    first_regular_id: int,
) -> TokenMask:
    """Mask changed tokens w.p. ``changed_probability``, the rest randomly up to ``probability``.

    Args:
        clean_ids: ``[B, L]`` original ids (the targets).
        perturbed_ids: ``[B, L]`` length-preserving perturbation of ``clean_ids`` (the input).
        changed: bool ``[B, L]``, where ``perturbed_ids`` differs in meaning from the clean text.
        eligible: bool ``[B, L]`` from :func:`eligible_tokens`.
    """
    changed = changed.bool() & eligible
    shape, device = clean_ids.shape, clean_ids.device
    pick_changed = changed & (torch.rand(shape, device=device) < changed_probability)
    unchanged = eligible & ~changed
    budget = probability * eligible.sum(1) - pick_changed.sum(1)
    p_rest = (budget / unchanged.sum(1).clamp(min=1)).clamp(0.0, 1.0)
    pick_rest = unchanged & (torch.rand(shape, device=device) < p_rest[:, None])
    selected = _at_least_one(pick_changed | pick_rest, eligible)
    corrupted = corrupt_80_10_10(
        perturbed_ids,
        selected,
        mask_token_id=mask_token_id,
        vocab_size=vocab_size,
        first_regular_id=first_regular_id,
    )
    labels = torch.where(selected, clean_ids, torch.full_like(clean_ids, IGNORE_INDEX))
    return TokenMask(corrupted, labels)
