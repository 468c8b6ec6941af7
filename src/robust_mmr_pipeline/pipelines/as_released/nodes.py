"""as_released nodes: the branch's parameters, its MLflow run and the benchmark page."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.as_released.params import PROTOCOL, AsReleasedParams
from robust_mmr_pipeline.reporting import references as published


def configure_as_released(
    as_released: dict[str, Any], finetune: dict[str, Any], evaluation: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finetune / evaluation parameters of the branch (saved beside its checkpoints)."""
    params = parse(AsReleasedParams, as_released, "as_released")
    return params.sections(finetune, evaluation)


def in_branch_run(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` run inside the MLflow child run ``as_released`` (so its metrics and report do
    not overwrite the main evaluation's under the same keys)."""
    from robust_mmr_pipeline.pipelines.ablation.nodes import mlflow_child_run

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        with mlflow_child_run(PROTOCOL, {"protocol": PROTOCOL}):
            return func(*args)

    return wrapper


def _counts_line(split_summary: pd.DataFrame) -> str:
    rows = split_summary[split_summary["protocol"].isin(("in_domain", "cross_domain", PROTOCOL))]
    if rows.empty:
        return ""
    table = rows.groupby(["protocol", "split"], sort=False)[["images", "vqa", "overlap_images"]]
    parts = [
        f"{protocol} {split}: {int(r['images'])} images, {int(r['vqa'])} questions"
        + (
            f" ({int(r['overlap_images'])} images also in another split)"
            if r["overlap_images"]
            else ""
        )
        for (protocol, split), r in table.sum().iterrows()
    ]
    return "Split counts: " + "; ".join(parts) + "."


def published_benchmark(
    evaluation_results: pd.DataFrame,
    as_released_results: pd.DataFrame,
    domain_split_summary: pd.DataFrame,
    references: dict[str, Any],
    ingestion: dict[str, Any],
) -> tuple[pd.DataFrame, str, str]:
    """Our clean test numbers under the image-disjoint protocols and as released, beside the
    published references of the ingested datasets (a table, its Markdown and HTML page)."""
    rows = published.reference_rows(references, ingestion)
    table = published.benchmark_table([evaluation_results, as_released_results], rows)
    markdown, html = published.benchmark_reports(table, rows, _counts_line(domain_split_summary))
    return table, markdown, html
