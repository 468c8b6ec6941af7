"""Summaries of a results table: the severity table, per-scorer summaries, the verdict
against the strongest reference, mCE against a baseline run and flat metric names.

Verdict (per task and clean condition): the strongest reference (from scratch or a trivial
baseline; not ours' own frozen backbone) is the one with the highest main metric there;
``ours`` *beats* it when the paired 95 % interval of the difference lies above 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.reporting.results import (
    CONDITION_TITLES,
    FROZEN,
    OURS,
    RANK_METRICS,
    SEVERITY_COLUMNS,
    main_metric,
    model_label,
    ours,
    point_value,
    scorers,
    select,
)


def severity_table(results: pd.DataFrame) -> pd.DataFrame:
    """Main metric per task x scorer x perturbation x severity (:data:`SEVERITY_COLUMNS`), the
    clean in-domain value as severity 0 of every perturbation; column ``accuracy`` holds the
    task's main metric (named in ``metric``)."""
    rows: list[dict[str, Any]] = []
    frame = results if "model" in results.columns else results.assign(model=OURS)
    for task in sorted(frame["task"].unique()):
        metric = main_metric(task)
        for model in scorers(frame, task):
            part = select(frame, task=task, model=model)
            clean = point_value(part, condition="in_domain", metric=metric)
            perturbed = select(part, condition="perturbed", metric=metric)
            for (modality, name), group in perturbed.groupby(["modality", "perturbation"]):
                points = [] if clean is None else [(0, clean["value"], clean["low"], clean["high"])]
                points += [
                    (int(r["severity"]), float(r["value"]), float(r["ci_low"]), float(r["ci_high"]))
                    for _, r in group.sort_values("severity").iterrows()
                ]
                rows += [
                    {"task": task, "model": model, "perturbation": name, "modality": modality,
                     "severity": s, "metric": metric, "accuracy": v, "ci_low": lo, "ci_high": hi}
                    for s, v, lo, hi in points
                ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(SEVERITY_COLUMNS))


def _condition_values(rows: pd.DataFrame) -> dict[str, float]:
    values: dict[str, float] = {}
    for _, row in rows.iterrows():
        values[row["metric"]] = float(row["value"])
        if np.isfinite(row["ci_low"]):
            values[f"{row['metric']}_ci_low"] = float(row["ci_low"])
            values[f"{row['metric']}_ci_high"] = float(row["ci_high"])
    return values


def _scorer_summary(part: pd.DataFrame, metric: str) -> dict[str, Any]:
    """Clean in-/cross-domain metrics with CIs and the perturbed means of one scorer."""
    entry: dict[str, Any] = {}
    for condition in ("in_domain", "cross_domain"):
        rows = select(part, condition=condition)
        rows = rows[~rows["metric"].str.startswith("diff_")]
        if not rows.empty:
            entry[condition] = _condition_values(rows)
    perturbed = select(part, condition="perturbed")
    if not perturbed.empty:
        main = perturbed[perturbed["metric"] == metric]["value"]
        drops = perturbed[perturbed["metric"] == f"drop_{metric}"]["value"]
        entry["perturbed"] = {
            f"mean_{metric}": float(main.mean()),
            f"worst_{metric}": float(main.min()),
            f"mean_drop_{metric}": float(drops.mean()) if len(drops) else math.nan,
            "conditions": len(main),
        }
        for name in RANK_METRICS:
            degradation = perturbed[perturbed["metric"] == f"{name}_degradation"]["value"]
            if len(degradation):
                entry["perturbed"][f"mean_{name}_degradation"] = float(degradation.mean())
    return entry


def verdicts(results: pd.DataFrame, task: str) -> dict[str, dict[str, Any]]:
    """Per clean condition: the strongest reference and ``ours`` - it (paired 95 % CI).

    ``beats`` is True when the interval of the difference lies above 0;
    ``ci_above_reference`` when ours' own interval lies above the reference's point estimate.
    """
    metric = main_metric(task)
    out: dict[str, dict[str, Any]] = {}
    if "model" not in results.columns:
        return out
    for condition in ("in_domain", "cross_domain"):
        best_name, best_value = None, -math.inf
        for name in scorers(results, task):
            if name in (OURS, FROZEN):  # ours itself, not a competitor
                continue
            point = point_value(results, task=task, model=name, condition=condition, metric=metric)
            if point is not None and point["value"] > best_value:
                best_name, best_value = name, point["value"]
        mine = point_value(results, task=task, model=OURS, condition=condition, metric=metric)
        if best_name is None or mine is None:
            continue
        diff = point_value(
            results, task=task, model=OURS, condition=condition,
            metric=f"diff_{metric}_vs_{best_name}",
        )  # fmt: skip
        if diff is None:
            continue
        out[condition] = {
            "reference": best_name,
            "reference_value": best_value,
            "ours": mine["value"],
            "difference": diff["value"],
            "difference_ci_low": diff["low"],
            "difference_ci_high": diff["high"],
            "beats": bool(np.isfinite(diff["low"]) and diff["low"] > 0),
            "ci_above_reference": bool(np.isfinite(mine["low"]) and mine["low"] > best_value),
        }
    return out


def verdict_text(task: str, condition: str, verdict: Mapping[str, Any]) -> str:
    """One line: "beats the strongest reference by X [CI]" or "does not"."""
    metric = main_metric(task)
    ref = f"{model_label(verdict['reference'])} ({verdict['reference_value']:.3f})"
    diff = (
        f"{verdict['difference']:+.3f} [{verdict['difference_ci_low']:+.3f}, "
        f"{verdict['difference_ci_high']:+.3f}]"
    )
    where = CONDITION_TITLES[condition]
    if verdict["beats"]:
        return f"{where}: beats the strongest reference, {ref}, on {metric} by {diff}."
    return f"{where}: does NOT beat the strongest reference, {ref}, on {metric}: difference {diff}."


def metrics_summary(
    results: pd.DataFrame, mce: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Nested ``{task: {...}}`` for ``dvc metrics show``: ours' clean in-/cross-domain metrics
    with CIs, mean perturbed main metric and drop, retrieval mean-rank degradation, mCE; the
    same for every reference under ``references``; the ``verdict`` per clean condition."""
    out: dict[str, Any] = {}
    for task in sorted(results["task"].unique()):
        metric = main_metric(task)
        entry: dict[str, Any] = {"main_metric": metric}
        entry.update(_scorer_summary(ours(select(results, task=task)), metric))
        if mce and task in mce:
            entry["mce"] = dict(mce[task])
        if "model" in results.columns:
            entry["references"] = {
                name: _scorer_summary(select(results, task=task, model=name), metric)
                for name in scorers(results, task)
                if name != OURS
            }
            entry["verdict"] = verdicts(results, task)
        out[task] = entry
    return out


def mce_against(severity: pd.DataFrame, baseline: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per task: mCE (and relative mCE) of ours in a :func:`severity_table` against a baseline
    run's (its ``ours`` rows), over the corruptions and severities both hold (error = 1 - main
    metric)."""
    from robust_mmr_pipeline.tasks.metrics import mean_corruption_error

    severity, baseline = ours(severity), ours(baseline)
    out: dict[str, dict[str, Any]] = {}
    for task, part in severity.groupby("task"):
        base = baseline[baseline["task"] == task]
        if base.empty:
            continue
        model_err: dict[str, list[float]] = {}
        base_err: dict[str, list[float]] = {}
        clean_model = clean_base = None
        for name, group in part[part["severity"] > 0].groupby("perturbation"):
            ref = base[(base["perturbation"] == name) & (base["severity"] > 0)]
            common = sorted(set(group["severity"]) & set(ref["severity"]))
            if not common:
                continue
            model_err[name] = [
                1 - float(group[group["severity"] == s]["accuracy"].iloc[0]) for s in common
            ]
            base_err[name] = [
                1 - float(ref[ref["severity"] == s]["accuracy"].iloc[0]) for s in common
            ]
        clean = part[part["severity"] == 0]["accuracy"]
        clean_ref = base[base["severity"] == 0]["accuracy"]
        if len(clean) and len(clean_ref):
            clean_model, clean_base = 1 - float(clean.iloc[0]), 1 - float(clean_ref.iloc[0])
        if not model_err:
            continue
        result = mean_corruption_error(model_err, base_err)
        entry: dict[str, Any] = {"mce": result["mce"], "corruptions": len(model_err)}
        if clean_model is not None:
            relative = mean_corruption_error(
                model_err,
                base_err,
                model_clean_error=clean_model,
                baseline_clean_error=clean_base,
            )
            entry["relative_mce"] = relative["mce"]
        entry.update({f"ce_{k}": v for k, v in result["per_corruption"].items()})
        out[str(task)] = entry
    return out


def flat_metrics(data: Any, prefix: str = "") -> dict[str, float]:
    """Finite numbers of a nested summary as ``{"a/b/c": value}`` (MLflow metric names: ``@``
    becomes ``_at_``); strings, booleans and non-finite values are left out."""
    out: dict[str, float] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(flat_metrics(value, f"{prefix}/{key}" if prefix else str(key)))
    elif isinstance(data, int | float) and not isinstance(data, bool) and math.isfinite(data):
        out[prefix.replace("@", "_at_")] = float(data)
    return out
