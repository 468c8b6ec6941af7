"""Length-preserving token-level perturbations on device, for the Robust-MMR training step.

``perturb_token_ids`` changes a severity-dependent fraction of the ordinary tokens of a batch
of token ids, leaving special tokens ([CLS], [SEP], [PAD], ...) and padding untouched, and
returns which positions changed so the objective can mask them (targets stay the clean ids).

Kinds of change (one drawn uniformly per chosen position among ``kinds``):

- ``replace``: a random vocabulary id, never the original one (typo-like); ``excluded_ids``
  (e.g. ``tokenizer.all_special_ids``) are never drawn.
- ``dropout``: the ``dropout_token_id`` (the tokenizer's [UNK] or [MASK] id).
- ``swap``: exchange with the next token when that one is ordinary and not chosen itself;
  otherwise the position falls back to ``replace``.

=========  ====================================
severity   fraction of ordinary tokens chosen
=========  ====================================
1 .. 5     0.05  0.10  0.15  0.20  0.30
=========  ====================================

The fractions match the text ``word_dropout`` table (a token is about a word piece).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from robust_mmr_pipeline.perturb.base import random_tensor, severity_tensor, table_lookup

TOKEN_FRACTIONS = (0.05, 0.10, 0.15, 0.20, 0.30)
TOKEN_KINDS: tuple[str, ...] = ("replace", "dropout", "swap")
DEFAULT_TOKEN_KINDS: tuple[str, ...] = ("replace", "swap")


def _allowed_ids(
    vocab_size: int, excluded_ids: Sequence[int] | None, device: torch.device
) -> torch.Tensor:
    """Sorted long tensor of the ids ``replace`` may draw."""
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=device)
    if excluded_ids is not None:
        excluded = torch.as_tensor(list(excluded_ids), dtype=torch.long, device=device)
        excluded = excluded[(excluded >= 0) & (excluded < vocab_size)]
        allowed[excluded] = False
    ids = allowed.nonzero().squeeze(1)
    if ids.numel() < 2:
        raise ValueError("replace needs at least two allowed vocabulary ids")
    return ids


def _flags(mask: torch.Tensor, like: torch.Tensor, what: str) -> torch.Tensor:
    """``mask`` as long on ``like``'s device, after checking it has ``like``'s shape."""
    if mask.shape != like.shape:
        raise ValueError(f"{what} must have shape {list(like.shape)}, got {list(mask.shape)}")
    return mask.to(device=like.device, dtype=torch.long)


@torch.no_grad()
def perturb_token_ids(
    input_ids: torch.Tensor,
    severity: int | torch.Tensor | Sequence[int],
    special_tokens_mask: torch.Tensor | None,
    vocab_size: int,
    generator: torch.Generator | None = None,
    kinds: Sequence[str] = DEFAULT_TOKEN_KINDS,
    *,
    attention_mask: torch.Tensor | None = None,
    dropout_token_id: int | None = None,
    excluded_ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturb a severity-dependent fraction of the ordinary tokens, keeping the length.

    Args:
        input_ids: long ``[B, L]``, any device.
        severity: int 0..5 for the batch or a long tensor / sequence ``[B]``; the fraction of
            ordinary tokens chosen is ``TOKEN_FRACTIONS[severity - 1]`` (0 = unchanged).
        special_tokens_mask: ``[B, L]`` (long or bool), nonzero at special tokens; ``None``
            means no special tokens. Those positions are never changed nor swapped into.
        vocab_size: ids drawn by ``replace`` are in ``[0, vocab_size)``.
        generator: optional ``torch.Generator`` (any device; draws are copied to the ids'
            device); without one, torch's global RNG of that device.
        kinds: subset of ``TOKEN_KINDS``; each chosen position uses one, drawn uniformly.
        attention_mask: optional ``[B, L]``; positions where it is 0 (padding) are left
            alone even if the special-tokens mask does not flag them.
        dropout_token_id: the id ``dropout`` writes (required when ``dropout`` is a kind).
        excluded_ids: ids ``replace`` must never draw (e.g. all special-token ids).

    Returns:
        ``(perturbed_ids, changed_mask)``: long ``[B, L]`` on the same device, and bool
        ``[B, L]``, true where the id differs from ``input_ids`` (a swap marks both
        positions). The random draws do not depend on the severity, so with a fixed seed
        the positions chosen at severity ``s`` include those chosen at ``s - 1``.
    """
    if input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise ValueError("input_ids must be a long tensor [B, L]")
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in TOKEN_KINDS]
    if not kinds or unknown:
        raise ValueError(f"kinds must be a non-empty subset of {TOKEN_KINDS}, got {kinds}")
    if "dropout" in kinds and dropout_token_id is None:
        raise ValueError("kind 'dropout' needs dropout_token_id (the [UNK] or [MASK] id)")
    device = input_ids.device
    batch, length = input_ids.shape
    sev = severity_tensor(severity, batch, device)
    ordinary = torch.ones_like(input_ids, dtype=torch.bool)
    if special_tokens_mask is not None:
        ordinary &= _flags(special_tokens_mask, input_ids, "special_tokens_mask") == 0
    if attention_mask is not None:
        ordinary &= _flags(attention_mask, input_ids, "attention_mask") != 0

    rank = random_tensor("rand", (batch, length), device, generator)
    kind_draw = random_tensor("randint", (batch, length), device, generator, high=len(kinds))
    allowed = _allowed_ids(vocab_size, excluded_ids, device)
    n_allowed = allowed.numel()
    draw = random_tensor("randint", (batch, length), device, generator, high=n_allowed - 1)

    fraction = table_lookup(TOKEN_FRACTIONS, sev, torch.float32)
    fraction = torch.where(sev > 0, fraction, torch.zeros_like(fraction))
    chosen = ordinary & (rank < fraction[:, None])

    # replace: skip over the original id's own slot so the new id always differs.
    slot = torch.searchsorted(allowed, input_ids).clamp(max=n_allowed - 1)
    original_allowed = allowed[slot] == input_ids
    draw = draw + (original_allowed & (draw >= slot)).long()
    replaced = allowed[draw]

    out = input_ids.clone()
    kind_index = {k: i for i, k in enumerate(kinds)}
    wants_replace = torch.zeros_like(chosen)
    if "replace" in kind_index:
        wants_replace |= chosen & (kind_draw == kind_index["replace"])
    if "dropout" in kind_index and dropout_token_id is not None:
        drop = chosen & (kind_draw == kind_index["dropout"])
        out = torch.where(drop, torch.full_like(out, dropout_token_id), out)
    if "swap" in kind_index and length > 1:
        wants_swap = chosen & (kind_draw == kind_index["swap"])
        next_ok = torch.zeros_like(chosen)
        next_ok[:, :-1] = ordinary[:, 1:] & ~chosen[:, 1:]
        swap = wants_swap & next_ok
        wants_replace |= wants_swap & ~swap
        swap_prev = torch.zeros_like(swap)
        swap_prev[:, 1:] = swap[:, :-1]
        next_ids = torch.roll(input_ids, shifts=-1, dims=1)
        prev_ids = torch.roll(input_ids, shifts=1, dims=1)
        out = torch.where(swap, next_ids, out)
        out = torch.where(swap_prev, prev_ids, out)
    elif "swap" in kind_index:
        wants_replace |= chosen & (kind_draw == kind_index["swap"])
    out = torch.where(wants_replace, replaced, out)
    return out, out != input_ids
