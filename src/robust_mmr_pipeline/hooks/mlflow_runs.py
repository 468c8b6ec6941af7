"""MLflow: the experiment created before kedro-mlflow looks it up, and no run of this project
left RUNNING by a dead or interrupted process."""

from __future__ import annotations

import atexit
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from robust_mmr_pipeline.hooks.processes import ProcessRecord
from robust_mmr_pipeline.launch import launched_process

logger = logging.getLogger(__name__)

TAG_HOST = "robust_mmr.host"
TAG_PID = "robust_mmr.pid"
TAG_PROCESS_START = "robust_mmr.process_start"
TAG_PROJECT = "robust_mmr.project"
TAG_KILLED = "robust_mmr.killed"


class TrackingConfigError(RuntimeError):
    """mlflow.yml leaves the tracking URI to an environment variable that is not set."""


class MlflowExperimentHooks:
    """Create the MLflow experiment before kedro-mlflow looks it up, tolerating a race.

    kedro-mlflow checks for the experiment and creates it when missing; two processes starting
    together on a fresh store (``kedro run --pipelines tuning`` workers sharing a study) both
    see it missing and the second creation fails. This hook runs first (``tryfirst``) with
    kedro-mlflow's own configuration and accepts "already exists": the experiment is then there
    when kedro-mlflow's hook runs. A configuration that takes the tracking URI from
    ``MLFLOW_TRACKING_URI`` (``conf/tracking_server``) stops here when it is unset, instead of
    tracking to a local folder no one else sees.
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        from kedro.config import MissingConfigException
        from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

        try:
            settings = context.config_loader["mlflow"]
        except MissingConfigException:
            return
        config = KedroMlflowConfig.model_validate({**settings})
        if config.server.mlflow_tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI"):
            raise TrackingConfigError(
                f"conf/{context.env or 'local'}/mlflow.yml (server.mlflow_tracking_uri: null) "
                "tracks to the server named by MLFLOW_TRACKING_URI, which is not set. Fix: export "
                "MLFLOW_TRACKING_URI=http://<tracking host>:5000 (the team's `mlflow server`), "
                "or set server.mlflow_tracking_uri in that file."
            )
        try:
            config.setup(context)
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            logger.info("MLflow experiment created by a concurrent process; using it.")


def terminate_runs_of_dead_processes(client: Any, project: str) -> list[str]:
    """Mark KILLED this project's MLflow runs still RUNNING whose process has ended (and their
    RUNNING nested runs). Runs from another host, or without the process tags, are left alone.
    Returns the ids of the runs marked."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    host = socket.gethostname()
    running = client.search_runs(
        experiments,
        f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{host}'",
        max_results=1000,
    )
    killed: list[str] = []
    for run in running:
        tags = run.data.tags
        if tags.get(TAG_PROJECT) != project or not str(tags.get(TAG_PID, "")).isdigit():
            continue
        process = ProcessRecord(host, int(tags[TAG_PID]), tags.get(TAG_PROCESS_START))
        if process.gone() is not True:
            continue
        reason = (
            f"process {process.pid} on {host} ended while the run was RUNNING (killed or "
            "crashed); marked at the start of a later run"
        )
        pending = [run.info.run_id]
        while pending:
            run_id = pending.pop()
            client.set_tag(run_id, TAG_KILLED, reason)
            client.set_terminated(run_id, status="KILLED")
            killed.append(run_id)
            children = client.search_runs(
                experiments,
                f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{run_id}'",
            )
            pending += [child.info.run_id for child in children]
        logger.warning(
            "MLflow run %s (%s) was left RUNNING by %s: marked KILLED.",
            run.info.run_id,
            tags.get("kedro_command") or run.info.run_name,
            f"process {process.pid}, which is gone",
        )
    return killed


class MlflowRunStateHooks:
    """No MLflow run of this project stays RUNNING once its process is gone, and none that was
    interrupted is recorded FINISHED.

    Every run kedro-mlflow opens is tagged with its host, pid and process start; at the start of
    each later run, RUNNING runs whose process has ended (``kill -9``, a crash, a machine that
    went down) are marked KILLED. A run interrupted while its pipeline runs (Ctrl-C, i.e.
    SIGINT / KeyboardInterrupt, or a ``sys.exit`` from a node) would be ended FINISHED by
    MLflow's exit handler: it is marked KILLED first, at exit (or when the same process starts
    its next pipeline). A run that fails before its first node (an error in another
    ``before_pipeline_run`` hook, e.g. bad parameters) is ended FAILED at once.
    """

    def __init__(self) -> None:
        self._enabled = False
        self._open_run: str | None = None  # the MLflow run of a pipeline that has not ended
        self._exit_handler = False

    @hook_impl
    def after_context_created(self, context) -> None:
        from kedro.config import MissingConfigException

        try:
            self._enabled = bool(context.config_loader["mlflow"])
        except MissingConfigException:
            self._enabled = False

    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> Iterator[Any]:
        if not self._enabled or not launched_process().is_main:
            return (yield)  # the other processes of a launch open no MLflow run
        import mlflow

        self.end_interrupted_run()  # left by a pipeline of this process that never ended
        project = str(Path(run_params.get("project_path") or Path.cwd()).resolve())
        try:
            terminate_runs_of_dead_processes(mlflow.MlflowClient(), project)
        except Exception as exc:  # a cleanup of earlier runs never stops this one
            logger.warning("Could not check for MLflow runs left RUNNING: %s", exc)
        before = mlflow.active_run()
        try:
            result = yield
        except BaseException as exc:
            active = mlflow.active_run()
            if active is not None and (before is None or active.info.run_id != before.info.run_id):
                mlflow.end_run(status="KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        active = mlflow.active_run()
        if active is not None:
            me = ProcessRecord.current()
            tags = {TAG_HOST: me.host, TAG_PID: str(me.pid), TAG_PROJECT: project}
            if me.started is not None:
                tags[TAG_PROCESS_START] = me.started
            mlflow.set_tags(tags)
            self._open_run = active.info.run_id
            if not self._exit_handler:
                # registered after MLflow's own exit handler, so it runs before it
                atexit.register(self.end_interrupted_run)
                self._exit_handler = True
        return result

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._open_run = None

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._open_run = None  # kedro-mlflow ends it FAILED

    def end_interrupted_run(self) -> None:
        """Mark KILLED the MLflow run (and the nested runs still open inside it) of a pipeline
        that neither finished nor failed: it was interrupted."""
        if self._open_run is None:
            return
        import mlflow

        run_id, self._open_run = self._open_run, None
        reason = (
            f"interrupted (Ctrl-C / KeyboardInterrupt, or an exit) in process {os.getpid()} "
            "before the pipeline ended"
        )
        logger.warning("MLflow run %s was interrupted: marking it KILLED.", run_id)
        client = mlflow.MlflowClient()
        while (active := mlflow.active_run()) is not None:  # nested runs first, then the run
            client.set_tag(active.info.run_id, TAG_KILLED, reason)
            mlflow.end_run(status="KILLED")
            if active.info.run_id == run_id:
                return
        if client.get_run(run_id).info.status == "RUNNING":  # no longer the active run
            client.set_tag(run_id, TAG_KILLED, reason)
            client.set_terminated(run_id, status="KILLED")
