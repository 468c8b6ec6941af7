"""Ingestion: SynthRad and/or published datasets -> the unified tables (schema.py)."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.ingestion.nodes import (
    guard_phi,
    ingest_sources,
    summarise_ingestion,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                ingest_sources,
                # one set of image limits for ingestion and validation (validation.images)
                inputs=[
                    "params:ingestion",
                    "params:validation.images.max_pixels",
                    "params:validation.images.min_side",
                ],
                outputs=[
                    "images",
                    "ingested_pairs",
                    "ingested_vqa",
                    "ingested_classification",
                    "rejects",
                    "image_roots",
                ],
                name="ingest_sources",
            ),
            node(
                # before any text table is written: identifiers never reach data/
                guard_phi,
                inputs=[
                    "ingested_pairs",
                    "ingested_vqa",
                    "ingested_classification",
                    "params:validation.phi",
                    "params:validation.text_length",
                ],
                outputs=["pairs", "vqa", "classification", "phi_warnings"],
                name="guard_phi",
            ),
            node(
                summarise_ingestion,
                inputs=["images", "pairs", "vqa", "classification", "rejects"],
                outputs="ingestion_summary",
                name="summarise_ingestion",
            ),
        ]
    )
