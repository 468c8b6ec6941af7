"""MLflow logging through the logger protocol (real MLflow, local file store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_test_support import RegressionDataset, make_model

from robust_mmr_pipeline.engine import (
    CompositeLogger,
    MemoryLogger,
    MLflowLogger,
    TrainerConfig,
    TrainLogger,
    train,
)
from robust_mmr_pipeline.engine.callbacks import flatten_params


def _config(tmp_path: Path, name: str) -> TrainerConfig:
    return TrainerConfig(
        max_steps=3,
        batch_size=4,
        checkpoint_every=2,
        log_every=1,
        progress_bar=False,
        output_dir=str(tmp_path / name),
    )


def test_loggers_follow_the_protocol() -> None:
    assert isinstance(MemoryLogger(), TrainLogger)
    assert isinstance(MLflowLogger(), TrainLogger)
    assert isinstance(CompositeLogger(MemoryLogger()), TrainLogger)
    assert flatten_params({"trainer": {"lr": 0.1, "betas": [0.9, 0.98]}, "world_size": 1}) == {
        "trainer.lr": "0.1",
        "trainer.betas": "[0.9, 0.98]",
        "world_size": "1",
    }
    # the typed config's tuple and the YAML list of one setting log as one value
    assert flatten_params({"betas": (0.9, 0.98)}) == {"betas": "[0.9, 0.98]"}
    with pytest.raises(ValueError, match="log_checkpoints"):
        MLflowLogger(log_checkpoints="sometimes")  # type: ignore[arg-type]


def test_mlflow_logger_logs_params_metrics_and_final_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    data = RegressionDataset(n=8)
    memory = MemoryLogger()
    with _use_tracking_uri((tmp_path / "mlruns").as_uri()):
        # No active run: a no-op, training still works.
        train(make_model(), data, _config(tmp_path, "no_run"), logger=MLflowLogger())
        with mlflow.start_run() as run:
            result = train(
                make_model(),
                data,
                _config(tmp_path, "with_run"),
                logger=CompositeLogger(MLflowLogger(), memory),
            )
        client = mlflow.tracking.MlflowClient()
        logged = client.get_run(run.info.run_id).data
        history = client.get_metric_history(run.info.run_id, "train/loss")
        artifacts = client.list_artifacts(run.info.run_id, "checkpoints")
        assert mlflow.search_runs(search_all_experiments=True).shape[0] == 1
    assert logged.params["trainer.max_steps"] == "3"
    assert logged.params["model.hidden"] == "8"
    assert {"train/mse", "train/aux", "throughput/samples_per_s"} <= set(logged.metrics)
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([r["loss"] for r in result.losses])
    assert [a.path for a in artifacts] == [f"checkpoints/{result.checkpoint_dir.name}"]
    assert [(p.name, s, f) for p, s, f in memory.checkpoints] == [
        ("step-00000002", 2, False),
        ("step-00000003", 3, True),
    ]
