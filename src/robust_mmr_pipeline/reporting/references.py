"""Published reference results, as labelled rows beside our own numbers.

The references are data (``conf/base/parameters_references.yml``, ``params:references``): per
dataset kind, the model, the task, its metrics, the split it was measured on and the citation.
They come from models at a different scale (ViT-B / BERT-base backbones pre-trained on large
caption corpora with GPU budgets) and are comparable with our ``as_released`` protocol only
(the official split as published), never with the image-disjoint protocols.

:func:`reference_rows` selects the references of the datasets a run ingested;
:func:`references_section` makes them a section of the shared report template;
:func:`benchmark_table` puts our clean test numbers of every protocol beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

REFERENCE_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "task",
    "protocol",
    "metric",
    "value",
    "split",
    "source",
    "label",
)
DEFAULT_NOTE = "reference at a different scale"
# The clean test conditions of our results, in table order, and their column titles.
CONDITIONS: dict[str, str] = {
    "in_domain": "in-domain (image-disjoint)",
    "cross_domain": "cross-domain (held-out domain)",
    "as_released": "as released (official split)",
}


@dataclass(frozen=True)
class PublishedResult:
    """One published result: ``metrics`` are fractions in [0, 1] (our metric names)."""

    dataset: str
    model: str
    task: str
    metrics: dict[str, float]
    split: str
    source: str
    protocol: str = "as_released"

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.metrics.items() if not 0.0 <= float(v) <= 1.0}
        if bad or not self.metrics:
            raise ValueError(
                f"references: {self.model} on {self.dataset}: metrics must be fractions in "
                f"[0, 1] (our metric names, e.g. overall: 0.770), got {self.metrics}"
            )


@dataclass
class ReferencesParams:
    """``params:references``: the published results and the label every row carries."""

    note: str = DEFAULT_NOTE
    published: list[PublishedResult] = field(default_factory=list)


def _ingested_kinds(ingestion: Mapping[str, Any] | None) -> set[str]:
    sources = (ingestion or {}).get("sources") or []
    return {str(s.get("kind")) for s in sources if s.get("enabled", True)}


def reference_rows(
    references: Mapping[str, Any] | None, ingestion: Mapping[str, Any] | None
) -> pd.DataFrame:
    """One row per published metric of a dataset the run ingests (kinds of
    ``ingestion.sources``), labelled ``<model> (published; <note>)``."""
    from robust_mmr_pipeline.params import parse

    params = parse(ReferencesParams, references, "references")
    kinds = _ingested_kinds(ingestion)
    rows = [
        {
            "dataset": entry.dataset,
            "model": entry.model,
            "task": entry.task,
            "protocol": entry.protocol,
            "metric": metric,
            "value": float(value),
            "split": entry.split,
            "source": entry.source,
            "label": f"{entry.model} (published; {params.note})",
        }
        for entry in params.published
        if entry.dataset in kinds
        for metric, value in entry.metrics.items()
    ]
    return pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))


def reference_table(rows: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the references table."""
    header = ["dataset", "model", "task", "metric", "value", "split", "source"]
    body = [
        [
            str(r["dataset"]),
            str(r["label"]),
            str(r["task"]),
            str(r["metric"]),
            f"{float(r['value']):.3f}",
            str(r["split"]),
            str(r["source"]),
        ]
        for _, r in rows.iterrows()
    ]
    return header, body


SECTION_TITLE = "Published references (a different scale)"
SECTION_NOTE = (
    "Published numbers of larger models (ViT-B / BERT-base, pre-trained on large caption "
    "corpora, GPU budgets) on the official split as released. Compare them with the "
    "as_released protocol (data/08_reporting/as_released/, published_benchmark.md), not with "
    "the image-disjoint in-domain / cross-domain numbers."
)


def references_section(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """The references as a report section of the shared template ([] when there is none)."""
    if rows.empty:
        return []
    header, body = reference_table(rows)
    return [
        {"title": SECTION_TITLE, "note": SECTION_NOTE, "header": header, "rows": body, "open": True}
    ]


# --------------------------------------------------------------------------------------------
# Our numbers under every protocol beside the references
# --------------------------------------------------------------------------------------------


def _fmt(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "–"
    text = f"{value:.3f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def benchmark_table(results: Iterable[pd.DataFrame], references: pd.DataFrame) -> pd.DataFrame:
    """Per task and metric: our clean test value [95 % CI] under every protocol (columns of
    :data:`CONDITIONS`), then one column per published reference.

    ``results`` are evaluation results frames (reporting.RESULT_COLUMNS); a row counts when its
    ``condition`` is a protocol's clean test (in_domain / cross_domain) or its ``protocol`` is
    ``as_released``. Rows with a ``model`` column other than ours (baselines) keep their label.
    """
    ours: dict[tuple[str, str], dict[str, str]] = {}
    for frame in results:
        if frame is None or frame.empty:
            continue
        for _, row in frame.iterrows():
            if row["condition"] not in ("in_domain", "cross_domain") or row["metric"] == "n":
                continue
            column = "as_released" if row["protocol"] == "as_released" else row["condition"]
            model = str(row.get("model", "") or "")
            title = CONDITIONS[column] + (f" — {model}" if model and model != "model" else "")
            ours.setdefault((row["task"], row["metric"]), {})[title] = _fmt(
                float(row["value"]), float(row["ci_low"]), float(row["ci_high"])
            )
    for _, ref in references.iterrows():
        ours.setdefault((ref["task"], ref["metric"]), {})[str(ref["label"])] = (
            f"{float(ref['value']):.3f}"
        )
    records = [{"task": task, "metric": metric, **cells} for (task, metric), cells in ours.items()]
    frame = pd.DataFrame(records)
    if frame.empty:
        return pd.DataFrame(columns=["task", "metric"])
    order = {"overall": 0, "closed": 1, "open": 2}
    frame = frame.assign(_order=frame["metric"].map(order).fillna(9))
    frame = frame.sort_values(["task", "_order", "metric"]).drop(columns="_order")
    return frame.fillna("–").reset_index(drop=True)


def benchmark_markdown(table: pd.DataFrame, references: pd.DataFrame, counts: str) -> str:
    """The published-benchmark page: our numbers per protocol beside the references."""
    lines = [
        "# Published benchmark: our numbers under both protocols, beside published ones",
        "",
        "- **image-disjoint protocols** (in-domain, cross-domain): no image in two splits; the "
        "numbers behind every robustness claim.",
        "- **as released**: the official split exactly as published (images shared by train "
        "and test kept, counted below); the protocol published numbers use.",
        f"- **references**: {SECTION_NOTE}",
        "",
    ]
    if counts:
        lines += [counts, ""]
    header = list(table.columns)
    if table.empty:
        lines.append("_no results_")
    else:
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table.to_numpy()]
    if not references.empty:
        lines += ["", "Sources of the references:", ""]
        cited = references.drop_duplicates(subset=["dataset", "model"])
        lines += [
            f"- {r['model']} on {r['dataset']} ({r['split']}): {r['source']}"
            for _, r in cited.iterrows()
        ]
    return "\n".join(lines) + "\n"
