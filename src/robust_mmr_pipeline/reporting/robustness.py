"""The robustness report: summaries, plots and Markdown / HTML of the evaluation results.

Results table (:data:`RESULT_COLUMNS`), one row per task x condition x metric:

* ``condition``: ``in_domain`` / ``cross_domain`` (clean test splits of those protocols),
  ``perturbed`` (the in-domain test split under one perturbation at one severity) or
  ``domain`` (the main metric of one domain's test rows, ``domain`` set);
* ``modality`` / ``perturbation`` / ``severity``: the perturbation (``""`` / ``0`` when clean);
* ``metric``, ``value`` and the percentile-bootstrap 95 % interval ``ci_low`` / ``ci_high``
  (nan for counts). Drops (``drop_<metric>`` = clean - perturbed) and mean-rank degradations
  (``<dir>_mean_rank_degradation`` = perturbed - clean) use paired bootstraps over the items.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

RESULT_COLUMNS: tuple[str, ...] = (
    "task",
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
    "perturbation",
    "modality",
    "severity",
    "metric",
    "accuracy",
    "ci_low",
    "ci_high",
)
MAIN_METRIC: dict[str, str] = {
    "vqa": "overall",
    "classification": "accuracy",
    "retrieval": "t2i_r@1",
}
TASK_TITLES: dict[str, str] = {
    "vqa": "VQA",
    "classification": "Classification",
    "retrieval": "Retrieval",
}
RANK_METRICS: tuple[str, ...] = ("i2t_mean_rank", "t2i_mean_rank")


def _main(task: str) -> str:
    return MAIN_METRIC.get(task, "accuracy")


def _select(results: pd.DataFrame, **where: Any) -> pd.DataFrame:
    mask = pd.Series(True, index=results.index)
    for column, value in where.items():
        mask &= results[column] == value
    return results[mask]


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


# --------------------------------------------------------------------------- tables


def severity_table(results: pd.DataFrame) -> pd.DataFrame:
    """Main metric per task x perturbation x severity (:data:`SEVERITY_COLUMNS`), the clean
    in-domain value as severity 0 of every perturbation; column ``accuracy`` holds the task's
    main metric (named in ``metric``)."""
    rows: list[dict[str, Any]] = []
    for task in sorted(results["task"].unique()):
        metric = _main(task)
        clean = _value(results, task=task, condition="in_domain", metric=metric)
        perturbed = _select(results, task=task, condition="perturbed", metric=metric)
        for (modality, name), group in perturbed.groupby(["modality", "perturbation"], sort=True):
            if clean is not None:
                rows.append(
                    {
                        "task": task,
                        "perturbation": name,
                        "modality": modality,
                        "severity": 0,
                        "metric": metric,
                        "accuracy": clean["value"],
                        "ci_low": clean["low"],
                        "ci_high": clean["high"],
                    }
                )
            for _, row in group.sort_values("severity").iterrows():
                rows.append(
                    {
                        "task": task,
                        "perturbation": name,
                        "modality": modality,
                        "severity": int(row["severity"]),
                        "metric": metric,
                        "accuracy": float(row["value"]),
                        "ci_low": float(row["ci_low"]),
                        "ci_high": float(row["ci_high"]),
                    }
                )
    return pd.DataFrame(rows, columns=list(SEVERITY_COLUMNS))


def metrics_summary(
    results: pd.DataFrame, mce: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """Nested ``{task: {...}}`` for ``dvc metrics show``: clean in-/cross-domain metrics with
    CIs, the mean perturbed main metric and drop, retrieval mean-rank degradation, mCE."""
    out: dict[str, Any] = {}
    for task in sorted(results["task"].unique()):
        metric = _main(task)
        entry: dict[str, Any] = {"main_metric": metric}
        for condition in ("in_domain", "cross_domain"):
            rows = _select(results, task=task, condition=condition)
            if rows.empty:
                continue
            values: dict[str, float] = {}
            for _, row in rows.iterrows():
                values[row["metric"]] = float(row["value"])
                if np.isfinite(row["ci_low"]):
                    values[f"{row['metric']}_ci_low"] = float(row["ci_low"])
                    values[f"{row['metric']}_ci_high"] = float(row["ci_high"])
            entry[condition] = values
        perturbed = _select(results, task=task, condition="perturbed")
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
        if mce and task in mce:
            entry["mce"] = dict(mce[task])
        out[task] = entry
    return out


def mce_against(severity: pd.DataFrame, baseline: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per task: mCE (and relative mCE) of a :func:`severity_table` against a baseline's, over
    the corruptions and severities both hold (error = 1 - main metric)."""
    from robust_mmr_pipeline.tasks.metrics import mean_corruption_error

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


def severity_figure(severity: pd.DataFrame) -> Any:
    """Main metric against severity, one panel per task and modality, one line per corruption
    (95 % CI as error bars; severity 0 = clean)."""
    plt = _pyplot()
    panels = (
        sorted({(t, m) for t, m in zip(severity["task"], severity["modality"], strict=True)})
        if not severity.empty
        else []
    )
    cols = max(1, min(3, len(panels)))
    rows = max(1, math.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    if not panels:
        _empty(axes[0, 0], "no perturbed evaluation")
    for ax, (task, modality) in zip(axes.flat, panels, strict=False):
        part = severity[(severity["task"] == task) & (severity["modality"] == modality)]
        for name, unsorted in part.groupby("perturbation", sort=True):
            group = unsorted.sort_values("severity")
            y = group["accuracy"].to_numpy()
            err = np.vstack([y - group["ci_low"].to_numpy(), group["ci_high"].to_numpy() - y])
            ax.errorbar(
                group["severity"], y, yerr=np.clip(err, 0, None), marker="o", capsize=2, label=name
            )
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
    """Main metric per domain (in-domain test domains and the held-out domain), per task."""
    plt = _pyplot()
    domains = _select(results, condition="domain")
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
    """Retrieval mean rank (both directions) clean vs every perturbed condition."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(results) ** 0.5 + 6), 3.8))
    retrieval = _select(results, task="retrieval")
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
        clean_row = _value(clean, metric=name)
        points = [clean_row] + [
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


def figure_to_base64(figure: Any, dpi: int = 100) -> str:
    """The figure as a base64 PNG (for ``<img src="data:image/png;base64,...">``)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- rendering


def _fmt(value: float, low: float | None = None, high: float | None = None) -> str:
    if value is None or not np.isfinite(value):
        return "–"
    text = f"{value:.3f}"
    if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
        text += f" [{low:.3f}, {high:.3f}]"
    return text


def _clean_table(results: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["task", "metric", "in-domain test", "cross-domain test (held-out domain)"]
    body = []
    for task in sorted(results["task"].unique()):
        metrics = _select(results, task=task, condition="in_domain")
        for metric in metrics["metric"]:
            if not np.isfinite(_select(metrics, metric=metric)["ci_low"].iloc[0]):
                continue
            cells = [task, metric]
            for condition in ("in_domain", "cross_domain"):
                point = _value(results, task=task, condition=condition, metric=metric)
                cells.append(_fmt(point["value"], point["low"], point["high"]) if point else "–")
            body.append(cells)
    return header, body


def _perturbed_table(results: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["task", "perturbation", "modality", "severity", "metric", "value [95 % CI]", "drop"]
    body = []
    perturbed = _select(results, condition="perturbed")
    for task in sorted(perturbed["task"].unique()):
        metric = _main(task)
        part = perturbed[(perturbed["task"] == task) & (perturbed["metric"] == metric)]
        for _, row in part.sort_values(["modality", "perturbation", "severity"]).iterrows():
            drop = _value(
                perturbed,
                task=task,
                perturbation=row["perturbation"],
                severity=row["severity"],
                metric=f"drop_{metric}",
            )
            body.append(
                [
                    task,
                    row["perturbation"],
                    row["modality"],
                    str(int(row["severity"])),
                    metric,
                    _fmt(row["value"], row["ci_low"], row["ci_high"]),
                    _fmt(drop["value"], drop["low"], drop["high"]) if drop else "–",
                ]
            )
    return header, body


def _rank_table(results: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["perturbation", "severity", "direction", "mean rank", "degradation [95 % CI]"]
    body = []
    perturbed = _select(results, task="retrieval", condition="perturbed")
    for name in RANK_METRICS:
        clean = _value(results, task="retrieval", condition="in_domain", metric=name)
        if clean:
            body.append(
                ["clean", "0", name[:3], _fmt(clean["value"], clean["low"], clean["high"]), "–"]
            )
        part = perturbed[perturbed["metric"] == name]
        for _, row in part.sort_values(["perturbation", "severity"]).iterrows():
            deg = _value(
                perturbed,
                perturbation=row["perturbation"],
                severity=row["severity"],
                metric=f"{name}_degradation",
            )
            body.append(
                [
                    row["perturbation"],
                    str(int(row["severity"])),
                    name[:3],
                    _fmt(row["value"], row["ci_low"], row["ci_high"]),
                    _fmt(deg["value"], deg["low"], deg["high"]) if deg else "–",
                ]
            )
    return header, body


def _mce_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "mCE", "relative mCE", "corruptions"]
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
    return header, body


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    if not body:
        return "_none_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def html_table(header: list[str], body: list[list[str]]) -> str:
    if not body:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _sections(
    results: pd.DataFrame, summary: Mapping[str, Any]
) -> list[tuple[str, str, tuple[list[str], list[list[str]]]]]:
    return [
        (
            "Clean test sets",
            "Selected on validation, evaluated once on test. In-domain = the training domains' "
            "test split; cross-domain = the held-out domain.",
            _clean_table(results),
        ),
        (
            "Perturbed in-domain test set",
            "Each corruption applied on the fly with the manifest's seed; drop = clean - "
            "perturbed (paired bootstrap 95 % CI).",
            _perturbed_table(results),
        ),
        (
            "Retrieval ranks",
            "Contrastive top-k then ITM re-rank; degradation = perturbed - clean mean rank.",
            _rank_table(results),
        ),
        (
            "Mean corruption error against the baseline",
            "CE_c = sum_s E_model / sum_s E_baseline (E = 1 - main metric); relative mCE "
            "subtracts each model's clean error. Only with evaluation.baseline_metrics.",
            _mce_table(summary),
        ),
    ]


def render_markdown(
    results: pd.DataFrame,
    summary: Mapping[str, Any],
    context: Mapping[str, Any],
    figures: Mapping[str, str],
) -> str:
    """The report as Markdown; ``figures`` maps a caption to a PNG path relative to it."""
    lines = ["# Robustness report", ""]
    lines += [f"- **{key}**: {value}" for key, value in context.items()]
    lines.append("")
    for title, note, table in _sections(results, summary):
        lines += [f"## {title}", "", note, "", markdown_table(*table)]
    lines += ["## Figures", ""]
    lines += [f"![{caption}]({path})" for caption, path in figures.items()]
    return "\n".join(lines) + "\n"


def render_html(
    results: pd.DataFrame,
    summary: Mapping[str, Any],
    context: Mapping[str, Any],
    figures: Mapping[str, tuple[str, str]],
) -> str:
    """A self-contained HTML report; ``figures`` maps a caption to (PNG path, base64 PNG)."""
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Robustness report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 6px}th{background:#eee}img{max-width:100%}</style></head><body>",
        "<h1>Robustness report</h1><ul>",
    ]
    parts += [
        f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in context.items()
    ]
    parts.append("</ul>")
    for title, note, table in _sections(results, summary):
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(note)}</p>"]
        parts.append(html_table(*table))
    parts.append("<h2>Figures</h2>")
    for caption, (path, encoded) in figures.items():
        parts.append(
            f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption>{html.escape(caption)} (<a href='{html.escape(path)}'>"
            f"{html.escape(path)}</a>)</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
