"""``mixed_precision: auto``: decided by measuring the model's own step, once per machine.

The decision and its cache are tested with injected measurements (no timing in a test); one
real training run checks that auto resolves to a precision the run then uses and records.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_test_support import RegressionDataset, make_model

from robust_mmr_pipeline.engine import TrainerConfig, read_trainer_state, train
from robust_mmr_pipeline.engine.precision import (
    CACHE_ENV,
    MIN_SPEEDUP,
    cached_verdict,
    cpu_identity,
    time_step_pair,
)


def _measure(speedup: float, calls: list[int]) -> object:
    def measure() -> dict[str, float]:
        calls.append(1)
        return {"fp32_s": speedup * 0.01, "bf16_s": 0.01, "speedup": speedup}

    return measure


@pytest.mark.parametrize(("speedup", "bf16"), [(2.0, True), (MIN_SPEEDUP, True), (1.0, False)])
def test_bf16_only_where_it_measures_faster(tmp_path: Path, speedup: float, bf16: bool) -> None:
    calls: list[int] = []
    verdict = cached_verdict("model A", _measure(speedup, calls), cache=tmp_path / "c.json")
    assert verdict["use_bf16"] is bf16
    assert verdict["key"].startswith(cpu_identity())


def test_the_verdict_is_measured_once_per_machine_and_model(tmp_path: Path) -> None:
    cache, calls = tmp_path / "c.json", []
    first = cached_verdict("model A", _measure(2.0, calls), cache=cache)
    again = cached_verdict("model A", _measure(0.5, calls), cache=cache)  # cached: not re-run
    other = cached_verdict("model B", _measure(0.5, calls), cache=cache)
    assert len(calls) == 2
    assert again == first and other["use_bf16"] is False
    stored = json.loads(cache.read_text())
    assert len(stored) == 2  # one entry per (machine, model)
    # an unreadable cache is measured over, never an error
    cache.write_text("{not json")
    assert cached_verdict("model A", _measure(2.0, calls), cache=cache)["use_bf16"] is True


def test_time_step_pair_interleaves_and_reports_the_minimum() -> None:
    order: list[bool] = []
    timings = time_step_pair(order.append, rounds=2, steps=1)
    # one warm-up each, then fp32 / bf16 alternating round by round
    assert order == [False, True, False, True, False, True]
    assert set(timings) == {"fp32_s", "bf16_s", "speedup"}


@pytest.mark.parametrize("use_bf16", [True, False])
def test_auto_on_cpu_trains_in_the_measured_precision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_bf16: bool
) -> None:
    """The verdict is read from a cache prepared for this machine and model (what a first run
    measures), so the test knows which precision the run must use."""
    from robust_mmr_pipeline.engine.precision import model_key

    cache = tmp_path / "precision.json"
    model = make_model()
    key = f"{cpu_identity()} | {model_key(model, 4)}"
    cache.write_text(json.dumps({key: {"speedup": 2.0 if use_bf16 else 0.9, "use_bf16": use_bf16,
                                       "fp32_s": 0.02, "bf16_s": 0.01, "key": key}}))  # fmt: skip
    monkeypatch.setenv(CACHE_ENV, str(cache))
    config = TrainerConfig.from_dict(
        {"max_steps": 2, "batch_size": 4, "mixed_precision": "auto", "progress_bar": False,
         "output_dir": str(tmp_path / "run"), "cpu": True}
    )  # fmt: skip
    before = [p.detach().clone() for p in model.parameters()]
    result = train(model, RegressionDataset(n=8), config)
    expected = "bf16" if use_bf16 else "no"
    assert result.mixed_precision == expected
    assert read_trainer_state(result.checkpoint_dir)["mixed_precision"] == expected
    assert any(
        not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True)
    )
