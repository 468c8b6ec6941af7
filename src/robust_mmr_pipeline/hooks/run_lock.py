"""One Kedro run at a time per project (an advisory ``flock`` on ``data/.kedro-run/lock``),
or several runs of pipelines built to share it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from robust_mmr_pipeline.hooks.processes import ProcessRecord
from robust_mmr_pipeline.io_utils import atomic_write_text
from robust_mmr_pipeline.launch import broadcast_from_main, launched_process

try:  # POSIX advisory locks (shared / exclusive, dropped by the kernel when a process dies)
    import fcntl
except ImportError:  # Windows: no run lock
    fcntl = None  # type: ignore[assignment]


def pipeline_names(run_params: dict[str, Any]) -> list[str]:
    """The pipelines a Kedro run runs (``__default__`` when none is named)."""
    return list(run_params.get("pipeline_names") or ["__default__"])


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
        names = pipeline_names(run_params)
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
