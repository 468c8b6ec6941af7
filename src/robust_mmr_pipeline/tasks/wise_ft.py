"""WiSE-FT: interpolate the fine-tuned weights back towards where fine-tuning started.

Wortsman et al. (CVPR 2022, "Robust fine-tuning of zero-shot models"): the weights
``(1 - alpha) * theta_start + alpha * theta_finetuned`` keep more of what pre-training learned
than the fine-tuned end point and often score better out of distribution at no in-distribution
cost. Here ``theta_start`` is the model fine-tuning started from: the pre-trained backbone with
the head fitted on its frozen features (the LP of LP-FT), so every interpolant has a head that
matches its backbone. ``alpha`` is chosen on the VALIDATION rows (1.0, the fine-tuned model,
always competes and wins ties); test rows never reach it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class WiseFtChoice:
    """The chosen ``alpha`` and the validation metrics of every alpha tried (1.0 included)."""

    alpha: float
    metric: str
    values: dict[float, dict[str, float]]

    def curve(self) -> dict[str, float]:
        """``{"<alpha>": selection metric}`` (JSON-safe), by alpha."""
        return {f"{a:g}": self.values[a][self.metric] for a in sorted(self.values)}


def snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of ``model``'s state (the start point to interpolate from)."""
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def interpolate(
    start: Mapping[str, Tensor], end: Mapping[str, Tensor], alpha: float
) -> dict[str, Tensor]:
    """``(1 - alpha) * start + alpha * end`` for floating tensors; others (counters, ids)
    come from ``end``. Both must hold the same keys."""
    if set(start) != set(end):
        raise ValueError(
            "WiSE-FT needs the start and fine-tuned states of one architecture; keys differ: "
            f"{sorted(set(start) ^ set(end))[:5]}"
        )
    return {
        name: torch.lerp(start[name].to(value.dtype), value, alpha)
        if value.is_floating_point()
        else value.clone()
        for name, value in end.items()
    }


def choose_alpha(
    model: nn.Module,
    start: Mapping[str, Tensor],
    alphas: Sequence[float],
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    metric: str,
) -> WiseFtChoice:
    """Score ``model`` (holding the fine-tuned weights) at each ``alpha`` with ``evaluate``
    (validation metrics; ``metric`` decides, higher is better) and leave the best interpolant
    loaded in ``model``. A smaller alpha must beat the fine-tuned model strictly to be kept."""
    finetuned = snapshot(model)
    values = {1.0: {k: float(v) for k, v in evaluate(model).items()}}
    best = 1.0
    for alpha in sorted({float(a) for a in alphas if float(a) != 1.0}, reverse=True):
        model.load_state_dict(interpolate(start, finetuned, alpha))
        values[alpha] = {k: float(v) for k, v in evaluate(model).items()}
        if values[alpha][metric] > values[best][metric]:
            best = alpha
    model.load_state_dict(interpolate(start, finetuned, best))
    return WiseFtChoice(alpha=best, metric=metric, values=values)
