"""WiSE-FT's interpolation and its choice on validation (analytic: no training involved)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robust_mmr_pipeline.tasks.wise_ft import choose_alpha, interpolate, snapshot


def _model(weight: float) -> nn.Module:
    model = nn.BatchNorm1d(2)  # float weights plus an integer counter buffer
    with torch.no_grad():
        model.weight.fill_(weight)
    model.num_batches_tracked.fill_(int(weight))
    return model


def test_interpolation_is_linear_in_float_tensors_and_keeps_counters_of_the_end() -> None:
    start, end = snapshot(_model(0.0)), snapshot(_model(4.0))
    for alpha, expected in ((0.0, 0.0), (0.25, 1.0), (1.0, 4.0)):
        mixed = interpolate(start, end, alpha)
        assert torch.equal(mixed["weight"], torch.full((2,), expected))
        assert int(mixed["num_batches_tracked"]) == 4
    with pytest.raises(ValueError, match="keys differ"):
        interpolate({"weight": torch.zeros(2)}, end, 0.5)


def test_the_best_alpha_on_validation_is_kept_and_the_end_point_wins_ties() -> None:
    start = snapshot(_model(0.0))

    def peaked_at_one(net: nn.Module) -> dict[str, float]:  # best at weight 1 = alpha 0.25
        return {"acc": -abs(float(net.weight[0].detach()) - 1.0), "other": 7.0}

    model = _model(4.0)
    choice = choose_alpha(model, start, [0.0, 0.25, 0.5], peaked_at_one, "acc")
    assert choice.alpha == 0.25
    assert float(model.weight[0].detach()) == pytest.approx(1.0)  # the chosen weights stay loaded
    assert choice.curve() == {"0": -1.0, "0.25": 0.0, "0.5": -1.0, "1": -3.0}
    assert choice.values[0.25]["other"] == 7.0

    model = _model(4.0)
    flat = choose_alpha(model, start, [0.0, 0.5], lambda net: {"acc": 0.5}, "acc")
    assert flat.alpha == 1.0 and float(model.weight[0].detach()) == 4.0
