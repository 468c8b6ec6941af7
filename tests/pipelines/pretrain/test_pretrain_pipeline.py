"""Real Kedro runs of the pretrain pipeline on the tiny test env (SynthRad, nothing mocked)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from robust_mmr_pipeline.model import PRESETS

OBJECTIVE_KEYS = {
    "mmr": {"mim", "mlm", "itm"},
    "mpma": {"mim", "mlm", "itm", "gla_global", "gla_local"},
    "robust_mmr": {"mim", "mlm", "itm", "domain_consistency", "modality_resilience"},
    "robust_mmr_mpma": {
        "mim", "mlm", "itm", "gla_global", "gla_local", "domain_consistency",
        "modality_resilience",
    },
}  # fmt: skip


@pytest.fixture
def upstream(run_kedro, kedro_project: Path) -> Path:
    """Ingestion -> validation -> domain_split, once per test."""
    for name in ("ingestion", "validation", "domain_split"):
        run_kedro(name)
    return kedro_project


@pytest.mark.slow
def test_pretrain_leaves_checkpoint_mlflow_run_and_plot(upstream: Path, run_kedro) -> None:
    from robust_mmr_pipeline.engine import load_model

    run_kedro("pretrain")
    manifest = json.loads((upstream / "data/06_models/pretrain_checkpoint.json").read_text())
    assert manifest["preset"] == "robust_mmr"
    assert manifest["step"] == 4
    model, tokenizer, meta = load_model(upstream / manifest["checkpoint"])
    assert type(model).__name__ == "MMRModel"
    assert meta["config"]["preset"] == "robust_mmr"
    assert tokenizer is not None and len(tokenizer) == model.config.text.vocab_size
    assert (upstream / "data/08_reporting/pretrain_losses.png").stat().st_size > 1000
    losses = pd.read_csv(upstream / "data/08_reporting/pretrain_losses.csv")
    assert set(OBJECTIVE_KEYS["robust_mmr"]) <= set(losses.columns)
    # watched on validation every 2 steps (test env): held-out losses and the frozen probe;
    # the checkpoint handed on is the best probe step, under best/
    history = manifest["watch"]["history"]
    assert [int(r["step"]) for r in history] == [2, 4]
    for record in history:
        assert 0.0 <= record["probe/accuracy"] <= 1.0
        assert {"val/mim", "val/mlm", "val/itm"} <= set(record)
    best = max(history, key=lambda r: (r["probe/accuracy"], -r["step"]))  # first best step
    assert manifest["watch"]["best_step"] == int(best["step"])
    assert Path(manifest["checkpoint"]).parent.name == "best"
    assert Path(manifest["checkpoint"]).name == f"step-{int(best['step']):08d}"
    assert Path(manifest["last_checkpoint"]).name == "step-00000004"

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{upstream / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "attributes.status='FINISHED'"
    )
    pretrain_runs = [r for r in runs if "train/mlm" in r.data.metrics]
    assert pretrain_runs, "the pretrain run logged no per-objective metrics"
    run = pretrain_runs[0]
    assert {"train/mim", "train/itm", "train/domain_consistency"} <= set(run.data.metrics)
    assert {"eval/probe/accuracy", "eval/val/mlm"} <= set(run.data.metrics)
    assert run.data.metrics["throughput/samples_per_s"] > 0
    artifacts = client.list_artifacts(run.info.run_id, "checkpoints")
    assert artifacts, "the final checkpoint was not logged as an artifact"
    versions = client.search_model_versions("name='robust_mmr_pipeline-robust_mmr'")
    assert versions and versions[0].run_id == run.info.run_id


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_on_the_tiny_config(upstream: Path, run_kedro, preset: str) -> None:
    run_kedro("pretrain", params={"pretrain": {"preset": preset, "register_model": False}})
    losses = pd.read_csv(upstream / "data/08_reporting/pretrain_losses.csv")
    assert OBJECTIVE_KEYS[preset] <= set(losses.columns)
    assert losses[sorted(OBJECTIVE_KEYS[preset])].notna().all().all()


def test_unknown_preset_fails_before_training(upstream: Path, run_kedro) -> None:
    from robust_mmr_pipeline.params import ParameterError

    with pytest.raises(ParameterError, match="unknown preset"):
        run_kedro("pretrain", params={"pretrain": {"preset": "robust_mmr_xl"}})
    assert not (upstream / "data/06_models/pretrain_checkpoint.json").exists()
