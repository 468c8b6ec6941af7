"""A real pre-training run killed by SIGKILL right after a checkpoint, then resumed, reproduces
the uninterrupted run's loss curve step for step (separate processes, the same seed); the killed
run's MLflow run is marked KILLED by the next start instead of staying RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from robust_mmr_pipeline.engine.fault_injection import FAULT_KILL_AFTER_CHECKPOINT
from robust_mmr_pipeline.hooks import TAG_KILLED, TAG_PID

SETTINGS = {
    "pretrain.trainer.max_steps": 8,
    "pretrain.trainer.checkpoint_every": 2,
    "pretrain.trainer.keep_last": 0,
    "pretrain.register_model": "false",
}
KILL_AFTER = 4


def _kedro_pretrain(project: Path, kill_after: int | None = None, **params: object):
    """``kedro run --pipelines pretrain --env test`` in a process of its own."""
    settings = {**SETTINGS, **params}
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    env.pop(FAULT_KILL_AFTER_CHECKPOINT, None)
    if kill_after is not None:
        env[FAULT_KILL_AFTER_CHECKPOINT] = str(kill_after)
    command = [str(kedro), "run", "--pipelines", "pretrain", "--env", "test", "--params"]
    command.append(",".join(f"{key}={value}" for key, value in settings.items()))
    proc = subprocess.Popen(
        command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = proc.communicate()[0].decode(errors="replace")
    return proc.pid, proc.returncode, output


@pytest.fixture
def upstream(run_kedro, kedro_project: Path) -> Path:
    for name in ("ingestion", "validation", "domain_split"):
        run_kedro(name)
    return kedro_project


def _losses(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "data/08_reporting/pretrain_losses.csv").set_index("step")


@pytest.mark.slow
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one(upstream: Path) -> None:
    project = upstream
    _pid, code, output = _kedro_pretrain(project, **{"pretrain.output_dir": "data/06_models/full"})
    assert code == 0, output[-4000:]
    full = _losses(project)
    assert list(full.index) == list(range(1, 9))

    resumed_dir = "data/06_models/resumed"
    killed_pid, code, output = _kedro_pretrain(
        project, kill_after=KILL_AFTER, **{"pretrain.output_dir": resumed_dir}
    )
    assert code == -signal.SIGKILL, output[-4000:]
    checkpoints = project / resumed_dir / "robust_mmr" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-00000002", "step-00000004"]
    assert os.readlink(checkpoints / "last") == "step-00000004"

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    (killed,) = client.search_runs(experiments, f"tags.`{TAG_PID}` = '{killed_pid}'")
    assert killed.info.status == "RUNNING"  # what a SIGKILL leaves behind

    _pid, code, output = _kedro_pretrain(
        project, **{"pretrain.output_dir": resumed_dir, "pretrain.trainer.resume": "true"}
    )
    assert code == 0, output[-4000:]
    assert "Resuming from" in output and "Using the tokenizer stored with" in output
    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "KILLED" and TAG_KILLED in killed.data.tags

    # step for step: the resumed run's curve (steps 1-4 come from the killed process's
    # checkpoint, 5-8 from the resumed process) equals the uninterrupted run's
    resumed = _losses(project)
    assert list(resumed.index) == list(full.index)
    assert list(resumed.columns) == list(full.columns)
    pd.testing.assert_frame_equal(resumed, full, check_exact=False, rtol=0, atol=1e-6)
    # the killed run logged steps 1-4 to MLflow before it died: the same values
    logged = {m.step: m.value for m in client.get_metric_history(killed.info.run_id, "train/loss")}
    assert sorted(logged) == list(range(1, KILL_AFTER + 1))
    for step, value in logged.items():
        assert value == pytest.approx(full.loc[step, "loss"], abs=1e-6)
