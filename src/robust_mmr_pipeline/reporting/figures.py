"""The robustness report's figures (matplotlib, Agg backend): ours' main metric against
severity, per domain, retrieval mean ranks, and validation curves during fine-tuning."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.reporting.results import (
    OURS,
    RANK_METRICS,
    TASK_TITLES,
    main_metric,
    model_label,
    ours,
    point_value,
    select,
)
from robust_mmr_pipeline.tasks.registry import TASK_SPECS


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def empty_panel(ax: Any, message: str) -> None:
    """An axis with ``message`` in its middle and no frame."""
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
    plt = pyplot()
    severity = severity if "model" in severity.columns else severity.assign(model=OURS)
    mine = ours(severity)
    panels = sorted({(t, m) for t, m in zip(mine["task"], mine["modality"], strict=True)})
    cols = max(1, min(3, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    if not panels:
        empty_panel(axes[0, 0], "no perturbed evaluation")
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
    plt = pyplot()
    domains = select(ours(results), condition="domain")
    tasks = sorted(domains["task"].unique())
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 3.6))
    axes = np.atleast_1d(axes)
    if not tasks:
        empty_panel(axes[0], "no per-domain evaluation")
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
        ax.set_title(f"{TASK_TITLES.get(task, task)}: {main_metric(task)} by domain")
    fig.tight_layout()
    return fig


def retrieval_figure(results: pd.DataFrame) -> Any:
    """Ours' retrieval mean rank (both directions) clean vs every perturbed condition."""
    plt = pyplot()
    retrieval = select(ours(results), task="retrieval")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(retrieval) ** 0.5 + 6), 3.8))
    clean = select(retrieval, condition="in_domain")
    if clean.empty:
        empty_panel(ax, "no retrieval evaluation")
        fig.tight_layout()
        return fig
    labels = ["clean"]
    perturbed = select(retrieval, condition="perturbed")
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
        points = [point_value(clean, metric=name)] + [
            point_value(perturbed, perturbation=p, severity=s, metric=name)
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
    plt = pyplot()
    tasks = sorted(histories)
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 3.4))
    axes = np.atleast_1d(axes)
    if not tasks:
        empty_panel(axes[0], "no fine-tuning history")
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
