"""Ingestion nodes: thin wrappers over ``robust_mmr_pipeline.sources``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
from robust_mmr_pipeline.sources.ingest import ingest_all


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
