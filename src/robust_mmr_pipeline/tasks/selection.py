"""Model selection on validation only.

:func:`select_best` picks the evaluation record (an epoch or a step) with the best
VALIDATION metric. It refuses a metric whose name mentions ``test`` and never reads any field
whose name mentions ``test`` (the returned record holds only the other fields), so a history
that also logged test metrics cannot influence, or leak into, the choice. Test is then
evaluated once, on the selected checkpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

_TOKEN = re.compile(r"[a-z0-9]+")


def mentions_test(name: str) -> bool:
    """True when ``name`` has a ``test`` token (``test/acc``, ``acc_test``, ``Test-F1``)."""
    return "test" in _TOKEN.findall(str(name).lower())


@dataclass(frozen=True)
class Selection:
    """The chosen record: its position in the history, its ``step_key`` value, the metric's
    name and value, and the record's non-test fields."""

    index: int
    step: float | None
    metric: str
    value: float
    record: dict[str, Any]


def select_best(
    history: Sequence[Mapping[str, Any]],
    metric: str,
    *,
    mode: Literal["max", "min"] = "max",
    step_key: str = "step",
) -> Selection:
    """The record of ``history`` with the best validation ``metric``.

    Args:
        history: evaluation records in training order (e.g. ``TrainResult.eval_history``:
            ``{"step": 100, "val/overall": 0.71, ...}``, or one record per epoch).
        metric: a validation metric name; names mentioning ``test`` raise ``ValueError``.
        mode: ``"max"`` (accuracy, F1, R@k) or ``"min"`` (loss, mean rank).
        step_key: field identifying the record (``"step"`` or ``"epoch"``); may be absent.

    Records lacking the metric or with a non-finite value are skipped; ties go to the earliest
    record. Raises ``ValueError`` when no record has a finite value.
    """
    if mentions_test(metric):
        raise ValueError(
            f"model selection must use a validation metric; {metric!r} refers to the test set"
        )
    if mentions_test(step_key):
        raise ValueError(f"step_key {step_key!r} refers to the test set")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    best_index, best_value = -1, math.nan
    for index, record in enumerate(history):
        if metric not in record:
            continue
        value = float(record[metric])
        if not math.isfinite(value):
            continue
        better = value > best_value if mode == "max" else value < best_value
        if best_index < 0 or better:
            best_index, best_value = index, value
    if best_index < 0:
        raise ValueError(f"no record of the history has a finite value for {metric!r}")
    chosen = history[best_index]
    kept = {name: chosen[name] for name in list(chosen) if not mentions_test(name)}
    step = float(kept[step_key]) if step_key in kept else None
    return Selection(best_index, step, metric, best_value, kept)
