"""The results table of an evaluation: its columns, the scorers in it, and row look-ups.

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
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from robust_mmr_pipeline.baselines import BASELINE_LABELS
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


def main_metric(task: str) -> str:
    """The task's main metric (``accuracy`` for a task the registry does not know)."""
    return MAIN_METRIC.get(task, "accuracy")


def select(results: pd.DataFrame, **where: Any) -> pd.DataFrame:
    """The rows whose columns equal the given values."""
    mask = pd.Series(True, index=results.index)
    for column, value in where.items():
        mask &= results[column] == value
    return results[mask]


def ours(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of the model itself (results written before scorers existed are all ours)."""
    return results if "model" not in results.columns else results[results["model"] == OURS]


def point_value(results: pd.DataFrame, **where: Any) -> dict[str, float] | None:
    """``{"value", "low", "high"}`` of the first row matching ``where`` (None: no row)."""
    rows = select(results, **where)
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
    present = set(select(results, task=task)["model"]) if "model" in results.columns else {OURS}
    # BASELINE_LABELS also labels from_scratch / frozen_backbone: dict.fromkeys keeps one each
    order = list(dict.fromkeys([OURS, "from_scratch", "frozen_backbone", *BASELINE_LABELS]))
    return [name for name in order if name in present] + sorted(present - set(order))


def model_label(name: str) -> str:
    return "ours (pre-trained, fine-tuned)" if name == OURS else BASELINE_LABELS.get(name, name)
