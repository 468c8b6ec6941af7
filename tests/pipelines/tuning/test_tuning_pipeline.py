"""Real Kedro runs of the tuning pipeline on the tiny test env (SynthRad, nothing mocked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN


def _session_run(project: Path, pipeline: str, params: dict | None = None) -> None:
    from kedro.framework.session import KedroSession

    with KedroSession.create(
        project_path=project, env="test", runtime_params=params or {}
    ) as session:
        session.run(pipeline_names=[pipeline])


@pytest.fixture
def project(chain_project: Path) -> Path:
    """A project copy holding the upstream outputs (split manifests, tokenizer, image cache)."""
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(chain_project)
    return chain_project


def _trials(storage: str, name: str = "robust_mmr_weights") -> list[optuna.trial.FrozenTrial]:
    from robust_mmr_pipeline.tuning import TuningParams, build_storage

    study = optuna.load_study(study_name=name, storage=build_storage(TuningParams(storage=storage)))
    return study.get_trials()


def test_tuning_is_registered_but_not_in_the_default_chain() -> None:
    from kedro.framework.project import configure_project, find_pipelines

    configure_project("robust_mmr_pipeline")
    assert "tuning" not in DEFAULT_CHAIN
    assert "tuning" in find_pipelines()


@pytest.mark.slow
def test_tuning_writes_overlay_params_plots_and_resumes(project: Path) -> None:
    _session_run(project, "tuning")
    storage = f"sqlite:///{project / 'data/06_models/optuna.db'}"
    trials = _trials(storage)
    assert [t.number for t in trials] == [0, 1]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2, [t.user_attrs for t in trials]
    assert {t.user_attrs["seed"] for t in trials} == {0, 1}
    assert all(t.user_attrs["validation_domain"] == "site_a" for t in trials)

    overlay = yaml.safe_load((project / "conf/tuned/parameters_pretrain.yml").read_text())
    robust = overlay["pretrain"]["model"]["robust"]
    assert sum(robust["view_probs"]) == pytest.approx(1.0)
    assert {"domain_consistency_weight", "modality_resilience_weight"} == set(
        overlay["pretrain"]["model"]["objectives"]
    )
    summary = json.loads((project / "data/08_reporting/tuning_best_params.json").read_text())
    assert summary["best"]["overlay"] == overlay and summary["trials_by_state"]["COMPLETE"] == 2
    assert summary["worker"]["split"]["validation_domain"] == "site_a"
    assert "site_a" not in summary["worker"]["split"]["train_domains"]
    text = (project / "data/08_reporting/tuning_params.txt").read_text().splitlines()[0]
    assert text == summary["params_string"] and "domain_consistency_weight=" in text
    for plot in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (project / f"data/08_reporting/tuning_{plot}.png").stat().st_size > 1000
    assert summary["plot_notes"] == {}

    # the overlay is a conf env the pretrain pipeline reads as it is
    from kedro.framework.session import KedroSession

    with KedroSession.create(project_path=project, env="tuned") as session:
        pretrain = session.load_context().params["pretrain"]
    # the tuned keys as the study chose them; the others (e.g. the VICReg weights) from base
    assert {key: pretrain["model"]["robust"][key] for key in robust} == robust

    # MLflow caches its store per URI ("sqlite:///mlflow.db" is relative), so ask the client
    # the Kedro run used rather than opening the file again.
    client = mlflow.MlflowClient()
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`optuna.study` = 'robust_mmr_weights'",
    )
    nested = [r for r in runs if r.info.run_name in ("tuning-trial-0", "tuning-trial-1")]
    assert len(nested) >= 2 and all("mlflow.parentRunId" in r.data.tags for r in nested)
    assert all("val_accuracy" in r.data.metrics for r in nested)
    parent = client.get_run(nested[0].data.tags["mlflow.parentRunId"])
    assert parent.info.run_name == "tuning"

    # a second run joins the stored study and continues its count
    _session_run(project, "tuning", params={"tuning": {"n_trials": 1}})
    trials = _trials(storage)
    assert [t.number for t in trials] == [0, 1, 2]
    assert trials[2].state in (TrialState.COMPLETE, TrialState.PRUNED), trials[2].user_attrs
    table = pd.read_csv(project / "data/08_reporting/tuning_trials.csv")
    assert table["number"].tolist() == [0, 1, 2]


@pytest.mark.slow
def test_two_workers_share_one_journal_study(project: Path) -> None:
    # MLflow's SQLite store is not what this test is about: keep the workers off it.
    (project / "conf/test/mlflow.yml").write_text(
        "tracking:\n  disable_tracking:\n    pipelines: [tuning]\n"
    )
    journal = "data/06_models/optuna.journal"
    params = f"tuning.storage=journal:{journal},tuning.n_trials=2,tuning.log_to_mlflow=false"
    kedro = Path(sys.executable).with_name("kedro")
    command = [str(kedro), "run", "--pipelines", "tuning", "--env", "test", "--params", params]
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    workers = [
        subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0].decode(errors="replace") for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]

    trials = _trials(f"journal:{project / journal}")
    assert len(trials) == 4  # 2 workers x 2 trials: none lost, none extra
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    assert all(t.state in finished for t in trials), [t.user_attrs for t in trials]
    param_sets = {tuple(sorted(t.params.items())) for t in trials}
    assert len(param_sets) == 4  # per-trial seeds: the workers never propose the same set
