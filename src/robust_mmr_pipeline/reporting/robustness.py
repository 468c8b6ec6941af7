"""The robustness report: headline cards, long tables and the rendered Markdown / HTML.

The pieces it is built from live beside it: the results table and its look-ups
(:mod:`.results`), summaries and verdicts (:mod:`.summary`), figures (:mod:`.figures`); their
public names are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.reporting.figures import (
    domain_figure,
    retrieval_figure,
    severity_figure,
    validation_figure,
)
from robust_mmr_pipeline.reporting.render import figure_to_base64, render
from robust_mmr_pipeline.reporting.results import (
    CONDITION_TITLES,
    FROZEN,
    HEADLINE_EXTRA,
    MAIN_METRIC,
    OURS,
    RANK_METRICS,
    RESULT_COLUMNS,
    SEVERITY_COLUMNS,
    TASK_TITLES,
    main_metric,
    model_label,
    ours,
    point_value,
    scorers,
    select,
)
from robust_mmr_pipeline.reporting.summary import (
    flat_metrics,
    mce_against,
    metrics_summary,
    severity_table,
    verdict_text,
    verdicts,
)

__all__ = [
    "CONDITION_TITLES",
    "FROZEN",
    "HEADLINE_EXTRA",
    "MAIN_METRIC",
    "OURS",
    "RANK_METRICS",
    "RESULT_COLUMNS",
    "SEVERITY_COLUMNS",
    "TASK_TITLES",
    "domain_figure",
    "flat_metrics",
    "headline_cards",
    "mce_against",
    "metrics_summary",
    "model_label",
    "ours",
    "perturbation_families_section",
    "render_report",
    "report_sections",
    "retrieval_figure",
    "scorers",
    "severity_figure",
    "severity_table",
    "validation_figure",
    "verdict_text",
    "verdicts",
]


def _fmt(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:.3f}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def _point(results: pd.DataFrame, **where: Any) -> str:
    point = point_value(results, **where)
    return _fmt(point["value"], point["low"], point["high"]) if point else "–"


def headline_cards(results: pd.DataFrame, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One card per task: every scorer's main metric in-domain / cross-domain / perturbed, and
    the verdict lines against the strongest reference."""
    cards = []
    for task in sorted(results["task"].unique()):
        metric = main_metric(task)
        extra = HEADLINE_EXTRA.get(task, ())
        header = ["model", f"in-domain {metric}", f"cross-domain {metric}",
                  f"mean perturbed {metric}", "mean drop"]  # fmt: skip
        header += [f"in-domain {m}" for m in extra]
        rows = []
        for name in scorers(results, task):
            part = select(results, task=task, model=name) if "model" in results else results
            perturbed = summary[task]["references"].get(name, {}) if name != OURS else summary[task]
            perturbed = perturbed.get("perturbed", {})
            cells = [
                model_label(name),
                _point(part, condition="in_domain", metric=metric),
                _point(part, condition="cross_domain", metric=metric),
                _fmt(perturbed.get(f"mean_{metric}")),
                _fmt(perturbed.get(f"mean_drop_{metric}")),
            ]
            cells += [_point(part, condition="in_domain", metric=m) for m in extra]
            rows.append({"cells": cells, "highlight": name == OURS})
        lines = [
            {"kind": "pass" if v["beats"] else "fail", "text": verdict_text(task, c, v)}
            for c, v in summary[task].get("verdict", {}).items()
        ]
        if not lines:
            lines = [{"kind": "info", "text": "no reference was scored (evaluation.baselines)"}]
        cards.append(
            {
                "key": task,
                "title": TASK_TITLES.get(task, task),
                "subtitle": f"main metric: {metric}; 95 % bootstrap intervals; every row scored "
                "on the same test rows",
                "header": header,
                "rows": rows,
                "verdicts": lines,
            }
        )
    return cards


def _clean_rows(results: pd.DataFrame) -> list[list[str]]:
    body = []
    for task in sorted(results["task"].unique()):
        for name in scorers(results, task):
            part = select(results, task=task, model=name) if "model" in results else results
            metrics = select(part, condition="in_domain")
            for metric in metrics["metric"]:
                if not np.isfinite(select(metrics, metric=metric)["ci_low"].iloc[0]):
                    continue
                body.append(
                    [task, name, metric]
                    + [_point(part, condition=c, metric=metric) for c in CONDITION_TITLES]
                )
    return body


def _perturbed_rows(results: pd.DataFrame) -> list[list[str]]:
    body = []
    perturbed = select(results, condition="perturbed")
    for task in sorted(perturbed["task"].unique()):
        metric = main_metric(task)
        for name in scorers(perturbed, task):
            part = perturbed[(perturbed["task"] == task) & (perturbed["model"] == name)]
            main = part[part["metric"] == metric]
            for _, row in main.sort_values(["modality", "perturbation", "severity"]).iterrows():
                key = {"perturbation": row["perturbation"], "severity": row["severity"]}
                body.append(
                    [task, name, row["perturbation"], row["modality"], str(int(row["severity"])),
                     _fmt(row["value"], row["ci_low"], row["ci_high"]),
                     _point(part, metric=f"drop_{metric}", **key)]
                )  # fmt: skip
    return body


def _rank_rows(results: pd.DataFrame) -> list[list[str]]:
    body = []
    retrieval = select(ours(results), task="retrieval")
    perturbed = select(retrieval, condition="perturbed")
    for name in RANK_METRICS:
        clean = _point(retrieval, condition="in_domain", metric=name)
        if clean != "–":
            body.append(["clean", "0", name[:3], clean, "–"])
        part = perturbed[perturbed["metric"] == name]
        for _, row in part.sort_values(["perturbation", "severity"]).iterrows():
            key = {"perturbation": row["perturbation"], "severity": row["severity"]}
            body.append(
                [row["perturbation"], str(int(row["severity"])), name[:3],
                 _fmt(row["value"], row["ci_low"], row["ci_high"]),
                 _point(perturbed, metric=f"{name}_degradation", **key)]
            )  # fmt: skip
    return body


def _comparison_rows(results: pd.DataFrame) -> list[list[str]]:
    body = []
    rows = ours(results)
    rows = rows[rows["metric"].str.startswith("diff_")]
    for _, row in rows.sort_values(["task", "condition", "metric"]).iterrows():
        reference = row["metric"].split("_vs_", 1)[-1]
        body.append(
            [row["task"], CONDITION_TITLES.get(row["condition"], row["condition"]),
             model_label(reference), _fmt(row["value"], row["ci_low"], row["ci_high"])]
        )  # fmt: skip
    return body


def _mce_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    body = []
    for task, entry in summary.items():
        mce = entry.get("mce") if isinstance(entry, Mapping) else None
        if mce:
            body.append(
                [
                    task,
                    _fmt(mce.get("mce", math.nan)),
                    _fmt(mce.get("relative_mce", math.nan)),
                    str(mce.get("corruptions", "")),
                ]
            )
    return body


def perturbation_families_section(
    training: Mapping[str, Sequence[str]] | None,
    evaluated: pd.DataFrame,
    held_out: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Three sets per modality: the pre-trained backbone's training families (degraded views),
    the evaluated families and the held-out domain's shift (``held_out``: what its acquisition
    and reporting do, named by the family each mechanism resembles; SynthRad), so any overlap
    with training (leakage) is visible; [] when there is nothing to set side by side."""
    if not training and not held_out:
        return []
    training, held_out = training or {}, held_out or {}
    perturbed = evaluated[evaluated["condition"] == "perturbed"]
    tested = perturbed.groupby("modality")["perturbation"].unique()
    rows = []
    for modality in ("image", "text"):
        trained = sorted(training.get(modality, ()))
        test = sorted(tested.get(modality, ()))
        shift = list(held_out.get(modality, ()))
        shift_families = {item.split(" ")[0] for item in shift}
        shared = sorted(set(trained) & (set(test) | shift_families))
        rows.append([modality, ", ".join(trained) or "–", ", ".join(test) or "–",
                     "; ".join(shift) or "–", ", ".join(shared) or "none"])  # fmt: skip
    note = (
        "What the pre-trained backbone's degraded views were drawn from, beside what the test "
        "sets perturb and what the held-out domain's acquisition and reporting do. A training "
        "family in either of the other columns is leakage: a gain there is partly a copy of "
        "the test."
    )
    return [
        {
            "title": "Perturbation families: pre-training vs evaluation vs the held-out domain",
            "note": note,
            "header": ["modality", "pre-training (degraded views)", "evaluation",
                       "held-out domain's shift", "training family also tested"],
            "rows": rows,
            "open": True,
        }
    ]  # fmt: skip


def report_sections(
    results: pd.DataFrame,
    summary: Mapping[str, Any],
    training_perturbations: Sequence[Sequence[str]] = (),
) -> list[dict[str, Any]]:
    """The long tables of the report (folded in HTML)."""
    sections = [
        {"title": "Ours minus each reference (paired bootstrap)",
         "note": "Difference of the main metric on the same test rows; the interval is a paired "
                 "percentile bootstrap. Positive = ours is better.",
         "header": ["task", "condition", "reference", "difference [95 % CI]"],
         "rows": _comparison_rows(results), "open": True},
        {"title": "Clean test sets, every metric and scorer",
         "note": "Selected on validation, evaluated once on test. In-domain = the training "
                 "domains' test split; cross-domain = the held-out domain.",
         "header": ["task", "model", "metric", "in-domain test",
                    "cross-domain test (held-out domain)"],
         "rows": _clean_rows(results), "open": False},
        {"title": "Perturbed in-domain test sets",
         "note": "Each corruption applied with the manifest's seed (one corruption per image, "
                 "per-row text edits), the same inputs for every scorer; drop = clean - "
                 "perturbed (paired bootstrap 95 % CI).",
         "header": ["task", "model", "perturbation", "modality", "severity",
                    "main metric [95 % CI]", "drop"],
         "rows": _perturbed_rows(results), "open": False},
        {"title": "Retrieval ranks (ours)",
         "note": "Contrastive top-k then ITM re-rank; degradation = perturbed - clean mean rank.",
         "header": ["perturbation", "severity", "direction", "mean rank",
                    "degradation [95 % CI]"],
         "rows": _rank_rows(results), "open": False},
        {"title": "Mean corruption error against a baseline run",
         "note": "CE_c = sum_s E_model / sum_s E_baseline (E = 1 - main metric); relative mCE "
                 "subtracts each model's clean error. Only with evaluation.baseline_metrics.",
         "header": ["task", "mCE", "relative mCE", "corruptions"],
         "rows": _mce_rows(summary), "open": False},
    ]  # fmt: skip
    if training_perturbations:
        sections.append(
            {"title": "Training vs evaluation perturbations",
             "note": "Families the pre-training degraded views draw from beside those the "
                     "evaluation applies; a family in both is leakage, not robustness.",
             "header": ["family", "training (pre-training views)", "evaluation"],
             "rows": [list(row) for row in training_perturbations], "open": True}
        )  # fmt: skip
    return sections


def render_report(
    results: pd.DataFrame,
    summary: Mapping[str, Any],
    context: Mapping[str, Any],
    figures: Mapping[str, tuple[str, Any]],
    *,
    fmt: str,
    training_perturbations: Sequence[Sequence[str]] = (),
    extra_sections: Sequence[Mapping[str, Any]] = (),
    lead_sections: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The robustness report as ``fmt`` ``"html"`` (self-contained) or ``"md"``; ``figures``
    maps a caption to (PNG path relative to the report, matplotlib figure); ``lead_sections``
    come before the long tables, ``extra_sections`` after them."""
    page = {
        "title": "Robustness report",
        "meta": dict(context),
        "cards": headline_cards(results, summary),
        "figures": [
            {
                "caption": caption,
                "path": path,
                "base64": figure_to_base64(figure) if fmt == "html" else "",
            }
            for caption, (path, figure) in figures.items()
        ],
        "sections": [
            *lead_sections,
            *report_sections(results, summary, training_perturbations),
            *extra_sections,
        ],
    }
    return render(f"report.{fmt}.j2", **page)
