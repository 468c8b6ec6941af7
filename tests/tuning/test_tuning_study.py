"""The shared study without training: budget, failures, crash recovery, seeds, reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from robust_mmr_pipeline.engine import NonFiniteLossError
from robust_mmr_pipeline.tuning import TuningParams, build_storage, open_study, run_study
from robust_mmr_pipeline.tuning.objective import report_history, validation_split
from robust_mmr_pipeline.tuning.report import params_string, study_figures
from robust_mmr_pipeline.tuning.space import model_overrides, sample
from robust_mmr_pipeline.tuning.study import fail_stale_trials, settle_running_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
REPO = Path(__file__).resolve().parents[2]


def _params(tmp_path: Path, **overrides: object) -> TuningParams:
    settings: dict[str, object] = {
        "storage": f"journal:{tmp_path / 'optuna.journal'}",
        "n_trials": 3,
        "max_total_trials": None,
        "log_to_mlflow": False,
    }
    settings.update(overrides)
    return TuningParams(**settings)


def _objective(fail: dict[int, Exception] | None = None):
    def objective(trial: optuna.Trial) -> float:
        values = sample(trial, TuningParams().search_space)
        if fail and trial.number in fail:
            raise fail[trial.number]
        return values["domain_consistency_weight"]

    return objective


def test_failing_and_diverging_trials_are_fail_and_the_study_continues(tmp_path: Path) -> None:
    params = _params(tmp_path, n_trials=4)
    study = open_study(params)
    diverged = NonFiniteLossError(3, {"loss": float("nan")}, None, (0, 0))
    worker = run_study(study, _objective({1: RuntimeError("boom"), 2: diverged}), params)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert worker["trials_run"] == [0, 1, 2, 3] and worker["stopped_by"] == "n_trials"


def test_budget_counts_every_finished_trial(tmp_path: Path) -> None:
    params = _params(tmp_path, n_trials=5, max_total_trials=3)
    study = open_study(params)
    worker = run_study(study, _objective({0: RuntimeError("boom")}), params)
    assert len(study.get_trials()) == 3 and worker["stopped_by"] == "max_total_trials"
    # a second worker on the exhausted study runs nothing
    again = run_study(open_study(params), _objective(), params)
    assert again["trials_run"] == [] and len(study.get_trials()) == 3


def test_interrupted_study_resumes_and_stale_running_trial_is_failed(tmp_path: Path) -> None:
    params = _params(tmp_path, n_trials=2, stale_trial_timeout_s=0)
    study = open_study(params)
    study.ask()  # a worker died inside trial 0: it stays RUNNING in the storage
    worker = run_study(open_study(params), _objective(), params)
    assert worker["stale_marked_failed"] == [0] and worker["trials_run"] == [1, 2]
    one_more = _params(tmp_path, n_trials=1)  # the next run (default stale timeout)
    resumed = run_study(open_study(one_more), _objective(), one_more)
    trials = open_study(params).get_trials()
    assert resumed["trials_run"] == [3] and [t.number for t in trials] == [0, 1, 2, 3]
    assert trials[0].state == TrialState.FAIL and "stale" in trials[0].user_attrs["failure"]


def test_journal_recovery_fails_only_trials_older_than_the_timeout(tmp_path: Path) -> None:
    params = _params(tmp_path)
    study = open_study(params)
    running = study.ask()  # RUNNING, started just now by a worker that may still be alive
    started = study.get_trials()[0].datetime_start
    assert started is not None
    day = 86400.0
    assert (
        fail_stale_trials(study, day, clock=lambda: started + dt.timedelta(seconds=day - 1)) == []
    )
    assert study.get_trials()[0].state == TrialState.RUNNING
    later = started + dt.timedelta(seconds=day + 1)  # an injected clock, one day later
    assert fail_stale_trials(study, day, clock=lambda: later) == [running.number]
    trial = open_study(params).get_trials()[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["failure"] == "stale: worker died"


def _backdate_heartbeat(
    storage: optuna.storages.RDBStorage, trial_id: int, by: dt.timedelta
) -> None:
    """Move a trial's last heartbeat ``by`` into the past: a worker silent that long (the
    row Optuna's ``_get_stale_trial_ids`` compares with the database clock)."""
    import sqlalchemy
    from optuna.storages._rdb.models import TrialHeartbeatModel

    table = TrialHeartbeatModel.__table__
    with storage.engine.begin() as connection:
        beat = connection.execute(
            sqlalchemy.select(table.c.heartbeat).where(table.c.trial_id == trial_id)
        ).scalar_one()
        connection.execute(
            table.update().where(table.c.trial_id == trial_id).values(heartbeat=beat - by)
        )


def test_sqlite_heartbeat_fails_the_trial_of_a_dead_worker(tmp_path: Path) -> None:
    # No sleep against the grace period: the dead worker's heartbeat is written, then moved two
    # hours back; a live worker's heartbeat is fresh. Optuna's own stale-trial check (run by
    # study.optimize) must fail the first and leave the second RUNNING.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = _params(
        tmp_path, storage=url, heartbeat_interval_s=60, grace_period_s=3600, n_trials=1
    )
    storage = build_storage(params)
    assert isinstance(storage, optuna.storages.RDBStorage)
    study = open_study(params, storage)
    dead, live = study.ask(), study.ask()
    storage.record_heartbeat(dead._trial_id)
    storage.record_heartbeat(live._trial_id)
    _backdate_heartbeat(storage, dead._trial_id, dt.timedelta(hours=2))
    assert storage._get_stale_trial_ids(study._study_id) == [dead._trial_id]

    run_study(open_study(params), _objective(), params)
    states = [t.state for t in open_study(params).get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.COMPLETE]


def test_a_worker_at_the_budget_waits_for_running_trials_and_the_heartbeat_fails_the_dead(
    tmp_path: Path,
) -> None:
    # Two trials of other workers are RUNNING when this worker finds the budget used up: one
    # worker is alive (its trial completes while we wait; the injected sleep plays its part),
    # the other is dead (its heartbeat two hours old). No wall clock is involved.
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    params = _params(
        tmp_path, storage=url, heartbeat_interval_s=60, grace_period_s=3600, max_total_trials=3
    )
    storage = build_storage(params)
    study = open_study(params, storage)
    study.tell(study.ask(), 0.5)
    alive, dead = study.ask(), study.ask()
    storage.record_heartbeat(alive._trial_id)
    storage.record_heartbeat(dead._trial_id)
    _backdate_heartbeat(storage, dead._trial_id, dt.timedelta(hours=2))
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        study.tell(alive, 0.7)  # the live worker finishes its trial meanwhile

    settled = settle_running_trials(open_study(params, storage), 60, sleep=sleep)
    assert settled == {"waited_for": [1, 2], "heartbeat_failed": [2]}
    assert polls == [60]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    # what run_study reports: nothing run, stopped by the budget, the waiting done
    worker = run_study(open_study(params, storage), _objective(), params)
    assert worker["trials_run"] == [] and worker["stopped_by"] == "max_total_trials"
    assert worker["waited_for"] == [] and worker["heartbeat_failed"] == []


def test_trial_seeds_are_reproducible_and_distinct_per_trial(tmp_path: Path) -> None:
    def proposals(folder: str) -> list[dict]:
        params = _params(tmp_path / folder, n_trials=3)
        study = open_study(params)
        run_study(study, _objective(), params)
        return [t.params for t in study.get_trials()]

    first, second = proposals("a"), proposals("b")
    assert first == second
    assert len({tuple(sorted(p.items())) for p in first}) == 3


def test_overrides_normalise_views_and_params_string_skips_lists() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = sample(trial, TuningParams().search_space)
    overrides = model_overrides(values)
    robust = overrides["robust"]
    assert sum(robust["view_probs"]) == pytest.approx(1.0, abs=1e-9)
    assert robust["severity_min"] <= robust["severity_max"]
    text, lists = params_string({"pretrain": {"model": overrides}})
    assert "pretrain.model.objectives.domain_consistency_weight=" in text
    assert "[" not in text and list(lists) == ["pretrain.model.robust.view_probs"]

    from robust_mmr_pipeline.model import apply_preset

    config = apply_preset("robust_mmr", overrides, size="small")
    assert (
        config.objectives.domain_consistency_weight
        == overrides["objectives"]["domain_consistency_weight"]
    )


def test_plots_explain_when_too_few_trials(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    study.optimize(_objective(), n_trials=1)
    figures, notes = study_figures(study, ["val_accuracy"])
    assert set(figures) == {"optimization_history", "param_importances", "parallel_coordinate"}
    assert list(notes) == ["param_importances"] and "at least 2" in notes["param_importances"]


def test_validation_domain_is_a_training_domain_and_test_is_never_read() -> None:
    vqa = pd.DataFrame(
        {
            "protocol": ["in_domain"] * 6 + ["cross_domain"],
            "split": ["train", "val", "train", "train", "test", "train", "test"],
            "qid": [f"q{i}" for i in range(7)],
            "image_id": [f"i{i}" for i in range(7)],
            "domain": ["a", "a", "b", "b", "b", "c", "d"],
            "question": ["q"] * 7,
            "answer": ["yes"] * 7,
            "answer_type": ["closed"] * 7,
        }
    )
    pairs = pd.DataFrame(
        {
            "protocol": ["in_domain"] * 3,
            "split": ["train"] * 3,
            "pair_id": ["p0", "p1", "p2"],
            "image_id": ["i0", "i2", "i5"],
            "domain": ["a", "b", "c"],
            "text": ["t"] * 3,
            "text_kind": ["report"] * 3,
        }
    )
    split = validation_split(pairs, vqa, "in_domain", None, ["report"])
    assert split.validation_domain == "a"  # most train/val VQA rows; test rows not counted
    assert set(split.val_vqa["qid"]) == {"q0", "q1"}
    assert set(split.train_vqa["qid"]) == {"q2", "q3", "q5"}
    assert set(split.pretrain_pairs["domain"]) == {"b", "c"}
    with pytest.raises(ValueError, match="not a training domain"):
        validation_split(pairs, vqa, "in_domain", "d", ["report"])


def test_parameters_are_typed_and_typos_are_named() -> None:
    import yaml

    from robust_mmr_pipeline.params import PARAM_SCHEMAS, ParameterError, parse

    assert PARAM_SCHEMAS["tuning"].endswith(":TuningParams")
    base = yaml.safe_load((REPO / "conf/base/parameters_tuning.yml").read_text())["tuning"]
    params = parse(TuningParams, base, "tuning")
    assert params.storage == "sqlite:///data/06_models/optuna.db"
    assert params.search_space.domain_consistency_weight.log
    with pytest.raises(ParameterError, match=r"search_space\.lambda_dc"):
        parse(TuningParams, {**base, "search_space": {"lambda_dc": {"low": 0, "high": 1}}}, "t")
    with pytest.raises(ParameterError, match="low"):
        parse(TuningParams, {"search_space": {"view_weight": {"low": 2, "high": 1}}}, "tuning")


def test_fine_tuning_history_is_reported_and_a_pruned_trial_names_its_step() -> None:
    """The objective reports each fine-tuning validation pass to Optuna (the recipe
    calls it per validation pass via on_eval): every step while the pruner lets it, at the first
    step it prunes, the value of that step."""
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5)
    )
    results: dict[str, float] = {}
    kept = study.ask()
    report_history(kept, [(2, 0.6), (4, 0.7)], True, None, results)
    assert results == {}
    study.tell(kept, 0.7)
    pruned = study.ask()
    with pytest.raises(optuna.TrialPruned, match="step 4"):
        report_history(pruned, [(2, 0.6), (4, 0.3), (6, 0.9)], True, None, results)
    assert results == {"val_accuracy": 0.3}
    study.tell(pruned, state=TrialState.PRUNED)
    unreported = study.ask()
    report_history(unreported, [(2, 0.1)], False, None, results)  # multi-objective studies
    study.tell(unreported, 0.1)
    assert [t.intermediate_values for t in study.trials] == [{2: 0.6, 4: 0.7}, {2: 0.6, 4: 0.3}, {}]
