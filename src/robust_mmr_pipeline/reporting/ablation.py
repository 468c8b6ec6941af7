"""The ablation comparison: settings x seeds -> mean ± CI per setting and paired gaps.

Input: every run's evaluation results (:data:`~robust_mmr_pipeline.reporting.results.
RESULT_COLUMNS`) with ``setting`` and ``seed`` columns added. Per run and task, the headline
numbers (:func:`run_headlines`, long format, :data:`HEADLINE_COLUMNS`):

* ``in_domain`` / ``cross_domain``: the task's main metric on the clean test splits;
* ``perturbed``: the main metric averaged over every evaluated perturbation x severity;
* ``drop``: ``in_domain - perturbed`` (lower is more robust);
* ``mce``: mean corruption error relative to the reference setting (MMR) of the same seed
  (Hendrycks & Dietterich; 1.0 = as robust as MMR, lower is better);
* retrieval only, ``mean_rank_degradation``: text->image mean rank under perturbation minus
  clean, averaged over conditions (the Robust-MMR paper's headline; lower is better).

Across seeds (:func:`summarise_settings`) every number gets mean ± a two-sided 95 % Student-t
interval over seeds; :func:`paired_gaps` gives ``focus - reference`` paired by seed (same
seed, same data order and initial weights), with its t interval. One seed gives no interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.reporting.render import figure_to_base64, render
from robust_mmr_pipeline.reporting.results import TASK_TITLES, ours
from robust_mmr_pipeline.reporting.summary import mce_against, severity_table
from robust_mmr_pipeline.tasks.registry import MAIN_METRIC

HEADLINE_COLUMNS: tuple[str, ...] = ("setting", "seed", "task", "metric", "condition", "value")
SUMMARY_COLUMNS: tuple[str, ...] = (
    "setting",
    "task",
    "metric",
    "condition",
    "mean",
    "ci_low",
    "ci_high",
    "std",
    "n_seeds",
)
GAP_COLUMNS: tuple[str, ...] = (
    "focus",
    "reference",
    "task",
    "metric",
    "condition",
    "gap",
    "ci_low",
    "ci_high",
    "n_pairs",
    "better",
)
# Conditions in table order, and whether a larger value is better.
CONDITIONS: dict[str, bool] = {
    "in_domain": True,
    "cross_domain": True,
    "perturbed": True,
    "drop": False,
    "mce": False,
    "mean_rank_degradation": False,
}
CONDITION_TITLES: dict[str, str] = {
    "in_domain": "in-domain",
    "cross_domain": "cross-domain",
    "perturbed": "perturbed (mean)",
    "drop": "drop",
    "mce": "mCE vs reference",
    "mean_rank_degradation": "t2i mean-rank degradation",
}


def _main_value(results: pd.DataFrame, task: str, condition: str) -> float | None:
    rows = results[
        (results["task"] == task)
        & (results["condition"] == condition)
        & (results["metric"] == MAIN_METRIC[task])
    ]
    return float(rows["value"].iloc[0]) if len(rows) else None


def run_headlines(
    results: pd.DataFrame, reference: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """The headline numbers of one run's evaluation results (``setting``/``seed`` not set);
    ``reference``: the reference setting's results for the same seed (gives ``mce``)."""
    rows: list[dict[str, Any]] = []
    results = ours(results)
    reference = ours(reference) if reference is not None else None
    reference_severity = severity_table(reference) if reference is not None else None
    mce = (
        mce_against(severity_table(results), reference_severity)
        if reference_severity is not None
        else {}
    )
    for task in sorted(results["task"].unique()):
        metric = MAIN_METRIC[task]
        values: dict[str, float] = {}
        for condition in ("in_domain", "cross_domain"):
            value = _main_value(results, task, condition)
            if value is not None:
                values[condition] = value
        perturbed = results[
            (results["task"] == task)
            & (results["condition"] == "perturbed")
            & (results["metric"] == metric)
        ]["value"]
        if len(perturbed):
            values["perturbed"] = float(perturbed.mean())
            if "in_domain" in values:
                values["drop"] = values["in_domain"] - values["perturbed"]
        if task in mce:
            values["mce"] = float(mce[task]["mce"])
        degradation = results[
            (results["task"] == task)
            & (results["condition"] == "perturbed")
            & (results["metric"] == "t2i_mean_rank_degradation")
        ]["value"]
        if len(degradation):
            values["mean_rank_degradation"] = float(degradation.mean())
        rows += [
            {"task": task, "metric": metric, "condition": c, "value": v} for c, v in values.items()
        ]
    return rows


def headline_table(
    runs: Mapping[tuple[str, int], pd.DataFrame], reference: str | None
) -> pd.DataFrame:
    """Headlines of every ``(setting, seed) -> results`` run; mCE against ``reference``."""
    rows: list[dict[str, Any]] = []
    for (setting, seed), results in sorted(runs.items()):
        baseline = runs.get((reference, seed)) if reference else None
        for row in run_headlines(results, baseline):
            rows.append({"setting": setting, "seed": int(seed), **row})
    return pd.DataFrame(rows, columns=list(HEADLINE_COLUMNS))


def t_interval(values: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean, 95 % Student-t interval and sample std of ``values`` (nan interval for n < 2)."""
    from scipy import stats

    data = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    mean = float(data.mean())
    if data.size < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.975, data.size - 1)) * std / math.sqrt(data.size)
    return mean, mean - half, mean + half, std


def _ordered(frame: pd.DataFrame, key: str, order: Sequence[str]) -> pd.DataFrame:
    """Rows by ``key`` in ``order`` (others last), then task, then :data:`CONDITIONS` order."""
    rank = {name: index for index, name in enumerate(order)}
    conditions = {name: index for index, name in enumerate(CONDITIONS)}
    return (
        frame.assign(
            _k=frame[key].map(lambda value: rank.get(value, len(rank))),
            _c=frame["condition"].map(lambda c: conditions.get(c, len(conditions))),
        )
        .sort_values(["_k", key, "task", "_c"])
        .drop(columns=["_k", "_c"])
        .reset_index(drop=True)
    )


def summarise_settings(headlines: pd.DataFrame, settings: Sequence[str]) -> pd.DataFrame:
    """Mean ± t interval over seeds per setting x task x condition (:data:`SUMMARY_COLUMNS`)."""
    rows = []
    for (setting, task, metric, condition), group in headlines.groupby(
        ["setting", "task", "metric", "condition"], sort=False
    ):
        mean, low, high, std = t_interval(group["value"].tolist())
        rows.append(
            {
                "setting": setting,
                "task": task,
                "metric": metric,
                "condition": condition,
                "mean": mean,
                "ci_low": low,
                "ci_high": high,
                "std": std,
                "n_seeds": int(group["seed"].nunique()),
            }
        )
    return _ordered(pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS)), "setting", settings)


def paired_gaps(headlines: pd.DataFrame, focus: str, reference: str) -> pd.DataFrame:
    """``focus - reference`` per task x condition, paired by seed (:data:`GAP_COLUMNS`);
    ``better`` says whether the gap favours ``focus`` (a larger value is better for the
    metrics, a smaller one for drops, mCE and rank degradation); ``""`` when the interval
    covers 0."""
    mine = headlines[headlines["setting"] == focus]
    theirs = headlines[headlines["setting"] == reference]
    merged = mine.merge(
        theirs, on=["seed", "task", "metric", "condition"], suffixes=("_focus", "_reference")
    )
    rows = []
    for (task, metric, condition), group in merged.groupby(
        ["task", "metric", "condition"], sort=False
    ):
        if condition == "mce":  # the reference's own mCE is 1 by definition
            continue
        differences = (group["value_focus"] - group["value_reference"]).tolist()
        gap, low, high, _ = t_interval(differences)
        higher_is_better = CONDITIONS.get(condition, True)
        if math.isfinite(low) and (low > 0 or high < 0):
            better = focus if (low > 0) == higher_is_better else reference
        else:
            better = ""
        rows.append(
            {
                "focus": focus,
                "reference": reference,
                "task": task,
                "metric": metric,
                "condition": condition,
                "gap": gap,
                "ci_low": low,
                "ci_high": high,
                "n_pairs": len(differences),
                "better": better,
            }
        )
    frame = pd.DataFrame(rows, columns=list(GAP_COLUMNS))
    return _ordered(frame, "focus", [focus]) if len(frame) else frame


def ablation_summary(summary: pd.DataFrame, gaps: pd.DataFrame) -> dict[str, Any]:
    """Nested numbers for ``dvc metrics show`` / MLflow: ``{setting: {task: {condition: mean}}}``
    plus ``gap/<task>/<condition>``."""
    out: dict[str, Any] = {}
    for _, row in summary.iterrows():
        out.setdefault(row["setting"], {}).setdefault(row["task"], {})[row["condition"]] = float(
            row["mean"]
        )
    if len(gaps):
        key = f"gap_{gaps['focus'].iloc[0]}_minus_{gaps['reference'].iloc[0]}"
        for _, row in gaps.iterrows():
            out.setdefault(key, {}).setdefault(row["task"], {})[row["condition"]] = float(
                row["gap"]
            )
    return out


# --------------------------------------------------------------------------- figure


def ablation_figure(summary: pd.DataFrame, settings: Sequence[str]) -> Any:
    """One panel per task: grouped bars (settings) of the main metric in-domain, cross-domain
    and perturbed, with the seed 95 % intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shown = ("in_domain", "cross_domain", "perturbed")
    tasks = sorted(summary["task"].unique()) or ["(none)"]
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.6 * len(tasks), 4.0), squeeze=False)
    width = 0.8 / max(len(settings), 1)
    for ax, task in zip(axes[0], tasks, strict=True):
        part = summary[summary["task"] == task]
        for index, setting in enumerate(settings):
            rows = part[(part["setting"] == setting) & part["condition"].isin(shown)]
            means, errors = [], [[], []]
            for condition in shown:
                row = rows[rows["condition"] == condition]
                mean = float(row["mean"].iloc[0]) if len(row) else math.nan
                low = float(row["ci_low"].iloc[0]) if len(row) else math.nan
                high = float(row["ci_high"].iloc[0]) if len(row) else math.nan
                means.append(mean)
                errors[0].append(mean - low if math.isfinite(low) else 0.0)
                errors[1].append(high - mean if math.isfinite(high) else 0.0)
            positions = np.arange(len(shown)) + (index - (len(settings) - 1) / 2) * width
            ax.bar(positions, means, width, yerr=errors, capsize=2, label=setting)
        ax.set_xticks(np.arange(len(shown)), [CONDITION_TITLES[c] for c in shown], fontsize=8)
        metric = MAIN_METRIC.get(task, "")
        ax.set_title(f"{TASK_TITLES.get(task, task)} ({metric})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    # one legend for all panels, above them, so it never hides a bar
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper center", ncol=len(settings), fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


# --------------------------------------------------------------------------- report


def _cell(mean: float, low: float, high: float, n: int) -> str:
    if not math.isfinite(mean):
        return "–"
    if math.isfinite(low):
        return f"{mean:.3f} [{low:.3f}, {high:.3f}]"
    return f"{mean:.3f} (n={n})"


def _summary_body(summary: pd.DataFrame, task: str) -> tuple[list[str], list[list[str]]]:
    part = summary[summary["task"] == task]
    conditions = [c for c in CONDITIONS if c in set(part["condition"])]
    header = ["setting", *(CONDITION_TITLES[c] for c in conditions)]
    body = []
    for setting, rows in part.groupby("setting", sort=False):
        cells = [str(setting)]
        for condition in conditions:
            row = rows[rows["condition"] == condition]
            if row.empty:
                cells.append("–")
                continue
            r = row.iloc[0]
            cells.append(_cell(r["mean"], r["ci_low"], r["ci_high"], int(r["n_seeds"])))
        body.append(cells)
    return header, body


def _gap_body(gaps: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["task", "metric", "condition", "gap", "95 % CI", "seed pairs", "favours"]
    body = []
    for _, row in gaps.iterrows():
        interval = (
            f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
            if math.isfinite(row["ci_low"])
            else "–"
        )
        body.append(
            [
                TASK_TITLES.get(row["task"], row["task"]),
                row["metric"],
                CONDITION_TITLES.get(row["condition"], row["condition"]),
                f"{row['gap']:+.3f}",
                interval,
                str(int(row["n_pairs"])),
                row["better"] or "neither (CI covers 0)",
            ]
        )
    return header, body


def _gap_verdicts(gaps: pd.DataFrame, task: str) -> list[dict[str, str]]:
    """The card's verdict lines: the paired gap of the focus setting per condition."""
    if gaps.empty:
        return []
    lines = []
    for _, row in gaps[gaps["task"] == task].iterrows():
        low, high = row["ci_low"], row["ci_high"]
        interval = f" [{low:+.3f}, {high:+.3f}]" if math.isfinite(low) else ""
        better = row["better"] or "neither (CI covers 0)"
        lines.append(
            {
                "kind": "info"
                if not row["better"]
                else ("pass" if row["better"] == row["focus"] else "fail"),
                "text": f"{row['focus']} − {row['reference']}, "
                f"{CONDITION_TITLES.get(row['condition'], row['condition'])} {row['metric']}: "
                f"{row['gap']:+.3f}{interval} over {int(row['n_pairs'])} seed pair(s); "
                f"favours {better}",
            }
        )
    return lines


def _page(
    summary: pd.DataFrame, gaps: pd.DataFrame, context: Mapping[str, str], figure: dict[str, str]
) -> dict[str, Any]:
    """The template context: a card per task (settings x conditions), the gap table."""
    cards = []
    for task in sorted(summary["task"].unique()):
        header, body = _summary_body(summary, task)
        cards.append(
            {
                "key": task,
                "title": TASK_TITLES.get(task, task),
                "subtitle": f"main metric {MAIN_METRIC.get(task, '')}: mean over seeds [95 % "
                "Student-t interval over seeds]; drop, mCE and mean-rank degradation: lower is "
                "better",
                "header": header,
                "rows": [{"cells": cells, "highlight": False} for cells in body],
                "verdicts": _gap_verdicts(gaps, task),
            }
        )
    sections = []
    if len(gaps):
        focus, reference = gaps["focus"].iloc[0], gaps["reference"].iloc[0]
        header, body = _gap_body(gaps)
        sections.append(
            {
                "title": f"Gap: {focus} − {reference} (paired by seed)",
                "note": "Difference per seed, mean and 95 % Student-t interval over the pairs.",
                "header": header,
                "rows": body,
                "open": True,
            }
        )
    return {
        "title": "Ablation: pre-training objectives",
        "meta": {key: str(value) for key, value in context.items()},
        "cards": cards,
        "figures": [figure],
        "sections": sections,
    }


def render_ablation_markdown(
    summary: pd.DataFrame,
    gaps: pd.DataFrame,
    context: Mapping[str, str],
    figure_file: str,
) -> str:
    figure = {"caption": "main metric per setting", "path": figure_file, "base64": ""}
    return render("report.md.j2", **_page(summary, gaps, context, figure))


def render_ablation_html(
    summary: pd.DataFrame,
    gaps: pd.DataFrame,
    context: Mapping[str, str],
    figure: Any,
) -> str:
    encoded = {"caption": "main metric per setting", "path": "", "base64": figure_to_base64(figure)}
    return render("report.html.j2", **_page(summary, gaps, context, encoded))
