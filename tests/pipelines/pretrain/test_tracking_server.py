"""A shared tracking store: ``mlflow server`` with its runs in PostgreSQL (the throwaway server)
and its artifacts in a local artifact root; a real pre-training run tracks to it with the
kedro-mlflow configuration of ``conf/tracking_server/mlflow.yml``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scaleout_support import mlflow_server

REPO_ROOT = Path(__file__).resolve().parents[3]
EXPERIMENT = "robust_mmr_pipeline"


@pytest.mark.slow
@pytest.mark.scaleout
def test_a_run_tracks_to_a_server_on_postgresql(chain_project: Path, postgres: Any) -> None:
    import mlflow

    project = chain_project
    # the test env's tiny sizes, tracked as conf/tracking_server says
    shutil.copy2(REPO_ROOT / "conf/tracking_server/mlflow.yml", project / "conf/test/mlflow.yml")
    backend = postgres.create_database("mlflow")
    artifacts = project.parent / "mlartifacts"
    with mlflow_server(backend, artifacts, project.parent / "mlflow-server.log") as url:
        kedro = Path(sys.executable).with_name("kedro")
        env = {**os.environ, "PYTHONPATH": str(project / "src"), "MLFLOW_TRACKING_URI": url}
        done = subprocess.run(
            [str(kedro), "run", "--pipelines", "pretrain", "--env", "test"],
            cwd=project, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        client = mlflow.MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        assert experiment is not None
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert [m.step for m in history] == [1, 2, 3, 4]  # conf/test: 4 steps, logged each
        assert run.data.params["trainer.max_steps"] == "4"
        (folder,) = client.list_artifacts(run.info.run_id, "checkpoints")
        versions = client.search_model_versions("name = 'robust_mmr_pipeline-robust_mmr'")
        assert [v.run_id for v in versions] == [run.info.run_id]
    # runs and the model registry are rows of the server's database ...
    assert postgres.query("mlflow", "SELECT run_uuid, status FROM runs") == [
        (run.info.run_id, "FINISHED")
    ]
    assert postgres.query("mlflow", "SELECT name FROM registered_models") == [
        ("robust_mmr_pipeline-robust_mmr",)
    ]
    # ... artifacts are files of its artifact root; nothing went to the project's own store
    stored = artifacts / experiment.experiment_id / run.info.run_id / "artifacts" / folder.path
    assert (stored / "model.safetensors").stat().st_size > 0
    local = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    assert not local.search_runs([e.experiment_id for e in local.search_experiments()])


def test_the_tracking_server_env_stops_when_no_server_is_named(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from robust_mmr_pipeline.hooks import TrackingConfigError

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    bootstrap_project(kedro_project)
    with (
        KedroSession.create(project_path=kedro_project, env="tracking_server") as session,
        pytest.raises(TrackingConfigError, match="export MLFLOW_TRACKING_URI=http://"),
    ):
        session.load_context()
