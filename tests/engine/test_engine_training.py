"""The training loop: accumulation, exact resume, non-finite stop, logging, eval, fallbacks."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from engine_test_support import RegressionDataset, make_model
from torch.utils.data import DataLoader

from robust_mmr_pipeline.engine import (
    MemoryLogger,
    NonFiniteLossError,
    TrainerConfig,
    TrainerConfigError,
    evaluate,
    list_checkpoints,
    load_model,
    lr_factor,
    predict,
    read_trainer_state,
    train,
    verify_checkpoint,
)
from robust_mmr_pipeline.engine.progress import TrainProgress


def _config(tmp_path: Path, name: str, **overrides: Any) -> TrainerConfig:
    base: dict[str, Any] = {
        "max_steps": 6,
        "batch_size": 4,
        "lr": 5e-2,
        "warmup_fraction": 0.2,
        "log_every": 1,
        "progress_bar": False,
        "output_dir": str(tmp_path / name),
        "seed": 11,
    }
    base.update(overrides)
    return TrainerConfig(**base)


class _Crash(RuntimeError):
    pass


class _CrashingLogger(MemoryLogger):
    """Simulates a killed run: raises once the given step has been logged."""

    def __init__(self, crash_at: int) -> None:
        super().__init__()
        self.crash_at = crash_at

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        super().log_metrics(metrics, step)
        if step == self.crash_at and not any(k.startswith("eval/") for k in metrics):
            raise _Crash(f"killed after step {step}")


def _by_step(records: list[dict[str, float]]) -> dict[int, dict[str, float]]:
    return {int(r["step"]): r for r in records}


def test_grad_accumulation_matches_a_larger_batch(tmp_path: Path) -> None:
    data = RegressionDataset(n=32)
    accumulated = make_model(seed=1)
    single = make_model(seed=1)
    result_a = train(
        accumulated, data, _config(tmp_path, "a", batch_size=4, grad_accum=2, max_steps=4)
    )
    result_b = train(single, data, _config(tmp_path, "b", batch_size=8, grad_accum=1, max_steps=4))
    for rec_a, rec_b in zip(result_a.losses, result_b.losses, strict=True):
        for key in ("loss", "mse", "aux", "lr"):
            assert rec_a[key] == pytest.approx(rec_b[key], rel=1e-5, abs=1e-7), key
    for (name, p_a), p_b in zip(accumulated.named_parameters(), single.parameters(), strict=True):
        assert torch.allclose(p_a, p_b, rtol=1e-5, atol=1e-6), name
    assert result_a.samples_seen == result_b.samples_seen == 32


@pytest.mark.parametrize("num_workers", [0, 1])
def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path, num_workers: int) -> None:
    data = RegressionDataset(n=24)  # 6 micro-batches per epoch, 3 steps per epoch
    settings = {
        "max_steps": 8,
        "grad_accum": 2,
        "checkpoint_every": 3,
        "keep_last": 2,
        "num_workers": num_workers,
    }
    stochastic = {"dropout": 0.2, "noise": 0.05}

    full_model = make_model(seed=5, **stochastic)
    full = train(full_model, data, _config(tmp_path, "full", **settings))
    assert full.step == 8 and full.epoch >= 2

    crashed_model = make_model(seed=5, **stochastic)
    with pytest.raises(_Crash):
        train(
            crashed_model,
            data,
            _config(tmp_path, "resumed", **settings),
            logger=_CrashingLogger(crash_at=5),
        )
    root = tmp_path / "resumed" / "checkpoints"
    assert [step for step, _ in list_checkpoints(root)] == [3]

    # A new process would build a fresh model; the checkpoint restores weights and streams.
    resumed_model = make_model(seed=99, **stochastic)
    resumed = train(resumed_model, data, _config(tmp_path, "resumed", resume=True, **settings))
    assert resumed.resumed_from is not None and resumed.resumed_from.name == "step-00000003"
    assert resumed.step == 8
    full_steps, resumed_steps = _by_step(full.losses), _by_step(resumed.losses)
    assert sorted(resumed_steps) == list(range(1, 9))
    assert [list(r) for r in resumed.losses] == [list(r) for r in full.losses]  # same columns
    for step in range(1, 9):
        for key in ("loss", "mse", "aux", "lr"):
            assert resumed_steps[step][key] == pytest.approx(
                full_steps[step][key], rel=1e-6, abs=1e-9
            ), (step, key)
    for p_full, p_resumed in zip(full_model.parameters(), resumed_model.parameters(), strict=True):
        assert torch.allclose(p_full, p_resumed, rtol=1e-6, atol=1e-7)
    state = read_trainer_state(root)
    assert state["step"] == 8 and state["samples_seen"] == 8 * 2 * 4


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    model = make_model(seed=2, nan_term_from_progress=0.5)
    config = _config(tmp_path, "nan", max_steps=10, checkpoint_every=4)
    with pytest.raises(NonFiniteLossError) as info:
        train(model, data, config)
    error = info.value
    assert error.step == 6
    assert error.bad_terms == ["loss", "aux"]
    assert "step 6" in str(error) and "aux=nan" in str(error) and "mse" not in error.bad_terms
    root = tmp_path / "nan" / "checkpoints"
    # the state after step 5 (untouched by the failed step) was saved and verified
    assert error.checkpoint_dir == root / "step-00000005"
    assert [step for step, _ in list_checkpoints(root)] == [4, 5]
    assert not (root / "step-00000006").exists()
    verify_checkpoint(error.checkpoint_dir)
    reloaded, _tok, meta = load_model(root)
    assert meta["trainer_state"]["step"] == 5
    assert meta["trainer_state"]["reason"] == "last_good_before_non_finite"
    for p_model, p_saved in zip(model.parameters(), reloaded.parameters(), strict=True):
        assert torch.equal(p_model.detach(), p_saved)


def test_non_finite_right_after_a_checkpoint_saves_nothing_new(tmp_path: Path) -> None:
    model = make_model(seed=2, nan_term_from_progress=0.5)
    config = _config(tmp_path, "nan5", max_steps=10, checkpoint_every=5)
    with pytest.raises(NonFiniteLossError) as info:
        train(model, RegressionDataset(n=16), config)
    root = tmp_path / "nan5" / "checkpoints"
    assert info.value.checkpoint_dir == root / "step-00000005"
    assert read_trainer_state(root)["reason"] == "periodic"


def test_bf16_on_cpu_trains_in_fp32(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="robust_mmr_pipeline.engine.config"):
        result = train(
            make_model(),
            RegressionDataset(n=8),
            _config(tmp_path, "bf16", max_steps=2, mixed_precision="bf16"),
        )
    assert result.mixed_precision == "no"
    assert "fp32" in caplog.text
    assert read_trainer_state(result.checkpoint_dir)["mixed_precision"] == "no"


def test_logging_throughput_and_summary(tmp_path: Path) -> None:
    logger = MemoryLogger()
    ticks = iter(range(1000))
    result = train(
        make_model(),
        RegressionDataset(n=16),
        _config(tmp_path, "log", max_steps=4, log_every=2),
        logger=logger,
        clock=lambda: 0.5 * next(ticks),  # an injected clock: each step takes 0.5 s
    )
    assert [step for step, _ in logger.metrics] == [2, 4]
    metrics = logger.metrics[-1][1]
    assert {"train/loss", "train/mse", "train/aux", "train/lr", "train/grad_norm"} <= set(metrics)
    flops_per_sample = make_model().flops_per_sample()
    assert metrics["throughput/samples_per_s"] == pytest.approx(8.0)  # 2 steps x 4 in 1 s
    assert metrics["throughput/flops_per_s"] == pytest.approx(8.0 * flops_per_sample)
    params = logger.params[0]
    assert params["trainer"]["max_steps"] == 4 and params["model"]["hidden"] == 8
    assert logger.checkpoints == [(result.checkpoint_dir, 4, True)]
    assert result.samples_per_s == pytest.approx(8.0) and result.train_time_s == pytest.approx(2.0)
    assert result.flops_per_s == pytest.approx(8.0 * flops_per_sample)
    assert result.peak_memory_mb > 0
    assert len(result.loss_curve("mse")) == 4


def test_existing_checkpoints_need_resume(tmp_path: Path) -> None:
    data = RegressionDataset(n=8)
    train(make_model(), data, _config(tmp_path, "twice", max_steps=2))
    with pytest.raises(TrainerConfigError, match="resume"):
        train(make_model(), data, _config(tmp_path, "twice", max_steps=2))
    # resuming a finished run is a no-op that returns the final checkpoint
    again = train(make_model(), data, _config(tmp_path, "twice", max_steps=2, resume=True))
    assert again.step == 2 and again.checkpoint_dir.name == "step-00000002"


def test_eval_fn_runs_without_changing_the_training_curve(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    loader = DataLoader(RegressionDataset(n=10, seed=4), batch_size=4)
    stochastic = {"dropout": 0.3, "noise": 0.1}

    def eval_fn(model: torch.nn.Module, step: int, accelerator: Any) -> dict[str, float]:
        torch.rand(5)  # evaluation may consume randomness; training must not notice
        metrics = evaluate(model, loader, accelerator=accelerator)
        assert metrics["num_samples"] == 10
        return {"mse": metrics["mse"], "loss": metrics["loss"]}

    plain = train(make_model(seed=3, **stochastic), data, _config(tmp_path, "p", max_steps=4))
    with_eval = train(
        make_model(seed=3, **stochastic),
        data,
        _config(tmp_path, "e", max_steps=4, eval_every=2),
        eval_fn=eval_fn,
    )
    assert [r["step"] for r in with_eval.eval_history] == [2.0, 4.0]
    assert [r["loss"] for r in with_eval.losses] == [r["loss"] for r in plain.losses]
    saved = read_trainer_state(with_eval.checkpoint_dir)
    assert [r["step"] for r in saved["eval_history"]] == [2.0, 4.0]


def test_predict_gathers_outputs_in_order() -> None:
    model = make_model(seed=4)
    data = RegressionDataset(n=10, seed=4)
    outputs = predict(model, DataLoader(data, batch_size=4), keys=("prediction",))
    assert outputs["prediction"].shape == (10, 3)
    with torch.no_grad():
        expected = model({"x": data.x, "y": data.y}).prediction
    assert torch.allclose(outputs["prediction"], expected, atol=1e-6)
    assert model.training  # mode restored

    def metric_fn(predictions: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"mean_prediction": float(predictions["prediction"].mean())}

    metrics = evaluate(model, DataLoader(data, batch_size=4), metric_fn=metric_fn)
    assert metrics["mean_prediction"] == pytest.approx(float(expected.mean()), abs=1e-6)
    with torch.no_grad():
        full = model({"x": data.x, "y": data.y})
    # batch-size weighted mean of per-batch means equals the full-data mean for MSE
    assert metrics["mse"] == pytest.approx(float(full.losses["mse"]), rel=1e-5)


def test_compile_flag_wraps_the_model(tmp_path: Path) -> None:
    result = train(
        make_model(),
        RegressionDataset(n=8),
        _config(tmp_path, "compiled", max_steps=2, compile=True, compile_backend="eager"),
    )
    assert result.step == 2
    loaded, _tok, _meta = load_model(result.checkpoint_dir)
    assert "_orig_mod" not in "".join(loaded.state_dict())


def test_progress_bar_shows_loss_and_throughput() -> None:
    buffer = io.StringIO()
    bar = TrainProgress(total=3, file=buffer, require_tty=False)
    bar.update(1, 0.5, 12.0)
    bar.update(3, 0.25, 10.0)
    bar.close()
    text = buffer.getvalue()
    assert "loss=0.2500" in text and "samples_s=10.0" in text
    silent = io.StringIO()
    TrainProgress(total=3, file=silent).close()  # not a TTY: disabled
    assert silent.getvalue() == ""


def test_resume_uses_the_new_learning_rate(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    first = train(make_model(), data, _config(tmp_path, "lr", max_steps=3, lr=1e-2))
    assert first.step == 3
    resumed = train(make_model(), data, _config(tmp_path, "lr", max_steps=6, lr=1e-3, resume=True))
    steps = _by_step(resumed.losses)
    # warmup = round(0.2 * 6) = 1 step; the old run's steps keep their recorded lr
    assert steps[3]["lr"] == pytest.approx(1e-2 * lr_factor(2, 1, 3, "cosine"))
    for step in (4, 5, 6):
        assert steps[step]["lr"] == pytest.approx(1e-3 * lr_factor(step - 1, 1, 6, "cosine"))
