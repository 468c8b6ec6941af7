"""Runs of one project: a second run while one holds the project is refused with a message
naming it (no sleeps: the test holds the lock itself), tuning workers share it, a killed holder
never leaves the project locked, and MLflow runs of dead processes are marked KILLED."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest

from robust_mmr_pipeline.hooks import (
    TAG_HOST,
    TAG_KILLED,
    TAG_PID,
    TAG_PROCESS_START,
    TAG_PROJECT,
    ProcessRecord,
    ProjectBusyError,
    ProjectRunLock,
    terminate_runs_of_dead_processes,
)
from robust_mmr_pipeline.params import ParameterError

KEDRO = str(Path(sys.executable).with_name("kedro"))


def _client(project: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def _runs(project: Path) -> list:
    client = _client(project)
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_a_second_run_is_refused_with_the_holder_and_the_fix(
    run_kedro, kedro_project: Path
) -> None:
    other = ProjectRunLock(kedro_project)  # "the other run": this test holds the project
    other.acquire(["ingestion"], env="local")
    try:
        with pytest.raises(ProjectBusyError) as refused:
            run_kedro("ingestion")
    finally:
        other.release()
    message = str(refused.value)
    assert (
        f"pid {os.getpid()} on host" in message and "pipeline(s) ingestion (env local)" in message
    )
    assert "started 20" in message and f"kill {os.getpid()}" in message
    assert "wait for that run to finish" in message
    assert not (kedro_project / "data/03_primary/images.parquet").exists()
    assert _runs(kedro_project) == []  # refused before kedro-mlflow opened a run

    run_kedro("ingestion")  # the project is free again
    assert (kedro_project / "data/03_primary/images.parquet").exists()
    assert not list((kedro_project / "data/.kedro-run").glob("*.json"))  # released


def test_the_cli_prints_the_refusal(kedro_project: Path) -> None:
    other = ProjectRunLock(kedro_project)
    other.acquire(["pretrain"], env="test")
    try:
        env = {**os.environ, "PYTHONPATH": str(kedro_project / "src"), "COLUMNS": "200"}
        proc = subprocess.run(
            [KEDRO, "run", "--pipelines", "ingestion", "--env", "test"],
            cwd=kedro_project, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    finally:
        other.release()
    assert proc.returncode != 0
    output = " ".join((proc.stdout + proc.stderr).split())
    assert "ProjectBusyError" in output and f"pid {os.getpid()}" in output
    assert "pipeline(s) pretrain (env test)" in output
    # one paragraph, no traceback before it
    assert "Traceback" not in output and "╭─" not in output, proc.stderr[-3000:]
    error = (proc.stdout + proc.stderr).split("Error: ProjectBusyError: ", 1)[1]
    assert len(error.splitlines()) <= 8, error


def test_tuning_workers_share_the_project_but_nothing_else_does(tmp_path: Path) -> None:
    first, second, other = (ProjectRunLock(tmp_path) for _ in range(3))
    first.acquire(["tuning"], shared=True)
    second.acquire(["tuning"], shared=True)  # a second worker of the same study
    try:
        with pytest.raises(ProjectBusyError, match="tuning"):
            other.acquire(["pretrain"])
        assert len(list((tmp_path / "data/.kedro-run").glob("*.json"))) == 1  # one process
    finally:
        first.release()
        second.release()
    other.acquire(["pretrain"])
    with pytest.raises(ProjectBusyError, match="pretrain"):
        ProjectRunLock(tmp_path).acquire(["tuning"], shared=True)
    other.release()


def test_a_killed_holder_never_leaves_the_project_locked(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from robust_mmr_pipeline.hooks import ProjectRunLock
        ProjectRunLock({str(tmp_path)!r}).acquire(["ingestion"])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    assert proc.wait() == -signal.SIGKILL
    records = list((tmp_path / "data/.kedro-run").glob("*.json"))
    assert [r.name for r in records] == [f"{ProcessRecord.current().host}-{proc.pid}.json"]

    lock = ProjectRunLock(tmp_path)
    lock.acquire(["ingestion"])  # the kernel dropped the dead process's lock
    assert not records[0].exists()  # and its stale record is gone
    lock.release()


def test_a_run_refused_by_its_parameters_frees_the_lock_and_fails_its_mlflow_run(
    run_kedro, kedro_project: Path
) -> None:
    with pytest.raises(ParameterError):
        run_kedro("ingestion", params={"ingestion": {"on_bad_recrod": "drop"}})
    assert mlflow.active_run() is None
    assert {run.info.status for run in _runs(kedro_project)} <= {"FAILED"}
    lock = ProjectRunLock(kedro_project)
    lock.acquire(["ingestion"])  # not left held by the failed run
    lock.release()


def test_runs_of_dead_processes_are_marked_killed(kedro_project: Path) -> None:
    client = _client(kedro_project)
    experiment = client.create_experiment("runs")
    project = str(kedro_project.resolve())
    me = ProcessRecord.current()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid now names no process

    def run(pid: int, started: str | None, host: str = me.host, parent: str | None = None):
        tags = {TAG_HOST: host, TAG_PID: str(pid), TAG_PROJECT: project}
        if started is not None:
            tags[TAG_PROCESS_START] = started
        if parent is not None:
            tags = {"mlflow.parentRunId": parent}
        return client.create_run(experiment, tags=tags).info.run_id

    dead = run(finished.pid, "boot:1")
    nested = run(0, None, parent=dead)  # a trial run opened inside the dead one
    alive = run(me.pid, me.started)
    reused = run(me.pid, "another-boot:42")  # the number now belongs to another process
    remote = run(finished.pid, None, host="another-machine")

    killed = terminate_runs_of_dead_processes(client, project)
    assert sorted(killed) == sorted([dead, nested, reused])
    status = {run_id: client.get_run(run_id).info.status for run_id in (dead, nested, alive)}
    assert status == {dead: "KILLED", nested: "KILLED", alive: "RUNNING"}
    assert client.get_run(reused).info.status == "KILLED"
    assert client.get_run(remote).info.status == "RUNNING"  # cannot be told from here
    assert "ended while the run was RUNNING" in client.get_run(dead).data.tags[TAG_KILLED]
    assert terminate_runs_of_dead_processes(client, project) == []  # done once
