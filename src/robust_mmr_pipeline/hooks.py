"""Project hooks: typed parameter validation and the data requirements check before a run, a
summary of results after it, one run at a time per project (run lock), no MLflow run left
RUNNING by a dead or interrupted process, a replaced run's checkpoints deleted only once
no manifest names them, and in a multi-process launch one process that writes."""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robust_mmr_pipeline.io_utils import atomic_write_text

try:  # POSIX advisory locks (shared / exclusive, dropped by the kernel when a process dies)
    import fcntl
except ImportError:  # Windows: no run lock
    fcntl = None  # type: ignore[assignment]

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from robust_mmr_pipeline.launch import broadcast_from_main, launched_process
from robust_mmr_pipeline.params import check_sections, validate_sections

logger = logging.getLogger(__name__)

# Where results land, relative to the project root (the catalog's layer folders).
RESULT_FOLDERS = {
    "reports": Path("data/08_reporting"),
    "checkpoints": Path("data/06_models"),
}


def _param_sections(pipeline: Pipeline) -> list[str]:
    """The top-level parameter sections read by the pipeline's nodes (``params:x.y`` -> ``x``)."""
    sections = {
        name.removeprefix("params:").split(".")[0]
        for name in pipeline.inputs()
        if name.startswith("params:")
    }
    return sorted(sections)


def _sections_read_by_registered_pipelines() -> set[str]:
    from kedro.framework.project import pipelines

    return {section for registered in pipelines.values() for section in _param_sections(registered)}


class ParameterValidationHooks:
    """Fail before the first node runs when a top-level parameter key is no known section (a
    misspelt ``--params pretrian.x=1``) or a section the pipeline reads does not match its
    dataclass. Runs first (``tryfirst``): no MLflow run is opened for a broken configuration."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        params = catalog.load("parameters")
        check_sections(
            params,
            read_by_nodes=_sections_read_by_registered_pipelines(),
            from_cli=set(run_params.get("runtime_params") or {}),
            env=run_params.get("env"),
        )
        validate_sections(params, _param_sections(pipeline))


class DataRequirementsHooks:
    """Stop a run whose configured data cannot feed one of its stages, before the work.

    Before the run (when it ingests): the configured sources' declarations against every stage
    the run reads parameters of. Before each stage-entry node (fit_tokenizer, pretrain_model,
    finetune_tasks, evaluate_models, namespaced copies included): the split manifests' counts.
    Tasks the user allowed to skip (``requirements.skip_when_missing``) are removed from that
    node's parameters; anything else missing raises DataRequirementsError
    (robust_mmr_pipeline/data_requirements.py).
    """

    def __init__(self) -> None:
        self._parameters: dict[str, Any] | None = None
        self._skipped: set[str] = set()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        from robust_mmr_pipeline import data_requirements as req

        self._parameters = catalog.load("parameters")
        self._skipped = set()
        sections = set(_param_sections(pipeline))
        if any(n.name.startswith(f"{req.AS_RELEASED_NAMESPACE}.") for n in pipeline.nodes):
            sections.add(req.AS_RELEASED_NAMESPACE)
        if "ingestion" in sections:
            params = self._parameters
            shortfalls = req.static_shortfalls(params, sections)
            self._skipped = req.enforce(
                shortfalls,
                self._requirements().skip_when_missing,
                req.configured_sources(params.get("ingestion")),
                "checked against the configured sources before ingestion",
            )

    @hook_impl
    def before_node_run(self, node, catalog, inputs: dict[str, Any]) -> dict[str, Any] | None:
        from robust_mmr_pipeline import data_requirements as req

        stage = req.STAGE_NODES.get(node.name.rsplit(".", 1)[-1])
        if stage is None:
            return None
        key = next(
            (k for k in inputs if k == f"params:{stage}" or k.endswith(f"{stage}_params")), None
        )
        if key is None:
            return None
        if self._parameters is None:
            self._parameters = catalog.load("parameters")
        manifest = next((v for k, v in inputs.items() if k.endswith("finetune_manifest")), {})
        shortfalls = req.manifest_shortfalls(
            stage,
            inputs[key],
            split_pairs=inputs.get("split_pairs"),
            split_vqa=inputs.get("split_vqa"),
            split_classification=inputs.get("split_classification"),
            finetuned_tasks=list((manifest or {}).get("tasks", {})),
            min_rows=self._requirements().min_rows,
        )
        try:
            sources = req.configured_sources(self._parameters.get("ingestion"))
        except ValueError:
            sources = []
        skipped = self._skipped | req.enforce(
            shortfalls,
            self._requirements().skip_when_missing,
            sources,
            f"checked before node {node.name}",
        )
        updated = req.without_skipped(stage, inputs[key], skipped)
        return {key: updated} if updated != inputs[key] else None

    def _requirements(self) -> Any:
        from robust_mmr_pipeline.data_requirements import RequirementsParams
        from robust_mmr_pipeline.params import parse

        section = (self._parameters or {}).get("requirements")
        return parse(RequirementsParams, section, "requirements")


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


class RunSummaryHooks:
    """Print where the results of a successful run are: reports, checkpoints, MLflow store."""

    def __init__(self) -> None:
        self._started = time.time()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._started = time.time()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if not launched_process().is_main:
            return  # one summary per launch
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        label = ", ".join(n for n in names if n) or "__default__"
        lines = [f"Run finished (pipeline: {label})."]
        for label, folder in RESULT_FOLDERS.items():
            fresh = (
                sorted(
                    str(path)
                    for path in folder.rglob("*")
                    if path.is_file() and path.stat().st_mtime >= self._started - 1
                )
                if folder.is_dir()
                else []
            )
            if fresh:
                shown = fresh[:12] + (
                    [f"... and {len(fresh) - 12} more"] if len(fresh) > 12 else []
                )
                lines.append(f"  {label} ({folder}/):")
                lines += [f"    {item}" for item in shown]
        try:
            import mlflow

            lines.append(
                f"  MLflow tracking store: {mlflow.get_tracking_uri()} "
                "(browse with: make mlflow-ui)"
            )
        except ImportError:
            pass
        print("\n".join(lines))  # noqa: T201 - the user-facing summary of `kedro run`


def _named_checkpoints(data: Any) -> Iterator[str]:
    """Every ``checkpoint`` path a manifest names (at any depth: fine-tuning lists its tasks)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "checkpoint" and isinstance(value, str) and value:
                yield value
            else:
                yield from _named_checkpoints(value)


class ReplacedCheckpointHooks:
    """Delete the checkpoints a published run replaced once the manifest naming the new run is
    saved (pretrain_checkpoint.json, finetune_manifest.json, ...): until then the old manifest
    still names the earlier run's folders, which therefore stay (engine.checkpoint.RunTarget)."""

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if not launched_process().is_main:
            return  # the other processes of a launch saved nothing (LaunchedProcessHooks)
        from robust_mmr_pipeline.engine.checkpoint import REPLACED_FILE, retire_replaced

        for checkpoint in _named_checkpoints(data):
            output_dir = Path(checkpoint).parent.parent  # <output_dir>/<checkpoints|best>/step-*
            if (output_dir / REPLACED_FILE).is_file():
                retire_replaced(output_dir)


# ----------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def _process_start(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later one given the same number: the boot id and
    its start time (clock ticks after boot, field 22) from /proc. None without /proc."""
    fields = _proc_stat(pid)
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return f"{boot}:{fields[19]}" if fields else None


@dataclass(frozen=True)
class ProcessRecord:
    """A process as another process can recognise it later (host, pid, start identity)."""

    host: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> ProcessRecord:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    def gone(self) -> bool | None:
        """True when the process has certainly ended, False when it runs, None when this
        machine cannot tell (the process ran on another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            pass
        fields = _proc_stat(self.pid)
        if fields and fields[0] == "Z":  # killed, not yet reaped by its parent
            return True
        now = _process_start(self.pid)
        return self.started is not None and now is not None and now != self.started


def _pipeline_names(run_params: dict[str, Any]) -> list[str]:
    return list(run_params.get("pipeline_names") or ["__default__"])


# ----------------------------------------------------------------------------- run lock


class ProjectBusyError(RuntimeError):
    """Another Kedro run holds this project's run lock; the message names it and the fix."""


class ProjectRunLock:
    """One Kedro run at a time per project, or several runs of pipelines built to share it.

    Two runs in one project write the same ``data/`` files, checkpoints and MLflow runs (two
    ``kedro run --pipelines ingestion`` started together broke each other's files). A run takes
    ``data/.kedro-run/lock`` exclusively; runs whose pipelines are all ``shared`` (tuning
    workers joining one Optuna study) take it shared, with each other. The lock is an advisory
    ``flock``: the kernel drops it when its process ends, however it ends, so a killed run never
    leaves the project locked. Each holder writes ``<host>-<pid>.json`` next to it (what,
    since when), which names it to a run that is refused.
    """

    def __init__(self, project_path: str | os.PathLike[str]) -> None:
        self.folder = Path(project_path) / "data" / ".kedro-run"
        self.path = self.folder / "lock"
        self._fd: int | None = None
        self._record: Path | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(
        self,
        pipelines: list[str],
        shared: bool = False,
        env: str | None = None,
        shared_pipelines: Iterable[str] = (),
    ) -> None:
        """Take the lock or raise :class:`ProjectBusyError` at once (never waits)."""
        if fcntl is None or self.held:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ProjectBusyError(self._busy_message(pipelines, shared_pipelines)) from None
        self._fd = fd
        me = ProcessRecord.current()
        for path, record in self._holders():
            if shared and record.get("process") and _record_process(record).gone() is not True:
                continue  # a live run sharing the lock
            path.unlink(missing_ok=True)  # a holder that ended without cleaning up
        self._record = self.folder / f"{me.host}-{me.pid}.json"
        info = {
            "process": asdict(me),
            "pipelines": pipelines,
            "env": env,
            "mode": "shared" if shared else "exclusive",
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_text(self._record, json.dumps(info, indent=1))

    def release(self) -> None:
        if self._fd is None:
            return
        if self._record is not None:
            self._record.unlink(missing_ok=True)
            self._record = None
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _holders(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path in sorted(self.folder.glob("*.json")):
            try:
                yield path, json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue

    def _busy_message(self, pipelines: list[str], shared_pipelines: Iterable[str]) -> str:
        lines = [
            f"This project ({self.folder.parent.parent}) is in use by another Kedro run, so "
            f"this run (pipeline(s) {', '.join(pipelines)}) did not start:"
        ]
        holders = [
            record
            for _, record in self._holders()
            if record.get("process") and _record_process(record).gone() is not True
        ]
        for record in holders:
            process = _record_process(record)
            lines.append(
                f"  pid {process.pid} on host {process.host}: pipeline(s) "
                f"{', '.join(record.get('pipelines') or ['?'])} (env {record.get('env')}), "
                f"started {record.get('since')}"
            )
        if not holders:
            lines.append(f"  a process that has not recorded itself yet (lock file {self.path})")
        stop = " or ".join(f"kill {_record_process(r).pid}" for r in holders) or "stop it"
        shared = sorted(shared_pipelines)
        lines += [
            "Two runs in one project write the same data/ files, checkpoints and MLflow runs.",
            f"Fix: wait for that run to finish (or, if it is stuck, {stop}), then run again.",
        ]
        if shared:
            lines.append(
                f"Runs of {', '.join(shared)} alone may run together (they share one study)."
            )
        return "\n".join(lines)


def _record_process(record: dict[str, Any]) -> ProcessRecord:
    process = record["process"]
    return ProcessRecord(str(process["host"]), int(process["pid"]), process.get("started"))


class ProjectRunLockHooks:
    """Hold :class:`ProjectRunLock` from before the first hook of a run to its end.

    A wrapper around ``before_pipeline_run``: a refused run raises before kedro-mlflow opens an
    MLflow run or any node starts; an error in a later ``before_pipeline_run`` hook (e.g. bad
    parameters) releases the lock again. In a multi-process launch process 0 takes the lock for
    the launch and tells the others whether it got it (they stop with its message if not).
    """

    def __init__(self, shared_pipelines: Iterable[str] = ("tuning",)) -> None:
        self.shared_pipelines = frozenset(shared_pipelines)
        self._lock: ProjectRunLock | None = None

    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict[str, Any]) -> Iterator[Any]:
        self._release()  # left by a run of this process that ended without its closing hooks
        names = _pipeline_names(run_params)
        process = launched_process()
        refused: str | None = None
        if process.is_main:
            lock = ProjectRunLock(run_params.get("project_path") or Path.cwd())
            try:
                lock.acquire(
                    names,
                    shared=set(names) <= self.shared_pipelines,
                    env=run_params.get("env"),
                    shared_pipelines=self.shared_pipelines,
                )
            except ProjectBusyError as exc:
                refused = str(exc)
            else:
                self._lock = lock
        refused = broadcast_from_main(refused)
        if refused is not None:
            if process.is_main:
                raise ProjectBusyError(refused)
            raise ProjectBusyError(f"Process 0 of this launch did not start. {refused}")
        try:
            return (yield)
        except BaseException:
            self._release()
            raise

    @hook_impl(trylast=True)
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl(trylast=True)
    def on_pipeline_error(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


# ----------------------------------------------------------------------------- MLflow runs

TAG_HOST = "robust_mmr.host"
TAG_PID = "robust_mmr.pid"
TAG_PROCESS_START = "robust_mmr.process_start"
TAG_PROJECT = "robust_mmr.project"
TAG_KILLED = "robust_mmr.killed"


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


# ----------------------------------------------------------------------------- launches


class LaunchedProcessHooks:
    """A multi-process launch (``accelerate launch -m robust_mmr_pipeline run``, ``torchrun``)
    runs the same Kedro run in every process: each runs every node (training steps are
    collective), and process 0 alone writes.

    In the other processes every dataset the pipeline writes becomes a ``MemoryDataset`` (the
    nodes' outputs stay in memory: no file of ``data/`` is written twice, the loss table and
    the manifests come from process 0) and kedro-mlflow's tracking is off for the run. Process
    0 holds the run lock and the MLflow run (:class:`ProjectRunLockHooks`,
    :class:`MlflowRunStateHooks`); the training engine writes checkpoints from process 0 only.
    Each process logs its place (rank, pid) once, so a log of the launch reads unambiguously.
    Runs ``tryfirst``: before kedro-mlflow's hook decides whether to open a run.
    """

    def __init__(self) -> None:
        self._context: Any = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        process = launched_process()
        if not process.launched:
            return
        if process.is_main:
            logger.info(
                "Launch of %d processes: %s writes data/, the MLflow run and checkpoints and "
                "holds the run lock; the others keep their outputs in memory.",
                process.world_size,
                process.describe(),
            )
            return
        from kedro.io import MemoryDataset

        mlflow_config = getattr(self._context, "mlflow", None)
        if mlflow_config is not None:
            disabled = mlflow_config.tracking.disable_tracking
            disabled.pipelines = sorted({*disabled.pipelines, *_pipeline_names(run_params)})
        outputs = sorted(pipeline.all_outputs())
        for name in outputs:
            catalog[name] = MemoryDataset(copy_mode="assign")
        logger.info(
            "Launch of %d processes: %s runs the nodes with process 0 and keeps its %d outputs "
            "in memory (no MLflow run, no run lock: process 0 holds them).",
            process.world_size,
            process.describe(),
            len(outputs),
        )
