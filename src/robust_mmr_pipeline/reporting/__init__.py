"""Reporting: robustness, ablation and validation report tables, plots and rendering.

Plain Python + pandas + matplotlib + jinja2 (no Kedro, no torch). The evaluation pipeline hands
over a long results table (one row per task x scorer x condition x metric, see
:data:`robust_mmr_pipeline.reporting.results.RESULT_COLUMNS`) and gets back summaries,
figures and report text rendered from one template (:mod:`.render`).
"""

from robust_mmr_pipeline.reporting.figures import (
    domain_figure,
    retrieval_figure,
    severity_figure,
    validation_figure,
)
from robust_mmr_pipeline.reporting.markdown import markdown_table
from robust_mmr_pipeline.reporting.render import figure_to_base64, render
from robust_mmr_pipeline.reporting.results import OURS, RESULT_COLUMNS, SEVERITY_COLUMNS
from robust_mmr_pipeline.reporting.robustness import perturbation_families_section, render_report
from robust_mmr_pipeline.reporting.summary import (
    flat_metrics,
    mce_against,
    metrics_summary,
    severity_table,
    verdicts,
)

__all__ = [
    "OURS",
    "RESULT_COLUMNS",
    "SEVERITY_COLUMNS",
    "domain_figure",
    "figure_to_base64",
    "flat_metrics",
    "markdown_table",
    "mce_against",
    "metrics_summary",
    "perturbation_families_section",
    "render",
    "render_report",
    "retrieval_figure",
    "severity_figure",
    "severity_table",
    "validation_figure",
    "verdicts",
]
