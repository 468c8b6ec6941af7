"""Validation nodes: thin wrappers over ``robust_mmr_pipeline.validation``."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.validation.params import ValidationParams
from robust_mmr_pipeline.validation.images import check_images
from robust_mmr_pipeline.validation.report import (
    raise_if_fatal,
    render_html,
    render_markdown,
    write_report,
)
from robust_mmr_pipeline.validation.run import validate_all

logger = logging.getLogger(__name__)


def _params(parameters: dict[str, Any] | None) -> ValidationParams:
    return parse(ValidationParams, parameters, "validation")


def check_image_files(
    images: pd.DataFrame, image_roots: dict[str, str], parameters: dict[str, Any]
) -> pd.DataFrame:
    """One row per image: does the file exist and decode, its size, mode, bytes, error."""
    opts = _params(parameters).images
    return check_images(
        images,
        image_roots,
        workers=opts.workers,
        chunksize=opts.chunksize,
        min_parallel=opts.min_parallel,
        full_decode=opts.full_decode,
        max_pixels=opts.max_pixels,
    )


def validate_tables(
    images: pd.DataFrame,
    pairs: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    rejects: pd.DataFrame,
    image_checks: pd.DataFrame,
    phi_warnings: pd.DataFrame,
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """Run every expectation suite (Great Expectations) and gather the results and summaries."""
    tables = {
        "images": images,
        "pairs": pairs,
        "vqa": vqa,
        "classification": classification,
        "rejects": rejects,
    }
    return validate_all(tables, image_checks, phi_warnings, _params(parameters))


def write_validation_report(
    validation_results: dict[str, Any], parameters: dict[str, Any]
) -> tuple[dict[str, Any], str, str]:
    """Write the Markdown/HTML report and JSON summary, then stop the run on a fatal failure.

    The files are written by this node itself (into ``validation.report_dir``) before the
    DataValidationError is raised, so the report is there to read when the run stops; on
    success the same content is returned to the catalog (validation_summary,
    validation_report_md, validation_report_html).
    """
    params = _params(parameters)
    markdown = render_markdown(validation_results)
    html = render_html(validation_results)
    paths = write_report(validation_results, markdown, html, params.report_dir)
    raise_if_fatal(validation_results, paths)
    if validation_results["warnings"]:
        logger.warning(
            "Validation passed with %d warning(s); see %s.",
            validation_results["warnings"],
            paths["markdown"],
        )
    return validation_results, markdown, html
