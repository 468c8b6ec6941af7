"""Result rows of the evaluation: metrics with CIs, per-domain means, paired drops and the
comparisons ``ours - reference`` (:data:`~robust_mmr_pipeline.reporting.results.RESULT_COLUMNS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from robust_mmr_pipeline.reporting.results import OURS

if TYPE_CHECKING:
    from robust_mmr_pipeline.recipes.evaluate import EvaluationItems


def _record(task: str, model: str, condition: str, protocol: str, **fields: Any) -> dict:
    row = {
        "task": task,
        "model": model,
        "condition": condition,
        "protocol": protocol,
        "domain": "",
        "modality": "",
        "perturbation": "",
        "severity": 0,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    row.update(fields)
    return row


def _metric_rows(
    task: str, model: str, condition: str, protocol: str, metrics: Mapping[str, float], **fields
) -> list[dict[str, Any]]:
    """One row per metric that has a CI (plus the item count ``n``)."""
    rows = []
    for name, value in metrics.items():
        if f"{name}_ci_low" in metrics:
            rows.append(
                _record(task, model, condition, protocol, metric=name, value=float(value),
                        ci_low=float(metrics[f"{name}_ci_low"]),
                        ci_high=float(metrics[f"{name}_ci_high"]), **fields)
            )  # fmt: skip
    count = metrics.get("n", metrics.get("t2i_n"))
    if count is not None:
        rows.append(
            _record(task, model, condition, protocol, metric="n", value=float(count), **fields)
        )
    return rows


def _ci(statistic: Callable, *arrays: np.ndarray, n_boot: int, seed: int) -> tuple[float, ...]:
    from robust_mmr_pipeline.tasks import bootstrap_ci

    if n_boot <= 0:
        value = float(np.asarray(statistic(*(a[None] for a in arrays))).reshape(-1)[0])
        return value, math.nan, math.nan
    ci = bootstrap_ci(statistic, *arrays, n_boot=n_boot, seed=seed)
    return ci.estimate, ci.low, ci.high


def _mean_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``[R, n]`` paired resamples -> ``[R]`` ``mean(first) - mean(second)``."""
    return first.mean(axis=1) - second.mean(axis=1)


def _domain_rows(
    task: str, model: str, protocol: str, items: EvaluationItems, metric: str, n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    from robust_mmr_pipeline.tasks.metrics import mean_statistic

    if items.correct is None or items.domains is None:
        return []
    rows = []
    for domain in sorted(set(items.domains.tolist())):
        correct = items.correct[items.domains == domain]
        value, low, high = _ci(mean_statistic, correct, n_boot=n_boot, seed=seed)
        rows.append(
            _record(task, model, "domain", protocol, domain=str(domain), metric=metric,
                    value=value, ci_low=low, ci_high=high)
        )  # fmt: skip
    return rows


def _paired_rows(
    task: str, model: str, clean: EvaluationItems, perturbed: EvaluationItems, metric: str,
    n_boot: int, seed: int, protocol: str, **fields: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """Drop of the main metric (clean - perturbed) and, for retrieval, mean-rank degradation
    (perturbed - clean), each with a paired bootstrap CI over the same items."""
    rows = []
    value, low, high = _ci(
        _mean_difference, clean.main_outcome(), perturbed.main_outcome(), n_boot=n_boot, seed=seed
    )
    rows.append(
        _record(task, model, "perturbed", protocol, metric=f"drop_{metric}", value=value,
                ci_low=low, ci_high=high, **fields)
    )  # fmt: skip
    for direction in ("i2t", "t2i"):
        before = getattr(clean, f"{direction}_ranks")
        after = getattr(perturbed, f"{direction}_ranks")
        if before is None or after is None or not len(before):
            continue
        value, low, high = _ci(_mean_difference, after, before, n_boot=n_boot, seed=seed)
        rows.append(
            _record(task, model, "perturbed", protocol,
                    metric=f"{direction}_mean_rank_degradation", value=value, ci_low=low,
                    ci_high=high, **fields)
        )  # fmt: skip
    return rows


def _comparison_rows(
    task: str, condition: str, protocol: str, outcomes: Mapping[str, EvaluationItems],
    metric: str, n_boot: int, seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """``ours - reference`` on the main metric for every other scorer (paired bootstrap)."""
    if OURS not in outcomes:
        return []
    ours = outcomes[OURS].main_outcome()
    rows = []
    for name, items in outcomes.items():
        if name == OURS:
            continue
        value, low, high = _ci(
            _mean_difference, ours, items.main_outcome(), n_boot=n_boot, seed=seed
        )
        rows.append(
            _record(task, OURS, condition, protocol, metric=f"diff_{metric}_vs_{name}",
                    value=value, ci_low=low, ci_high=high)
        )  # fmt: skip
    return rows
