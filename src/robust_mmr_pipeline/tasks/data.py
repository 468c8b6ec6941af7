"""Task datasets and collation on top of the engine's image cache and pair collator.

Rows (pandas frames, one row per sample; images come from an
:class:`~robust_mmr_pipeline.engine.ImageCache`):

=================  =====================================================================
VQA                ``image_id, question, answer, answer_type`` (+ optional ``domain``,
                   ``modality``)
classification     ``image_id, text, label`` (+ optional ``domain``, ``modality``)
retrieval          ``image_id, text`` (pairs; several texts may share an image)
=================  =====================================================================

Labels: the class index in a vocabulary built from TRAIN rows only (:func:`answer_vocabulary`,
:func:`label_vocabulary`); a value outside it gets :data:`OOV_LABEL` (-100). The loss ignores
such rows; the metrics count them as wrong (never dropped). VQA answers are normalised with
:func:`robust_mmr_pipeline.sources.answers.normalize_answer` before the lookup.

Batches (:class:`TaskCollator`, built on :class:`~robust_mmr_pipeline.engine.PairCollator`):
``pixel_values`` float32 ``[B, C, H, W]`` in [0, 1], ``input_ids`` / ``attention_mask`` /
``special_tokens_mask`` long ``[B, L]``, ``domain_ids`` / ``indices`` long ``[B]`` and the task
fields: ``labels`` long ``[B]``, ``answer_type_ids`` long ``[B]`` (VQA: 0 closed, 1 open),
``group_ids`` / ``text_group_ids`` long ``[B]`` (retrieval: index of the image / text).

Perturbed test sets: an :class:`ImagePerturbation` / :class:`TextPerturbation` given to the
collator perturbs every sample on the fly with the perturbation library
(:mod:`robust_mmr_pipeline.perturb`), seeded per sample by ``(seed, dataset index)``: the
perturbed set is the same whatever the batch size, order or number of processes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from robust_mmr_pipeline.engine.data import ImageCache
from robust_mmr_pipeline.engine.pairs import PairCollator, PairDataset
from robust_mmr_pipeline.seeding import stride_seed
from robust_mmr_pipeline.sources.answers import normalize_answer, normalize_answer_type
from robust_mmr_pipeline.tasks.metrics import OOV_LABEL

ANSWER_TYPE_IDS: dict[str, int] = {"closed": 0, "open": 1}


def item_seed(seed: int, index: int) -> int:
    """Seed of sample ``index`` of a perturbed set: ``(seed · 1000003 + index) mod 2^63``."""
    return stride_seed(seed, index)


# --------------------------------------------------------------------------- vocabularies


def _vocabulary(values: Iterable[str], min_count: int) -> dict[str, int]:
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    counts = Counter(v for v in values if v)
    kept = sorted((v for v, n in counts.items() if n >= min_count), key=lambda v: (-counts[v], v))
    return {value: index for index, value in enumerate(kept)}


def _train_column(rows: pd.DataFrame | Iterable[Any], column: str) -> list[Any]:
    if isinstance(rows, pd.DataFrame):
        if "split" in rows.columns:
            splits = set(rows["split"].astype(str))
            if splits - {"train"}:
                raise ValueError(
                    f"the {column} vocabulary must come from training rows only; got splits "
                    f"{sorted(splits)} (val / test values would leak into the classifier)"
                )
        if column not in rows.columns:
            raise ValueError(f"rows lack the column {column!r}")
        return rows[column].tolist()
    return list(rows)


def answer_vocabulary(
    train_rows: pd.DataFrame | Iterable[Any], min_count: int = 1
) -> dict[str, int]:
    """Normalised answer -> class index from TRAIN rows (a frame with ``answer`` or answers).

    Ordered by decreasing frequency then alphabetically (deterministic). A frame with a
    ``split`` column must hold train rows only.
    """
    answers = _train_column(train_rows, "answer")
    return _vocabulary((normalize_answer(a) for a in answers), min_count)


def label_vocabulary(train_rows: pd.DataFrame | Iterable[Any]) -> dict[str, int]:
    """Label -> class index from TRAIN rows (a frame with ``label`` or labels), sorted."""
    labels = sorted({str(v) for v in _train_column(train_rows, "label")})
    return {label: index for index, label in enumerate(labels)}


def encode_labels(
    values: Iterable[Any],
    vocabulary: Mapping[str, int],
    normalize: Callable[[Any], str] = str,
) -> list[int]:
    """Class index of each value, :data:`OOV_LABEL` for values outside ``vocabulary``."""
    return [int(vocabulary.get(normalize(v), OOV_LABEL)) for v in values]


def answer_type_ids(values: Iterable[Any]) -> list[int]:
    """``closed`` -> 0, ``open`` -> 1 (published spellings accepted); others raise."""
    out = []
    for value in values:
        kind = normalize_answer_type(value)
        if kind is None:
            raise ValueError(f"answer_type must be 'closed' or 'open', got {value!r}")
        out.append(ANSWER_TYPE_IDS[kind])
    return out


# --------------------------------------------------------------------------- perturbations


def _library_perturb_image(*args: Any, **kwargs: Any) -> Tensor:
    from robust_mmr_pipeline.perturb import perturb_image

    return perturb_image(*args, **kwargs)


def _library_perturb_text(*args: Any, **kwargs: Any) -> str:
    from robust_mmr_pipeline.perturb import perturb_text

    return perturb_text(*args, **kwargs)


@dataclass(frozen=True)
class ImagePerturbation:
    """One image corruption at one severity for a whole evaluation set.

    ``fn`` defaults to ``robust_mmr_pipeline.perturb.perturb_image`` (imported on first use);
    any function with its signature works.
    """

    name: str
    severity: int
    seed: int = 0
    fn: Callable[..., Tensor] | None = None

    def __post_init__(self) -> None:
        if not 0 <= int(self.severity) <= 5:
            raise ValueError(f"severity must be in 0..5, got {self.severity}")

    def apply(
        self,
        images: Tensor,
        indices: Sequence[int] | Tensor,
        modalities: Sequence[Any] | None = None,
    ) -> Tensor:
        """Perturb ``images`` float ``[B, C, H, W]`` in [0, 1] -> same shape.

        Sample b is drawn with a CPU generator seeded ``item_seed(seed, indices[b])``
        (identical on every device); ``modalities[b]`` (a string, else ignored) is passed on
        for modality-tagged corruptions.
        """
        fn = self.fn or _library_perturb_image
        index_list = [
            int(i) for i in (indices.tolist() if isinstance(indices, Tensor) else indices)
        ]
        if len(index_list) != images.shape[0]:
            raise ValueError(f"{len(index_list)} indices for {images.shape[0]} images")
        out = []
        for b, index in enumerate(index_list):
            generator = torch.Generator().manual_seed(item_seed(self.seed, index))
            kwargs: dict[str, Any] = {}
            modality = modalities[b] if modalities is not None else None
            if isinstance(modality, str) and modality:
                kwargs["modality"] = modality
            out.append(fn(images[b : b + 1], self.name, int(self.severity), generator, **kwargs))
        return torch.cat(out) if out else images.clone()


@dataclass(frozen=True)
class TextPerturbation:
    """One text perturbation at one severity; ``fn`` defaults to ``perturb.perturb_text``."""

    name: str
    severity: int
    seed: int = 0
    fn: Callable[..., str] | None = None

    def __post_init__(self) -> None:
        if not 0 <= int(self.severity) <= 5:
            raise ValueError(f"severity must be in 0..5, got {self.severity}")

    def apply(self, texts: Sequence[str], indices: Sequence[int] | Tensor) -> list[str]:
        """Perturbed copy of ``texts``; text b seeded by ``item_seed(seed, indices[b])``."""
        fn = self.fn or _library_perturb_text
        index_list = [
            int(i) for i in (indices.tolist() if isinstance(indices, Tensor) else indices)
        ]
        if len(index_list) != len(texts):
            raise ValueError(f"{len(index_list)} indices for {len(texts)} texts")
        if int(self.severity) == 0:
            return list(texts)
        return [
            fn(text, self.name, int(self.severity), item_seed(self.seed, index))
            for text, index in zip(texts, index_list, strict=True)
        ]


# --------------------------------------------------------------------------- datasets


def _optional(rows: pd.DataFrame, names: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in names if n in rows.columns)


class VQADataset(PairDataset):
    """VQA rows over an image cache. Item: PairDataset's + ``label``, ``answer_type_id``.

    ``vocabulary`` is the TRAIN answer vocabulary (:func:`answer_vocabulary`); answers outside
    it get ``label = OOV_LABEL``. ``modality`` is passed through when present (modality-tagged
    image perturbations).
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        cache: ImageCache,
        vocabulary: Mapping[str, int],
        *,
        domains: Mapping[str, int] | None = None,
    ) -> None:
        missing = [c for c in ("answer", "answer_type") if c not in rows.columns]
        if missing:
            raise ValueError(f"VQA rows lack column(s) {missing}")
        super().__init__(
            rows,
            cache,
            domains=domains,
            text_column="question",
            extra_columns=_optional(rows, ("modality",)),
        )
        self.vocabulary = dict(vocabulary)
        self.answers = [normalize_answer(a) for a in rows["answer"]]
        self.labels = encode_labels(self.answers, self.vocabulary)
        self.answer_types = answer_type_ids(rows["answer_type"])

    @property
    def num_out_of_vocabulary(self) -> int:
        """Rows whose answer is not in the vocabulary (counted wrong by the metrics)."""
        return sum(label == OOV_LABEL for label in self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["label"] = self.labels[index]
        item["answer_type_id"] = self.answer_types[index]
        return item


class ClassificationDataset(PairDataset):
    """Image + text -> label rows (MELINDA-style). Item: PairDataset's + ``label``."""

    def __init__(
        self,
        rows: pd.DataFrame,
        cache: ImageCache,
        vocabulary: Mapping[str, int],
        *,
        domains: Mapping[str, int] | None = None,
        text_column: str = "text",
    ) -> None:
        if "label" not in rows.columns:
            raise ValueError("classification rows lack the column 'label'")
        super().__init__(
            rows,
            cache,
            domains=domains,
            text_column=text_column,
            extra_columns=_optional(rows, ("modality",)),
        )
        self.vocabulary = dict(vocabulary)
        self.labels = encode_labels(rows["label"], self.vocabulary)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["label"] = self.labels[index]
        return item


class RetrievalPairDataset(PairDataset):
    """Image–text pairs for retrieval fine-tuning.

    Item: PairDataset's + ``group_id`` (index of the pair's image among the unique image ids)
    and ``text_group_id`` (index of its text among the unique texts), both in first-seen
    order: pairs with the same image or the same text are not each other's negatives.
    """

    def __init__(
        self,
        pairs: pd.DataFrame,
        cache: ImageCache,
        *,
        domains: Mapping[str, int] | None = None,
        text_column: str = "text",
    ) -> None:
        super().__init__(
            pairs,
            cache,
            domains=domains,
            text_column=text_column,
            extra_columns=_optional(pairs, ("modality",)),
        )
        first_seen: dict[str, int] = {}
        self.group_ids = [first_seen.setdefault(i, len(first_seen)) for i in self.image_ids]
        texts_seen: dict[str, int] = {}
        self.text_group_ids = [texts_seen.setdefault(t, len(texts_seen)) for t in self.texts]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = super().__getitem__(index)
        item["group_id"] = self.group_ids[index]
        item["text_group_id"] = self.text_group_ids[index]
        return item


_RENAMES = {
    "label": "labels",
    "answer_type_id": "answer_type_ids",
    "group_id": "group_ids",
    "text_group_id": "text_group_ids",
}


class TaskCollator:
    """PairCollator + task fields + optional on-the-fly perturbations (see module docstring).

    Text perturbation runs on the raw strings before tokenisation, image perturbation on the
    float images after scaling to [0, 1]; both seeded per dataset index.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 64,
        padding: str = "max_length",
        *,
        image_perturbation: ImagePerturbation | None = None,
        text_perturbation: TextPerturbation | None = None,
    ) -> None:
        self.pairs = PairCollator(tokenizer, max_length=max_length, padding=padding)
        self.image_perturbation = image_perturbation
        self.text_perturbation = text_perturbation

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.text_perturbation is not None:
            texts = self.text_perturbation.apply(
                [str(i["text"]) for i in items], [int(i["index"]) for i in items]
            )
            items = [{**item, "text": text} for item, text in zip(items, texts, strict=True)]
        batch = self.pairs(items)
        for old, new in _RENAMES.items():
            if old in batch:
                batch[new] = batch.pop(old)
        if self.image_perturbation is not None:
            modalities = batch.get("modality")
            if not isinstance(modalities, list):
                modalities = None
            batch["pixel_values"] = self.image_perturbation.apply(
                batch["pixel_values"], batch["indices"], modalities
            )
        return batch
