"""The robustness report: summaries, verdicts, plots and the rendered Markdown / HTML.

Results table (:data:`RESULT_COLUMNS`), one row per task x scorer x condition x metric:

* ``model``: ``ours`` (fine-tuned from the pre-trained backbone), ``from_scratch`` (the same
  architecture and recipe without pre-training), ``frozen_backbone`` (the pre-trained
  backbone without fine-tuning: linear probe / zero-shot retrieval; clean sets only) or a
  trivial baseline
  (:data:`robust_mmr_pipeline.baselines.BASELINES`), all scored on the same rows;
* ``condition``: ``in_domain`` / ``cross_domain`` (clean test splits of those protocols),
  ``perturbed`` (the in-domain test split under one perturbation at one severity) or
  ``domain`` (the main metric of one domain's test rows, ``domain`` set);
* ``modality`` / ``perturbation`` / ``severity``: the perturbation (``""`` / ``0`` when clean);
* ``metric``, ``value`` and the percentile-bootstrap 95 % interval ``ci_low`` / ``ci_high``
  (nan for counts). Drops (``drop_<metric>`` = clean - perturbed), mean-rank degradations
  (``<dir>_mean_rank_degradation`` = perturbed - clean) and the comparisons
  ``diff_<metric>_vs_<reference>`` (``ours`` - reference, on ``ours`` rows) are paired
  bootstraps over the same items.

Verdict (per task and clean condition): the strongest reference (from scratch or a trivial
baseline; not ours' own frozen backbone) is the one with the highest main metric there;
``ours`` *beats* it when the paired 95 % interval of the difference lies above 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.baselines import BASELINE_LABELS
from robust_mmr_pipeline.reporting.render import figure_to_base64, render
from robust_mmr_pipeline.tasks.registry import MAIN_METRIC, TASK_SPECS

OURS = "ours"
FROZEN = "frozen_backbone"
RESULT_COLUMNS: tuple[str, ...] = (
    "task",
    "model",
    "condition",
    "protocol",
    "domain",
    "modality",
    "perturbation",
    "severity",
    "metric",
    "value",
    "ci_low",
    "ci_high",
)
SEVERITY_COLUMNS: tuple[str, ...] = (
    "task",
    "model",
    "perturbation",
    "modality",
    "severity",
    "metric",
    "accuracy",
    "ci_low",
    "ci_high",
)
# Metrics shown in a task's headline card beside the main one.
HEADLINE_EXTRA: dict[str, tuple[str, ...]] = {
    name: spec.headline_extra for name, spec in TASK_SPECS.items() if spec.headline_extra
}
TASK_TITLES: dict[str, str] = {name: spec.title for name, spec in TASK_SPECS.items()}
CONDITION_TITLES: dict[str, str] = {"in_domain": "in-domain", "cross_domain": "cross-domain"}
RANK_METRICS: tuple[str, ...] = ("i2t_mean_rank", "t2i_mean_rank")


def _main(task: str) -> str:
    return MAIN_METRIC.get(task, "accuracy")


def _select(results: pd.DataFrame, **where: Any) -> pd.DataFrame:
    mask = pd.Series(True, index=results.index)
    for column, value in where.items():
        mask &= results[column] == value
    return results[mask]


def ours(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the model itself (results written before scorers existed are all ours)."""
    return results if "model" not in results.columns else results[results["model"] == OURS]


def _value(results: pd.DataFrame, **where: Any) -> dict[str, float] | None:
    rows = _select(results, **where)
    if rows.empty:
        return None
    row = rows.iloc[0]
    return {
        "value": float(row["value"]),
        "low": float(row["ci_low"]),
        "high": float(row["ci_high"]),
    }


def scorers(results: pd.DataFrame, task: str) -> list[str]:
    """``ours`` first, then ``from_scratch``, then the baselines in their registry order."""
    present = set(_select(results, task=task)["model"]) if "model" in results.columns else {OURS}
    # BASELINE_LABELS also labels from_scratch / frozen_backbone: dict.fromkeys keeps one each
    order = list(dict.fromkeys([OURS, "from_scratch", "frozen_backbone", *BASELINE_LABELS]))
    return [name for name in order if name in present] + sorted(present - set(order))


def model_label(name: str) -> str:
    return "ours (pre-trained, fine-tuned)" if name == OURS else BASELINE_LABELS.get(name, name)


# --------------------------------------------------------------------------- tables


def severity_table(results: pd.DataFrame) -> pd.DataFrame:
    """Main metric per task x scorer x perturbation x severity (:data:`SEVERITY_COLUMNS`), the
    clean in-domain value as severity 0 of every perturbation; column ``accuracy`` holds the
    task's main metric (named in ``metric``)."""
    rows: list[dict[str, Any]] = []
    frame = results if "model" in results.columns else results.assign(model=OURS)
    for task in sorted(frame["task"].unique()):
        metric = _main(task)
        for model in scorers(frame, task):
            part = _select(frame, task=task, model=model)
            clean = _value(part, condition="in_domain", metric=metric)
            perturbed = _select(part, condition="perturbed", metric=metric)
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
        rows = _select(part, condition=condition)
        rows = rows[~rows["metric"].str.startswith("diff_")]
        if not rows.empty:
            entry[condition] = _condition_values(rows)
    perturbed = _select(part, condition="perturbed")
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
    metric = _main(task)
    out: dict[str, dict[str, Any]] = {}
    if "model" not in results.columns:
        return out
    for condition in ("in_domain", "cross_domain"):
        best_name, best_value = None, -math.inf
        for name in scorers(results, task):
            if name in (OURS, FROZEN):  # ours itself, not a competitor
                continue
            point = _value(results, task=task, model=name, condition=condition, metric=metric)
            if point is not None and point["value"] > best_value:
                best_name, best_value = name, point["value"]
        mine = _value(results, task=task, model=OURS, condition=condition, metric=metric)
        if best_name is None or mine is None:
            continue
        diff = _value(
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
    metric = _main(task)
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
        metric = _main(task)
        entry: dict[str, Any] = {"main_metric": metric}
        entry.update(_scorer_summary(ours(_select(results, task=task)), metric))
        if mce and task in mce:
            entry["mce"] = dict(mce[task])
        if "model" in results.columns:
            entry["references"] = {
                name: _scorer_summary(_select(results, task=task, model=name), metric)
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


# --------------------------------------------------------------------------- figures


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _strongest_reference(severity: pd.DataFrame, task: str) -> tuple[str, float] | None:
    """The reference with the highest clean in-domain main metric (severity 0 rows)."""
    clean = severity[(severity["task"] == task) & (severity["severity"] == 0)]
    clean = clean[clean["model"] != OURS].drop_duplicates("model")
    if clean.empty:
        return None
    best = clean.loc[clean["accuracy"].idxmax()]
    return str(best["model"]), float(best["accuracy"])


def severity_figure(severity: pd.DataFrame) -> Any:
    """Ours' main metric against severity, one panel per task and modality, one line per
    corruption (95 % CI as error bars; severity 0 = clean); the strongest reference's clean
    value as a dashed line."""
    plt = _pyplot()
    severity = severity if "model" in severity.columns else severity.assign(model=OURS)
    mine = ours(severity)
    panels = sorted({(t, m) for t, m in zip(mine["task"], mine["modality"], strict=True)})
    cols = max(1, min(3, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    if not panels:
        _empty(axes[0, 0], "no perturbed evaluation")
    for ax, (task, modality) in zip(axes.flat, panels, strict=False):
        part = mine[(mine["task"] == task) & (mine["modality"] == modality)]
        for name, unsorted in part.groupby("perturbation", sort=True):
            group = unsorted.sort_values("severity")
            y = group["accuracy"].to_numpy()
            err = np.vstack([y - group["ci_low"].to_numpy(), group["ci_high"].to_numpy() - y])
            ax.errorbar(
                group["severity"], y, yerr=np.clip(err, 0, None), marker="o", capsize=2, label=name
            )
        reference = _strongest_reference(severity, task)
        if reference is not None:
            ax.axhline(reference[1], ls="--", color="grey", lw=1,
                       label=f"clean: {reference[0]}")  # fmt: skip
        ax.set_title(f"{TASK_TITLES.get(task, task)}: {modality} perturbations")
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(str(part["metric"].iloc[0]) if len(part) else "")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7, ncol=2)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def domain_figure(results: pd.DataFrame) -> Any:
    """Ours' main metric per domain (in-domain test domains and the held-out domain)."""
    plt = _pyplot()
    domains = _select(ours(results), condition="domain")
    tasks = sorted(domains["task"].unique())
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 3.6))
    axes = np.atleast_1d(axes)
    if not tasks:
        _empty(axes[0], "no per-domain evaluation")
    for ax, task in zip(axes, tasks, strict=False):
        part = domains[domains["task"] == task].sort_values(["protocol", "domain"])
        x = np.arange(len(part))
        y = part["value"].to_numpy()
        err = np.clip(np.vstack([y - part["ci_low"], part["ci_high"] - y]), 0, None)
        colors = ["tab:blue" if p == "in_domain" else "tab:orange" for p in part["protocol"]]
        ax.bar(x, y, yerr=err, color=colors, capsize=3)
        ax.set_xticks(
            x, [f"{d}\n({p})" for d, p in zip(part["domain"], part["protocol"], strict=True)]
        )
        ax.tick_params(axis="x", labelsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{TASK_TITLES.get(task, task)}: {_main(task)} by domain")
    fig.tight_layout()
    return fig


def retrieval_figure(results: pd.DataFrame) -> Any:
    """Ours' retrieval mean rank (both directions) clean vs every perturbed condition."""
    plt = _pyplot()
    retrieval = _select(ours(results), task="retrieval")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(retrieval) ** 0.5 + 6), 3.8))
    clean = _select(retrieval, condition="in_domain")
    if clean.empty:
        _empty(ax, "no retrieval evaluation")
        fig.tight_layout()
        return fig
    labels = ["clean"]
    perturbed = _select(retrieval, condition="perturbed")
    keys = (
        perturbed[["perturbation", "severity"]]
        .drop_duplicates()
        .sort_values(["perturbation", "severity"])
    )
    labels += [f"{p}@{s}" for p, s in zip(keys["perturbation"], keys["severity"], strict=True)]
    width = 0.4
    x = np.arange(len(labels))
    for offset, name in zip((-width / 2, width / 2), RANK_METRICS, strict=True):
        values, lows, highs = [], [], []
        points = [_value(clean, metric=name)] + [
            _value(perturbed, perturbation=p, severity=s, metric=name)
            for p, s in zip(keys["perturbation"], keys["severity"], strict=True)
        ]
        for found in points:
            point = found or {"value": math.nan, "low": math.nan, "high": math.nan}
            values.append(point["value"])
            lows.append(point["value"] - point["low"])
            highs.append(point["high"] - point["value"])
        err = np.clip(np.nan_to_num(np.vstack([lows, highs])), 0, None)
        ax.bar(x + offset, values, width, yerr=err, capsize=2, label=name.replace("_", " "))
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("mean rank (lower is better)")
    ax.set_title("Retrieval: mean rank clean vs perturbed")
    ax.legend()
    fig.tight_layout()
    return fig


def validation_figure(histories: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]]) -> Any:
    """Fine-tuning validation curves: ``{task: {run: history}}`` (history records have ``step``
    and ``val/<metric>``), the selection metric against the step, one panel per task."""
    plt = _pyplot()
    tasks = sorted(histories)
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 3.4))
    axes = np.atleast_1d(axes)
    if not tasks:
        _empty(axes[0], "no fine-tuning history")
    for ax, task in zip(axes, tasks, strict=False):
        for run, history in histories[task].items():
            frame = pd.DataFrame(list(history))
            keys = [c for c in frame.columns if c.startswith("val/") and not c.endswith("_n")]
            if frame.empty or not keys:
                continue
            spec = TASK_SPECS.get(task)
            metric = f"val/{spec.selection_metric if spec else 'rsum'}"
            column = metric if metric in frame.columns else keys[0]
            ax.plot(frame["step"], frame[column], marker="o", ms=3, label=model_label(run))
            ax.set_ylabel(column)
        ax.set_title(f"{TASK_TITLES.get(task, task)}: validation during fine-tuning")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- rendering


def _fmt(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:.3f}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def _point(results: pd.DataFrame, **where: Any) -> str:
    point = _value(results, **where)
    return _fmt(point["value"], point["low"], point["high"]) if point else "–"


def headline_cards(results: pd.DataFrame, summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One card per task: every scorer's main metric in-domain / cross-domain / perturbed, and
    the verdict lines against the strongest reference."""
    cards = []
    for task in sorted(results["task"].unique()):
        metric = _main(task)
        extra = HEADLINE_EXTRA.get(task, ())
        header = ["model", f"in-domain {metric}", f"cross-domain {metric}",
                  f"mean perturbed {metric}", "mean drop"]  # fmt: skip
        header += [f"in-domain {m}" for m in extra]
        rows = []
        for name in scorers(results, task):
            part = _select(results, task=task, model=name) if "model" in results else results
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
            part = _select(results, task=task, model=name) if "model" in results else results
            metrics = _select(part, condition="in_domain")
            for metric in metrics["metric"]:
                if not np.isfinite(_select(metrics, metric=metric)["ci_low"].iloc[0]):
                    continue
                body.append(
                    [task, name, metric]
                    + [_point(part, condition=c, metric=metric) for c in CONDITION_TITLES]
                )
    return body


def _perturbed_rows(results: pd.DataFrame) -> list[list[str]]:
    body = []
    perturbed = _select(results, condition="perturbed")
    for task in sorted(perturbed["task"].unique()):
        metric = _main(task)
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
    retrieval = _select(ours(results), task="retrieval")
    perturbed = _select(retrieval, condition="perturbed")
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
