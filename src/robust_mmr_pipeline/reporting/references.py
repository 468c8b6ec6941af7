"""Published reference results, as labelled rows beside our own numbers.

The references are data (``conf/base/parameters_references.yml``, ``params:references``): per
dataset kind, the model, the task, its metrics, the split it was measured on and the citation.
They come from models at a different scale (ViT-B / BERT-base backbones pre-trained on large
caption corpora with GPU budgets) and are comparable with our ``as_released`` protocol only
(the official split as published), never with the image-disjoint protocols.

:func:`reference_rows` selects the references of the datasets a run ingested;
:func:`references_section` makes them a section of the shared report template;
:func:`benchmark_table` puts our clean test numbers of every protocol beside them and
:func:`benchmark_reports` renders that page (Markdown and HTML) from the shared template.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

import pandas as pd

from robust_mmr_pipeline.typed_config import config

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


@config(frozen=True)
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


@config
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


BENCHMARK_COLUMNS: tuple[str, ...] = (
    "protocol",
    "model",
    "label",
    "kind",
    "task",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "source",
)
PAGE_TITLE = "Published benchmark: our numbers under both protocols, beside published ones"


def _fmt(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "–"
    text = f"{value:.3f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def benchmark_table(results: Iterable[pd.DataFrame], references: pd.DataFrame) -> pd.DataFrame:
    """One row per protocol x model x task x metric (:data:`BENCHMARK_COLUMNS`): our clean test
    values [95 % CI] under every protocol of :data:`CONDITIONS`, then the published references
    (``kind`` ``published``) under the protocol they were measured on.

    ``results`` are evaluation results frames (reporting.RESULT_COLUMNS); a row counts when its
    ``condition`` is a protocol's clean test (in_domain / cross_domain) or its ``protocol`` is
    ``as_released``; counts and paired differences are left out.
    """
    from robust_mmr_pipeline.reporting.results import OURS, model_label

    records: list[dict[str, Any]] = []
    for frame in results:
        if frame is None or frame.empty:
            continue
        clean = frame[
            frame["condition"].isin(("in_domain", "cross_domain"))
            & (frame["metric"] != "n")
            & ~frame["metric"].str.startswith("diff_")
        ]
        for _, row in clean.iterrows():
            model = str(row.get("model", "") or OURS)
            records.append(
                {
                    "protocol": "as_released"
                    if row["protocol"] == "as_released"
                    else row["condition"],
                    "model": model,
                    "label": model_label(model),
                    "kind": "ours" if model == OURS else "scored here",
                    "task": row["task"],
                    "metric": row["metric"],
                    "value": float(row["value"]),
                    "ci_low": float(row["ci_low"]),
                    "ci_high": float(row["ci_high"]),
                    "source": "",
                }
            )
    for _, ref in references.iterrows():
        records.append(
            {
                "protocol": ref["protocol"],
                "model": ref["model"],
                "label": str(ref["label"]),
                "kind": "published",
                "task": ref["task"],
                "metric": ref["metric"],
                "value": float(ref["value"]),
                "ci_low": math.nan,
                "ci_high": math.nan,
                "source": ref["source"],
            }
        )
    return pd.DataFrame(records, columns=list(BENCHMARK_COLUMNS))


def _metric_order(metrics: Iterable[str]) -> list[str]:
    order = {"overall": 0, "closed": 1, "open": 2}
    return sorted(set(metrics), key=lambda m: (order.get(m, 9), m))


def _protocol_section(table: pd.DataFrame, protocol: str) -> dict[str, Any]:
    """One protocol's table: a row per model (ours first, the published references right
    after it), a column per task and metric."""
    part = table[table["protocol"] == protocol]
    columns = [
        (task, metric)
        for task in sorted(part["task"].unique())
        for metric in _metric_order(part.loc[part["task"] == task, "metric"])
    ]
    rank = {"ours": 0, "published": 1, "scored here": 2}
    models = part.drop_duplicates("label").assign(_rank=part["kind"].map(rank))
    rows = []
    for _, model in models.sort_values(["_rank", "label"], kind="stable").iterrows():
        mine = part[part["label"] == model["label"]].set_index(["task", "metric"])
        cells = [str(model["label"])]
        for key in columns:
            if key in mine.index:
                r = mine.loc[key]
                r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                cells.append(_fmt(float(r["value"]), float(r["ci_low"]), float(r["ci_high"])))
            else:
                cells.append("–")
        highlight = {"ours": "ours", "published": "reference"}.get(model["kind"], False)
        rows.append({"cells": cells, "highlight": highlight})
    published = "published" in set(part["kind"])
    return {
        "title": CONDITIONS.get(protocol, protocol),
        "note": "Clean test value [95 % bootstrap interval]; every row of ours scored on the "
        "same test rows."
        + (" Published rows: the paper's number, no interval." if published else ""),
        "header": ["model", *(f"{task} {metric}" for task, metric in columns)],
        "rows": rows,
        "open": True,
    }


def _best(part: pd.DataFrame) -> pd.Series | None:
    scored = part[part["kind"] != "published"]
    scored = scored[scored["value"].map(math.isfinite)]
    return None if scored.empty else scored.loc[scored["value"].idxmax()]


def _task_card(table: pd.DataFrame, task: str, metric: str) -> dict[str, Any]:
    """Per protocol our best row on the task's main metric; the published references right
    beside the protocol they were measured on; a verdict line per reference."""
    from robust_mmr_pipeline.reporting.results import TASK_TITLES

    rows, verdicts = [], []
    for protocol, title in CONDITIONS.items():
        part = table[
            (table["protocol"] == protocol) & (table["task"] == task) & (table["metric"] == metric)
        ]
        best = _best(part)
        if best is not None:
            value = _fmt(best["value"], best["ci_low"], best["ci_high"])
            rows.append({"cells": [title, f"our best: {best['label']}", value],
                         "highlight": "ours"})  # fmt: skip
        for _, ref in part[part["kind"] == "published"].iterrows():
            rows.append({"cells": [title, ref["label"], f"{ref['value']:.3f}"],
                         "highlight": "reference"})  # fmt: skip
            if best is None:
                continue
            gap = best["value"] - ref["value"]
            verdicts.append(
                {
                    "kind": "pass" if gap >= 0 else "info",
                    "text": f"{title}, {task} {metric}: our best, {best['label']}, "
                    f"{best['value']:.3f} vs {ref['model']} {ref['value']:.3f} published "
                    f"({gap:+.3f}; a reference at a different scale)",
                }
            )
    if not verdicts:
        verdicts = [
            {
                "kind": "info",
                "text": "no published reference for this task on the ingested datasets "
                "(conf/base/parameters_references.yml)",
            }
        ]
    return {
        "key": task,
        "title": TASK_TITLES.get(task, task),
        "subtitle": f"main metric {metric}: our best row per protocol beside the published "
        "references",
        "header": ["protocol", "model", metric],
        "rows": rows,
        "verdicts": verdicts,
    }


def benchmark_page(table: pd.DataFrame, references: pd.DataFrame, counts: str) -> dict[str, Any]:
    """The published-benchmark page as the shared template's context: a card per task (our
    best row beside the references), then one table per protocol, then the sources."""
    from robust_mmr_pipeline.tasks.registry import MAIN_METRIC

    meta = {
        "image-disjoint protocols": "in-domain and cross-domain: no image in two splits; the "
        "numbers behind every robustness claim",
        "as released": "the official split exactly as published (images shared by train and "
        "test kept, counted below); the protocol published numbers use",
        "references": SECTION_NOTE,
    }
    if counts:
        meta["split counts"] = counts.removeprefix("Split counts: ")
    tasks = sorted(table["task"].unique()) if not table.empty else []
    cards = [_task_card(table, task, MAIN_METRIC.get(task, "accuracy")) for task in tasks]
    protocols = [p for p in CONDITIONS if p in set(table["protocol"])]
    sections = [_protocol_section(table, protocol) for protocol in protocols]
    if not references.empty:
        cited = references.drop_duplicates(subset=["dataset", "model"])
        sections.append(
            {
                "title": "Sources of the references",
                "note": "",
                "header": ["model", "dataset", "split", "source"],
                "rows": [
                    [r["model"], r["dataset"], r["split"], r["source"]] for _, r in cited.iterrows()
                ],
                "open": True,
            }
        )
    return {"title": PAGE_TITLE, "meta": meta, "cards": cards, "figures": [],
            "sections": sections}  # fmt: skip


def benchmark_reports(
    table: pd.DataFrame, references: pd.DataFrame, counts: str
) -> tuple[str, str]:
    """The published-benchmark page as Markdown and as HTML (one template context)."""
    from robust_mmr_pipeline.reporting.render import render

    page = benchmark_page(table, references, counts)
    return render("report.md.j2", **page), render("report.html.j2", **page)
