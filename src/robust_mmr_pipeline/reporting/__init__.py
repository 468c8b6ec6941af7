"""Reporting: robustness report tables, plots and their Markdown / HTML rendering.

Plain Python + pandas + matplotlib (no Kedro, no torch). The evaluation pipeline hands over a
long results table (one row per task x condition x metric, see
:data:`robust_mmr_pipeline.reporting.robustness.RESULT_COLUMNS`) and gets back figures and
report text.
"""

from robust_mmr_pipeline.reporting.robustness import (
    RESULT_COLUMNS,
    SEVERITY_COLUMNS,
    domain_figure,
    figure_to_base64,
    flat_metrics,
    mce_against,
    metrics_summary,
    render_html,
    render_markdown,
    retrieval_figure,
    severity_figure,
    severity_table,
)

__all__ = [
    "RESULT_COLUMNS",
    "SEVERITY_COLUMNS",
    "domain_figure",
    "figure_to_base64",
    "flat_metrics",
    "mce_against",
    "metrics_summary",
    "render_html",
    "render_markdown",
    "retrieval_figure",
    "severity_figure",
    "severity_table",
]
