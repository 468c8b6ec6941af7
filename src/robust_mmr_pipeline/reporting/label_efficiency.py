"""The label-efficiency table and figure (recipes/label_efficiency.py's rows).

One row per task x condition x budget: every model's main metric [95 % CI] side by side, then
the paired differences that say whether pre-training paid: ``ours − from scratch`` and the
frozen probe's gain over a randomly initialised backbone's probe.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from robust_mmr_pipeline.recipes.label_efficiency import FROZEN_RANDOM, PLAIN_FT
from robust_mmr_pipeline.reporting.results import OURS

MODELS: tuple[tuple[str, str], ...] = (
    (OURS, "ours (pre-trained, LP-FT)"),
    (PLAIN_FT, "pre-trained, plain FT"),
    ("from_scratch", "from scratch"),
    ("frozen_backbone", "frozen probe (pre-trained)"),
    (FROZEN_RANDOM, "frozen probe (random init)"),
)
DIFFERENCES: tuple[tuple[str, str, str], ...] = (
    (OURS, "from_scratch", "ours − from scratch"),
    (OURS, PLAIN_FT, "ours − plain FT"),
    ("frozen_backbone", FROZEN_RANDOM, "probe: pre-trained − random"),
)
SECTION_TITLE = "Label efficiency: does pre-training pay?"
SECTION_NOTE = (
    "Each model fine-tuned (or probed) on the same nested subsets of the labeled train rows "
    "(by image, seeded), selected on the same val rows, scored on the same clean test rows; "
    "95 % bootstrap intervals, differences paired over the test items. Pre-training pays "
    "where `ours − from scratch` lies above 0."
)


def _cell(value: float, low: float, high: float, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "–"
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:+.3f}, {high:+.3f}]" if signed else f" [{low:.3f}, {high:.3f}]"
    return text


def _lookup(part: pd.DataFrame, model: str, metric: str) -> tuple[float, float, float] | None:
    hit = part[(part["model"] == model) & (part["metric"] == metric)]
    if hit.empty:
        return None
    row = hit.iloc[0]
    return float(row["value"]), float(row["ci_low"]), float(row["ci_high"])


def label_efficiency_table(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the label-efficiency table (empty rows when there is nothing)."""
    if frame.empty:
        return [], []
    present = set(frame["model"])
    models = [(name, title) for name, title in MODELS if name in present]
    header = ["task", "test", "budget (train rows)", *(title for _, title in models)]
    header += [title for first, second, title in DIFFERENCES if {first, second} <= present]
    rows = []
    keys = frame[["task", "condition", "fraction", "budget", "train_rows"]].drop_duplicates()
    for _, key in keys.sort_values(["task", "condition", "fraction"]).iterrows():
        part = frame[
            (frame["task"] == key["task"])
            & (frame["condition"] == key["condition"])
            & (frame["fraction"] == key["fraction"])
        ]
        metric = str(part["metric"][~part["metric"].str.startswith("diff_")].iloc[0])
        cells = [str(key["task"]), str(key["condition"]), f"{key['budget']} ({key['train_rows']})"]
        for name, _title in models:
            found = _lookup(part, name, metric)
            cells.append(_cell(*found) if found else "–")
        for first, second, _title in DIFFERENCES:
            if {first, second} <= present:
                found = _lookup(part, first, f"diff_{metric}_vs_{second}")
                cells.append(_cell(*found, signed=True) if found else "–")
        rows.append(cells)
    return header, rows


def nested_values(frame: pd.DataFrame) -> dict[str, Any]:
    """``{task: {condition: {budget %: {"<model>/<metric>": value, ..._ci_low/_ci_high}}}}``
    for the metrics summary and MLflow (``%`` spelled ``pct`` in names)."""
    out: dict[str, Any] = {}
    for row in frame.itertuples(index=False):
        budget = str(row.budget).replace("%", "pct")
        entry = out.setdefault(str(row.task), {}).setdefault(str(row.condition), {})
        values = entry.setdefault(budget, {})
        key = f"{row.model}/{row.metric}"
        values[key] = float(row.value)
        values[f"{key}_ci_low"] = float(row.ci_low)
        values[f"{key}_ci_high"] = float(row.ci_high)
    return out


def label_efficiency_section(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as a report section of the shared template ([] when there is none)."""
    header, rows = label_efficiency_table(frame)
    if not rows:
        return []
    return [
        {"title": SECTION_TITLE, "note": SECTION_NOTE, "header": header, "rows": rows, "open": True}
    ]


def label_efficiency_figure(frame: pd.DataFrame) -> Any:
    """Main metric against the label budget (log scale), one panel per task x condition, one
    line per model with its 95 % interval as a band."""
    from robust_mmr_pipeline.reporting.figures import empty_panel, pyplot

    plt = pyplot()
    scores = frame[~frame["metric"].astype(str).str.startswith("diff_")] if len(frame) else frame
    panels = (
        sorted(
            scores[["task", "condition"]].drop_duplicates().itertuples(index=False),
            key=lambda p: (p[0], p[1] != "in_domain"),
        )
        if len(scores)
        else []
    )
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 3.4), squeeze=False
    )
    if not panels:
        empty_panel(axes[0][0], "no label budgets were run")
        return fig
    for ax, (task, condition) in zip(axes[0], panels, strict=True):
        part = scores[(scores["task"] == task) & (scores["condition"] == condition)]
        for name, title in MODELS:
            line = part[part["model"] == name].sort_values("fraction")
            if line.empty:
                continue
            x = 100 * line["fraction"].to_numpy()
            ax.plot(x, line["value"], marker="o", label=title)
            ax.fill_between(x, line["ci_low"], line["ci_high"], alpha=0.15)
        ax.set_xscale("log")
        budgets = sorted(100 * part["fraction"].unique())
        ax.set_xticks(budgets, [f"{b:g}%" for b in budgets])
        ax.minorticks_off()
        ax.set_xlabel("label budget (% of train rows)")
        ax.set_ylabel(str(part["metric"].iloc[0]))
        ax.set_title(f"{task}, {condition.replace('_', '-')}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig
