"""Where the evaluation's minutes went: the stage time table in the summary and the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def timing_summary(stages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{task: {stage: seconds}, "total": seconds}`` (flat_metrics logs it to MLflow)."""
    out: dict[str, Any] = {}
    for record in stages:
        task = out.setdefault(str(record["task"]), {})
        task[str(record["stage"])] = round(float(record["seconds"]), 3)
    out["total"] = round(sum(float(r["seconds"]) for r in stages), 3)
    return out


def timing_section(stages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The report section: one row per task and stage with its seconds and share of the whole."""
    total = sum(float(r["seconds"]) for r in stages)
    if not stages or total <= 0:
        return []
    rows = [
        [str(r["task"]), str(r["stage"]), f"{float(r['seconds']):.1f}",
         f"{100 * float(r['seconds']) / total:.0f} %"]
        for r in stages
    ]  # fmt: skip
    rows.append(["all", "total", f"{total:.1f}", "100 %"])
    return [
        {
            "title": "Evaluation time per stage",
            "note": "Wall-clock seconds of the evaluate_models node, per task and stage "
            "(exclusive: the bootstrap is not counted inside scoring).",
            "header": ["task", "stage", "seconds", "share"],
            "rows": rows,
            "open": False,
        }
    ]
