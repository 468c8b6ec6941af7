"""Ingestion nodes: thin wrappers over ``robust_mmr_pipeline.sources``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
from robust_mmr_pipeline.schema import PRIMARY_KEYS
from robust_mmr_pipeline.sources.ingest import ingest_all
from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.phi import QUARANTINED, guard_tables

logger = logging.getLogger(__name__)


def ingest_sources(
    parameters: dict[str, Any], max_image_pixels: int, min_image_side: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Read every configured source into the unified tables (+ rejects and image roots);
    images above ``max_image_pixels`` (validation.images.max_pixels) or with a side below
    ``min_image_side`` (validation.images.min_side) are bad records."""
    params = parse(IngestionParams, parameters, "ingestion")
    tables, roots = ingest_all(
        params.sources,
        params.on_bad_record,
        params.bad_fraction_of,
        int(max_image_pixels),
        int(min_image_side),
    )
    return (tables.images, tables.pairs, tables.vqa, tables.classification, tables.rejects, roots)


def guard_phi(
    pairs: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    phi: dict[str, Any],
    text_length: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The PHI guard, before any table is written: records whose texts hold identifiers are
    quarantined (left out of pairs / vqa / classification) unless their source is opted out
    (``validation.phi.allowed_sources``); the findings, masked, are the phi_warnings table."""
    params = parse(ValidationParams, {"phi": phi, "text_length": text_length}, "validation")
    tables = {"pairs": pairs, "vqa": vqa, "classification": classification}
    guarded, findings = guard_tables(
        tables,
        {name: list(params.text_columns(name)) for name in tables},
        {name: PRIMARY_KEYS[name] for name in tables},
        params.phi.patterns(),
        params.phi.allowed_sources,
    )
    quarantined = findings[findings["action"] == QUARANTINED]
    if len(quarantined):
        per_source = quarantined.drop_duplicates(["table", "id"])["source"].value_counts()
        logger.warning(
            "PHI guard: %d table row(s) hold identifiers (%s) and were quarantined: they are in no "
            "table (listed, masked, in phi_warnings.csv). De-identify them in the source, or opt "
            "a published / consented source out with validation.phi.allowed_sources.",
            int(per_source.sum()),
            ", ".join(f"{source} {count}" for source, count in per_source.items()),
        )
    return guarded["pairs"], guarded["vqa"], guarded["classification"], findings


def summarise_ingestion(
    images: pd.DataFrame,
    pairs: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    rejects: pd.DataFrame,
) -> dict[str, Any]:
    """Counts per table, source and domain; the rejected records per source and reason."""
    return {
        "rows": {
            "images": len(images),
            "pairs": len(pairs),
            "vqa": len(vqa),
            "classification": len(classification),
            "rejects": len(rejects),
        },
        "images_per_source": images.groupby("source").size().to_dict(),
        "images_per_domain": images.groupby("domain").size().to_dict(),
        "vqa_per_split": vqa.groupby("split").size().to_dict(),
        "rejects_per_source": rejects.groupby("source").size().to_dict(),
        "rejects_per_reason": rejects.groupby("reason").size().to_dict(),
    }
