"""Ingestion: SynthRad and/or published datasets -> the unified tables (schema.py)."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.ingestion.nodes import ingest_sources, summarise_ingestion


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
                outputs=["images", "pairs", "vqa", "classification", "rejects", "image_roots"],
                name="ingest_sources",
            ),
            node(
                summarise_ingestion,
                inputs=["images", "pairs", "vqa", "classification", "rejects"],
                outputs="ingestion_summary",
                name="summarise_ingestion",
            ),
        ]
    )
