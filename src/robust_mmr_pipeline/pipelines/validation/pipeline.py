"""Validation: the unified tables -> Great Expectations suites -> report; stops on fatal data.

The PHI findings (phi_warnings) come from ingestion's guard, which ran before any table was
written; validation reports them (the phi / phi_opted_out checks)."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.validation.nodes import (
    check_image_files,
    validate_tables,
    write_validation_report,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                check_image_files,
                inputs=["images", "image_roots", "params:validation"],
                outputs="image_checks",
                name="check_image_files",
            ),
            node(
                validate_tables,
                inputs=[
                    "images",
                    "pairs",
                    "vqa",
                    "classification",
                    "rejects",
                    "image_checks",
                    "phi_warnings",
                    "params:validation",
                ],
                outputs="validation_results",
                name="validate_tables",
            ),
            node(
                write_validation_report,
                inputs=["validation_results", "params:validation"],
                outputs=["validation_summary", "validation_report_md", "validation_report_html"],
                name="write_validation_report",
            ),
        ]
    )
