"""Image-text pair datasets over a manifest and the image cache, and their collation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from robust_mmr_pipeline.engine.data import ImageCache

# the cross-entropy ignore index (model.masking.IGNORE_INDEX; engine does not import model)
IGNORE_INDEX = -100


def domain_vocabulary(domains: Iterable[Any]) -> dict[str, int]:
    """Sorted unique domain names -> consecutive ids."""
    return {name: index for index, name in enumerate(sorted({str(d) for d in domains}))}


class PairDataset(Dataset):
    """Image-text pairs from a manifest, images served from an :class:`ImageCache`.

    ``pairs`` needs ``image_id`` and ``text`` (column names configurable); ``domain`` is
    optional (all zeros without it). ``domains`` maps domain name -> id; by default the sorted
    unique domains of ``pairs``. Domains missing from a given mapping get id -1 (unseen domains
    of a held-out split). ``extra_columns`` are passed through under their own names.

    Item: ``{"pixel_values": uint8 [C, H, W] (a view of the cache), "text": str,
    "domain_id": int, "index": int, **extra}``.
    """

    def __init__(
        self,
        pairs: pd.DataFrame,
        cache: ImageCache,
        *,
        domains: Mapping[str, int] | None = None,
        text_column: str = "text",
        domain_column: str = "domain",
        extra_columns: Sequence[str] = (),
    ) -> None:
        missing = [c for c in ("image_id", text_column, *extra_columns) if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs manifest lacks column(s) {missing}.")
        absent = [i for i in pairs["image_id"].astype(str).unique() if i not in cache]
        if absent:
            raise KeyError(
                f"{len(absent)} image_id(s) of the pairs are not in the image cache "
                f"{cache.cache_dir} (e.g. {absent[:3]}); rebuild the cache with these images."
            )
        self.cache = cache
        self.image_ids = pairs["image_id"].astype(str).tolist()
        self.texts = pairs[text_column].fillna("").astype(str).tolist()
        if domain_column in pairs.columns:
            names = pairs[domain_column].astype(str).tolist()
            self.domains = dict(domains) if domains is not None else domain_vocabulary(names)
            self.domain_ids = [int(self.domains.get(name, -1)) for name in names]
        else:
            self.domains = dict(domains) if domains is not None else {}
            self.domain_ids = [0] * len(self.image_ids)
        self.extra = {column: pairs[column].tolist() for column in extra_columns}

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pixel_values": self.cache.tensor(self.image_ids[index]),
            "text": self.texts[index],
            "domain_id": self.domain_ids[index],
            "index": int(index),
        }
        for column, values in self.extra.items():
            item[column] = values[index]
        return item


class PairCollator:
    """Batch pair items: tokenise texts in one call, scale images to float [0, 1].

    Output: ``pixel_values`` float32 ``[B, C, H, W]``, ``input_ids`` / ``attention_mask`` /
    ``special_tokens_mask`` long ``[B, L]``, ``domain_ids`` long ``[B]``, ``indices`` long
    ``[B]``; extra numeric fields become tensors, others lists. ``padding``: ``"max_length"``
    (fixed ``L = max_length``) or ``"longest"`` (pad to the longest text of the batch).

    ``text_degrader`` (e.g. Robust-MMR's ``model.views.TextDegrader``): ``texts -> (degraded
    texts, severities)``; its output is tokenised the same way into ``degraded_input_ids`` /
    ``degraded_attention_mask`` / ``degraded_special_tokens_mask`` plus ``degraded_severity``
    long ``[B]`` (string-level perturbations must happen before tokenisation), and
    ``degraded_clean_targets`` long ``[B, L']`` (:func:`align_clean_targets`: the clean token
    each degraded position restores, ``-100`` where none aligns).
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 64,
        padding: str = "max_length",
        text_degrader: Any = None,
    ) -> None:
        if padding not in ("max_length", "longest"):
            raise ValueError(f"padding must be 'max_length' or 'longest', got {padding!r}")
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.padding = padding
        self.text_degrader = text_degrader

    def _encode(self, texts: list[str]) -> Any:
        return self.tokenizer(
            texts,
            max_length=self.max_length,
            padding=self.padding,
            truncation=True,
            return_special_tokens_mask=True,
            return_attention_mask=True,
            return_tensors="pt",
        )

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        texts = [item["text"] for item in items]
        encoded = self._encode(texts)
        images = torch.stack([item["pixel_values"] for item in items])
        batch: dict[str, Any] = {
            "pixel_values": images.to(torch.float32).div_(255.0),
            "input_ids": encoded["input_ids"].long(),
            "attention_mask": encoded["attention_mask"].long(),
            "special_tokens_mask": encoded["special_tokens_mask"].long(),
            "domain_ids": torch.tensor([int(item["domain_id"]) for item in items]),
            "indices": torch.tensor([int(item["index"]) for item in items]),
        }
        if self.text_degrader is not None:
            degraded, severity = self.text_degrader(texts)
            encoded = self._encode(degraded)
            for key in ("input_ids", "attention_mask", "special_tokens_mask"):
                batch[f"degraded_{key}"] = encoded[key].long()
            batch["degraded_severity"] = torch.tensor(severity, dtype=torch.long)
            batch["degraded_clean_targets"] = align_clean_targets(
                batch["input_ids"],
                _regular(batch["attention_mask"], batch["special_tokens_mask"]),
                batch["degraded_input_ids"],
                _regular(batch["degraded_attention_mask"], batch["degraded_special_tokens_mask"]),
            )
        known = {"pixel_values", "text", "domain_id", "index"}
        for key in items[0]:
            if key in known:
                continue
            values = [item[key] for item in items]
            batch[key] = _collate_values(values)
        return batch


def _regular(attention_mask: Tensor, special_tokens_mask: Tensor) -> Tensor:
    return attention_mask.bool() & ~special_tokens_mask.bool()


def align_clean_targets(
    clean_ids: Tensor, clean_regular: Tensor, degraded_ids: Tensor, degraded_regular: Tensor
) -> Tensor:
    """The clean token each degraded token should predict (degraded-text MLM targets).

    Per row, the regular (attended, non-special) tokens of the degraded text are aligned with
    the clean text's: ``equal`` blocks align one to one, a ``replace`` of one token by one
    token position to position (a swapped synonym or abbreviated word predicts its clean
    token); inserted, deleted and other replaced tokens get no target. Longer equal-length
    replace blocks are left out on purpose: on SynthRad reports they paired the subword pieces
    of different words by coincidence of count (``w ##n ##l`` -> ``within normal limits``) and
    the words of moved sentences with unrelated ones (``sentence_order``: ``aorta`` ->
    ``spleen``), i.e. noise targets.

    Args:
        clean_ids: long ``[B, L]``; clean_regular: bool ``[B, L]``.
        degraded_ids: long ``[B, L']``; degraded_regular: bool ``[B, L']``.

    Returns:
        long ``[B, L']``: clean token ids, ``-100`` where unaligned, special or padding.
    """
    targets = torch.full_like(degraded_ids, IGNORE_INDEX)
    for row in range(degraded_ids.shape[0]):
        clean_pos = clean_regular[row].nonzero()[:, 0]
        degraded_pos = degraded_regular[row].nonzero()[:, 0]
        # stdlib difflib: a per-row diff of <= max_length ids on CPU needs no dependency;
        # autojunk off, or frequent tokens of long texts would never match
        matcher = SequenceMatcher(
            None,
            degraded_ids[row, degraded_pos].tolist(),
            clean_ids[row, clean_pos].tolist(),
            autojunk=False,
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1 == 1):
                targets[row, degraded_pos[i1:i2]] = clean_ids[row, clean_pos[j1:j2]]
    return targets


def _collate_values(values: list[Any]) -> Any:
    if all(isinstance(v, torch.Tensor) for v in values):
        return torch.stack(values)
    if all(isinstance(v, bool | int | np.integer) for v in values):
        return torch.tensor([int(v) for v in values], dtype=torch.long)
    if all(isinstance(v, float | int | np.floating | np.integer) for v in values):
        return torch.tensor([float(v) for v in values], dtype=torch.float32)
    return values
