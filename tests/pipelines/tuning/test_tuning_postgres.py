"""Two tuning workers share one Optuna study on a real PostgreSQL server (Debian's package, a
throwaway cluster): one is killed in the middle of a trial, Optuna's heartbeat fails that trial,
the other worker finishes the study; no trial is lost or counted twice; optuna-dashboard reads
the same URL. Everything is detected by polling the database or the server, never by waiting a
fixed time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scaleout_support import free_port, http_json, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.scaleout]

STUDY = "robust_mmr_weights"
BUDGET = 4
# What the pipeline's first command is for a team: the same --params on every worker machine.
WORKER_PARAMS = [
    "tuning.n_trials=20",  # each worker would run more: the study budget stops them
    f"tuning.max_total_trials={BUDGET}",
    "tuning.heartbeat_interval_s=1",
    "tuning.grace_period_s=10",  # a live worker under load is never silent that long
    "tuning.log_to_mlflow=false",
]


def _start_worker(project: Path, url: str, log: Path) -> subprocess.Popen:
    kedro = Path(sys.executable).with_name("kedro")
    params = ",".join([f"tuning.storage={url}", *WORKER_PARAMS])
    command = [str(kedro), "run", "--pipelines", "tuning", "--env", "test", "--params", params]
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as handle:
        return subprocess.Popen(command, cwd=project, env=env, stdout=handle, stderr=handle)


def _running_trial_of(postgres: Any, database: str, pid: int) -> int | None:
    """The number of the trial worker ``pid`` is in the middle of right now (RUNNING, its
    ``worker`` user attribute, its heartbeat recorded), read from Optuna's tables; None before
    the tables or such a trial exist."""
    import psycopg

    try:
        rows = postgres.query(
            database,
            "SELECT t.number, a.value_json FROM trials t "
            "JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
            "JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
            "WHERE t.state = 'RUNNING' AND a.key = 'worker'",
        )
    except psycopg.errors.UndefinedTable:
        return None
    mine = [number for number, worker in rows if json.loads(worker).endswith(f":{pid}")]
    return mine[0] if mine else None


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def test_a_killed_worker_loses_no_trial_and_the_dashboard_reads_the_study(
    chain_project: Path, postgres: Any
) -> None:
    import optuna
    from optuna.trial import TrialState

    project = chain_project
    # MLflow's SQLite store is not what this test is about: keep the workers off it.
    (project / "conf/test/mlflow.yml").write_text(
        "tracking:\n  disable_tracking:\n    pipelines: [tuning]\n"
    )
    database = "optuna"
    url = postgres.create_database(database)  # empty: the workers create Optuna's tables
    logs = {name: project / f"{name}.log" for name in ("victim", "survivor")}
    victim = _start_worker(project, url, logs["victim"])
    survivor = _start_worker(project, url, logs["survivor"])
    try:
        # Mid-trial: the victim's trial is RUNNING in the database. Freeze the victim, check
        # again (a frozen process cannot finish it), then kill it; else let it go on and poll.
        def frozen_mid_trial() -> int | None:
            number = _running_trial_of(postgres, database, victim.pid)
            if number is None:
                if victim.poll() is not None:
                    raise AssertionError(f"the victim exited first:\n{_tail(logs['victim'])}")
                return None
            os.kill(victim.pid, signal.SIGSTOP)
            if _running_trial_of(postgres, database, victim.pid) == number:
                return number
            os.kill(victim.pid, signal.SIGCONT)
            return None

        killed_trial = wait_until(frozen_mid_trial, "a RUNNING trial of the victim", 600)
        victim.kill()
        victim.wait()
        assert survivor.wait(timeout=600) == 0, _tail(logs["survivor"])
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()

    storage = optuna.storages.RDBStorage(url)
    trials = optuna.load_study(study_name=STUDY, storage=storage).get_trials()
    # none lost, none extra: exactly the budget, numbered once each, none left RUNNING
    assert sorted(t.number for t in trials) == list(range(BUDGET))
    by_number = {t.number: t for t in trials}
    dead = by_number[killed_trial]
    assert dead.state == TrialState.FAIL
    assert dead.datetime_complete is not None
    # failed by the heartbeat: no exception of the objective ("failure"), no journal timeout
    assert "failure" not in dead.user_attrs and dead.user_attrs["worker"].endswith(f":{victim.pid}")
    survivor_name = f":{survivor.pid}"
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    others = [t for t in trials if t.number != killed_trial]
    assert all(t.state in finished for t in others), [(t.number, t.state) for t in others]
    assert len({tuple(sorted(t.params.items())) for t in trials}) == BUDGET

    # the survivor finished the study: it ran every trial the victim did not, and waited for
    # the victim's until the heartbeat failed it
    summary = json.loads((project / "data/08_reporting/tuning_best_params.json").read_text())
    worker = summary["worker"]
    ran_by_survivor = sorted(
        t.number for t in trials if t.user_attrs["worker"].endswith(survivor_name)
    )
    ran_by_victim = sorted(
        t.number for t in trials if t.user_attrs["worker"].endswith(f":{victim.pid}")
    )
    assert worker["trials_run"] == ran_by_survivor
    assert sorted(ran_by_survivor + ran_by_victim) == list(range(BUDGET))  # nobody twice
    assert worker["stopped_by"] == "max_total_trials"
    assert summary["trials_by_state"]["FAIL"] == 1
    assert summary["best"]["number"] != killed_trial

    # optuna-dashboard on the same URL sees the same trials
    port = free_port()
    dashboard_log = project / "dashboard.log"
    dashboard_bin = Path(sys.executable).with_name("optuna-dashboard")
    with open(dashboard_log, "wb") as handle:
        dashboard = subprocess.Popen(
            [str(dashboard_bin), url, "--host", "127.0.0.1", "--port", str(port)],
            stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        studies = wait_until(
            lambda: http_json(base), "optuna-dashboard /api/studies", process=dashboard,
            log=dashboard_log,
        )  # fmt: skip
        (listed,) = [s for s in studies["study_summaries"] if s["study_name"] == STUDY]
        detail = http_json(f"{base}/{listed['study_id']}")
    finally:
        stop(dashboard)
    assert detail is not None
    shown = {t["number"]: t["state"] for t in detail["trials"]}
    assert shown == {t.number: t.state.name.capitalize() for t in trials}
