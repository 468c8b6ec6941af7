"""The shared Optuna study: storage, sampler, pruner, budget and crash recovery.

Why not kedro-datasets' ``optuna.StudyDataset``: it loads a study that must already exist and
saves by deleting the stored study and copying the in-memory one over it (a snapshot). Several
``kedro run --pipelines tuning`` workers append trials to ONE live study concurrently, so each
save would wipe the others' trials; it also supports RDB URLs only (no journal file, no
heartbeat). The study is therefore created or joined here with
``optuna.create_study(load_if_exists=True)`` and the storage is the single source of truth.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryFailedTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from robust_mmr_pipeline.seeding import stride_seed
from robust_mmr_pipeline.tuning.config import JOURNAL_PREFIX, TuningParams

logger = logging.getLogger(__name__)

# Trials that use up the study's budget (a RUNNING trial will end in one of the first three).
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
BUDGET_STATES = (*FINISHED_STATES, TrialState.RUNNING)


def _sqlite_file(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url[len(prefix) :] in ("", ":memory:"):
        return None
    return Path(url[len(prefix) :])


def build_storage(params: TuningParams) -> optuna.storages.BaseStorage:
    """``journal:<path>`` -> JournalStorage(JournalFileBackend); else an RDBStorage with
    heartbeat (SQLite gets a busy timeout so concurrent workers wait instead of failing)."""
    url = params.storage
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX) :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    sqlite = _sqlite_file(url)
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": params.sqlite_timeout_s}
    retry = (
        RetryFailedTrialCallback(max_retry=params.retry_failed_trials)
        if params.retry_failed_trials > 0
        else None
    )
    return _rdb_storage(
        url,
        engine_kwargs=engine_kwargs or None,
        heartbeat_interval=params.heartbeat_interval_s,
        grace_period=params.grace_period_s,
        failed_trial_callback=retry,
    )


def _rdb_storage(url: str, attempts: int = 3, **kwargs: Any) -> RDBStorage:
    """``RDBStorage(url, **kwargs)``, tolerating a worker that creates the schema at the same
    moment: on a fresh PostgreSQL database two workers' ``CREATE TABLE`` race (``duplicate key
    value violates unique constraint "pg_type_typname_nsp_index"``); the loser finds the tables
    there on its next try."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, attempts + 1):
        try:
            return RDBStorage(url, **kwargs)
        except (IntegrityError, ProgrammingError) as exc:
            if attempt == attempts:
                raise
            logger.info(
                "Another worker is creating the Optuna tables in %s (%s); trying again.",
                make_url(url).render_as_string(hide_password=True),
                str(exc.orig).splitlines()[0],
            )
    raise AssertionError("unreachable")


def worker_name() -> str:
    """``<host>:<pid>`` of this process: stored with each trial it runs (``worker`` user
    attribute), so a trial the heartbeat failed names the worker that died."""
    return f"{socket.gethostname()}:{os.getpid()}"


def trial_seed(study_seed: int, number: int) -> int:
    """The seed of trial ``number``: derived from the study seed, the same in every worker."""
    return stride_seed(study_seed, number, modulus=2**31 - 1)


class TrialSeededTPESampler(optuna.samplers.TPESampler):
    """TPE whose random streams are re-seeded from ``trial_seed(seed, trial.number)`` at the
    start of every trial.

    A plain seeded TPESampler gives every worker process the same random stream, so concurrent
    workers would propose the same startup candidates; seeding per trial number keeps the study
    reproducible and the workers' proposals distinct. (TPESampler exposes no per-trial seeding,
    so its two RandomState streams are re-seeded through its attributes.)
    """

    def __init__(self, *, seed: int, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._study_seed = int(seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        value = trial_seed(self._study_seed, trial.number)
        for owner in (self, getattr(self, "_random_sampler", None)):
            state = getattr(owner, "_rng", None)
            if state is not None:
                state.rng.seed(value)
        super().before_trial(study, trial)


def build_sampler(params: TuningParams) -> optuna.samplers.BaseSampler:
    """Seeded TPE (see :class:`TrialSeededTPESampler`)."""
    return TrialSeededTPESampler(
        seed=params.seed,
        n_startup_trials=params.sampler.n_startup_trials,
        multivariate=params.sampler.multivariate,
    )


def build_pruner(params: TuningParams) -> optuna.pruners.BasePruner:
    pruner = params.pruner
    if pruner.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.n_startup_trials, n_warmup_steps=pruner.n_warmup_steps
        )
    if pruner.kind == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=pruner.min_resource, reduction_factor=pruner.reduction_factor
        )
    return optuna.pruners.NopPruner()


def open_study(
    params: TuningParams, storage: optuna.storages.BaseStorage | None = None
) -> optuna.Study:
    """Create the study or join the existing one of the same name (directions must match)."""
    storage = storage if storage is not None else build_storage(params)
    study = optuna.create_study(
        storage=storage,
        study_name=params.study_name,
        directions=params.directions,
        sampler=build_sampler(params),
        pruner=build_pruner(params),
        load_if_exists=True,
    )
    stored = [d.name.lower() for d in study.directions]
    if stored != params.directions:
        raise ValueError(
            f"study {params.study_name!r} in {params.storage} optimises {stored}, but the "
            f"parameters ask for {params.directions}; use another tuning.study_name."
        )
    return study


def fail_stale_trials(
    study: optuna.Study,
    older_than_s: float,
    clock: Callable[[], dt.datetime] = dt.datetime.now,
) -> list[int]:
    """Mark RUNNING trials started more than ``older_than_s`` ago FAIL (their worker died).

    RDB storages do this through the heartbeat as well; the journal storage has no heartbeat,
    so this is its recovery path. ``clock`` gives the local time (Optuna's ``datetime_start``
    is local and naive). Returns the numbers of the trials marked.
    """
    now = clock()
    marked = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        started = trial.datetime_start or now
        if (now - started).total_seconds() < older_than_s:
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "failure", "stale: worker died")
            if study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                marked.append(trial.number)
        except (RuntimeError, ValueError) as exc:  # finished meanwhile by its worker
            logger.info("Trial %d could not be marked stale: %s", trial.number, exc)
    if marked:
        logger.warning("Marked stale RUNNING trial(s) %s of a dead worker as FAIL.", marked)
    return marked


def count_trials(study: optuna.Study, states: Sequence[TrialState] = BUDGET_STATES) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def settle_running_trials(
    study: optuna.Study,
    poll_s: float,
    stale_after_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, list[int]]:
    """Wait until no trial of the study is RUNNING (the other workers' trials finished, or
    were failed by Optuna's heartbeat check, which each poll runs: a worker silent for more
    than ``grace_period_s`` is dead). A trial whose worker died before its first heartbeat
    has none to go stale: :func:`fail_stale_trials` ends it once it is ``stale_after_s`` old.
    Storages without a heartbeat return at once.

    Returns ``{"waited_for": [...], "heartbeat_failed": [...]}`` (trial numbers).
    """
    from optuna.storages import fail_stale_trials as fail_heartbeat_stale_trials

    waited: set[int] = set()
    failed: list[int] = []
    heartbeat = getattr(study._storage, "get_heartbeat_interval", lambda: None)()
    if heartbeat is None:
        return {"waited_for": [], "heartbeat_failed": []}
    while True:
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        with warnings.catch_warnings():  # Optuna marks its heartbeat check experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_heartbeat_stale_trials(study)
        if stale_after_s is not None:
            fail_stale_trials(study, stale_after_s)
        still = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        failed += sorted(
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if t.number in running - still
        )
        if not waited and still:
            logger.info(
                "The study's budget is used up; waiting for trial(s) %s of other workers to "
                "finish (a dead worker's trial is failed by the heartbeat).",
                sorted(still),
            )
        waited |= running
        if not still:
            break
        sleep(poll_s)
    if failed:
        logger.warning("Trial(s) %s of a dead worker failed by the heartbeat.", failed)
    return {"waited_for": sorted(waited), "heartbeat_failed": failed}


def run_study(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], Any],
    params: TuningParams,
) -> dict[str, Any]:
    """Run up to ``params.n_trials`` trials of ``objective`` in this process.

    The study-wide budget ``max_total_trials`` counts finished (COMPLETE / PRUNED / FAIL) and
    RUNNING trials of every worker; it is checked before each trial and enforced again after it
    by Optuna's ``MaxTrialsCallback``. A worker that finds the budget used up waits for the
    trials other workers are still running (:func:`settle_running_trials`), so its summary
    covers the whole study and a dead worker's trial ends FAIL. A trial that raises (e.g. the
    engine's NonFiniteLossError) is recorded FAIL (``catch``) and the study goes on;
    KeyboardInterrupt stops the worker and its RUNNING trial is recovered on the next start.
    """
    stale = fail_stale_trials(study, params.stale_trial_timeout_s)
    callbacks = []
    if params.max_total_trials is not None:
        callbacks.append(
            optuna.study.MaxTrialsCallback(params.max_total_trials, states=FINISHED_STATES)
        )
    ran: list[int] = []

    def remember(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ran.append(trial.number)

    deadline = (
        None
        if params.timeout_s is None
        else dt.datetime.now() + dt.timedelta(seconds=params.timeout_s)
    )
    stopped = "n_trials"
    for _ in range(params.n_trials):
        if params.max_total_trials is not None and count_trials(study) >= params.max_total_trials:
            stopped = "max_total_trials"
            break
        if deadline is not None and dt.datetime.now() >= deadline:
            stopped = "timeout"
            break
        before = len(ran)
        study.optimize(
            objective,
            n_trials=1,
            catch=(Exception,),
            callbacks=[*callbacks, remember],
            gc_after_trial=True,
        )
        if len(ran) == before:  # MaxTrialsCallback stopped the study before the trial ran
            stopped = "max_total_trials"
            break
    settled = {"waited_for": [], "heartbeat_failed": []}
    if stopped == "max_total_trials":
        settled = settle_running_trials(
            study, params.heartbeat_interval_s, params.stale_trial_timeout_s
        )
    return {"trials_run": ran, "stale_marked_failed": stale, "stopped_by": stopped, **settled}
