"""Domain split nodes: thin wrappers over ``robust_mmr_pipeline.splits``."""

from __future__ import annotations

from typing import Any, Protocol

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.domain_split.params import DomainSplitParams
from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
from robust_mmr_pipeline.splits.inputs import check_validation_summary
from robust_mmr_pipeline.splits.perturbation_sets import (
    BASE_SPLIT,
    perturbation_sets,
    registry_names,
    resolve_perturbations,
)
from robust_mmr_pipeline.splits.protocols import answer_vocabulary, build_splits
from robust_mmr_pipeline.splits.summary import plot_split_counts, split_counts


class SavableFigure(Protocol):
    """What MatplotlibDataset needs of a figure (a matplotlib Figure; matplotlib is imported
    only when the plot node runs, and Kedro resolves node type hints at import)."""

    def savefig(self, fname: Any, **kwargs: Any) -> None: ...


def _params(parameters: dict[str, Any]) -> DomainSplitParams:
    return parse(DomainSplitParams, parameters, "domain_split")


def _selected_perturbations(params: DomainSplitParams) -> tuple[list[str], list[str]]:
    """The image and text perturbation names selected, checked against the registry."""
    image_names, text_names = registry_names()
    return (
        resolve_perturbations(params.image_perturbations, image_names, "image"),
        resolve_perturbations(params.text_perturbations, text_names, "text"),
    )


def split_by_domain(
    *,
    validation_summary: dict[str, Any],
    images: pd.DataFrame,
    pairs: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    parameters: dict[str, Any],
    ingestion: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Refuse unless validation succeeded; then assign images to splits for every protocol
    (the ingestion sources of ``role: corpus`` to the ``pretrain`` protocol only).

    Perturbation names are checked against the registry here too, so a typo fails before any
    manifest is written. Returns split_images, split_pairs, split_vqa, split_classification.
    """
    check_validation_summary(validation_summary)
    params = _params(parameters)
    corpus_sources = parse(IngestionParams, ingestion, "ingestion").corpus_sources
    _selected_perturbations(params)
    manifests = build_splits(
        images,
        pairs,
        vqa,
        classification,
        seed=params.seed,
        fractions=params.fractions,
        held_out_domains=params.held_out_domains,
        leave_one_out_all=params.leave_one_out_all,
        respect_official_splits=params.respect_official_splits,
        carve_val_from_train=params.carve_val_from_train,
        as_released=params.as_released,
        corpus_sources=corpus_sources,
    )
    return manifests.images, manifests.pairs, manifests.vqa, manifests.classification


def build_answer_vocabulary(
    split_images: pd.DataFrame, split_vqa: pd.DataFrame
) -> dict[str, list[str]]:
    """Per protocol, the answers of its train VQA rows (frequency, then alphabetical)."""
    return answer_vocabulary(split_vqa, sorted(split_images["protocol"].unique().tolist()))


def build_perturbation_sets(split_images: pd.DataFrame, parameters: dict[str, Any]) -> pd.DataFrame:
    """The perturbed test sets (manifest rows) of every protocol that has a test split."""
    params = _params(parameters)
    image_names, text_names = _selected_perturbations(params)
    with_test = split_images.loc[split_images["split"] == BASE_SPLIT, "protocol"]
    return perturbation_sets(
        sorted(with_test.unique().tolist()),
        image_names,
        text_names,
        params.severities,
        params.seed,
    )


def summarise_domain_split(
    *,
    images: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    split_images: pd.DataFrame,
    split_pairs: pd.DataFrame,
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
) -> pd.DataFrame:
    """Counts per protocol x split x source x domain, with leak exclusions."""
    return split_counts(
        images=images,
        vqa=vqa,
        classification=classification,
        split_images=split_images,
        split_pairs=split_pairs,
        split_vqa=split_vqa,
        split_classification=split_classification,
    )


def plot_domain_split(domain_split_summary: pd.DataFrame) -> SavableFigure:
    """Grouped bars of image counts per domain and split, one panel per protocol."""
    return plot_split_counts(domain_split_summary)
