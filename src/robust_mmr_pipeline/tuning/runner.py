"""One tuning worker end to end: join the study, run its trials, summarise the study."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from robust_mmr_pipeline.tuning.config import TuningParams
from robust_mmr_pipeline.tuning.objective import ObjectiveInputs, make_objective, validation_split
from robust_mmr_pipeline.tuning.report import (
    best_trial,
    overlay_for,
    params_string,
    study_figures,
    trials_table,
    write_overlay,
)
from robust_mmr_pipeline.tuning.study import count_trials, open_study, run_study

logger = logging.getLogger(__name__)


def summarise(study: Any, params: TuningParams, worker: Mapping[str, Any]) -> dict[str, Any]:
    """The study's state, the best trial, its overlay and ``--params`` string (JSON-safe).

    Writes the overlay file to ``params.overlay_path`` when a trial has completed.
    """
    from optuna.trial import TrialState

    states = {
        state.name: count_trials(study, (state,))
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }
    summary: dict[str, Any] = {
        "study_name": params.study_name,
        "storage": params.storage,
        "directions": params.directions,
        "objectives": params.objective_names,
        "n_trials_total": len(study.get_trials(deepcopy=False)),
        "trials_by_state": states,
        "worker": dict(worker),
    }
    best = best_trial(study)
    if best is None:
        summary["best"] = None
        summary["note"] = "no COMPLETE trial yet: no overlay written; run more trials."
        return summary
    overlay = overlay_for(best)
    scalars, lists = params_string(overlay)
    header = (
        f"Tuned by Optuna study {params.study_name!r} ({params.storage}), trial "
        f"{best.number}: {dict(zip(params.objective_names, best.values, strict=True))}.\n"
        "Apply: kedro run --pipelines pretrain --env tuned (merged over conf/base)."
    )
    path = write_overlay(overlay, params.overlay_path, header)
    summary["best"] = {
        "number": best.number,
        "values": dict(zip(params.objective_names, best.values, strict=True)),
        "params": dict(best.params),
        "seed": best.user_attrs.get("seed"),
        "overlay": overlay,
    }
    summary["overlay_path"] = str(path)
    summary["params_string"] = scalars
    summary["params_lists"] = lists
    list_note = (
        f" Kedro splits --params on commas, so {sorted(lists)} come with the overlay"
        f" (--env {path.parent.name})."
        if lists
        else ""
    )
    summary["command"] = f'kedro run --pipelines pretrain --params "{scalars}"'
    summary["command_note"] = f"Or apply everything: --env {path.parent.name}.{list_note}"
    return summary


def params_text(summary: Mapping[str, Any]) -> str:
    """The ``--params`` text file: the string on its first line, then how to apply it."""
    if not summary.get("best"):
        return f"# {summary.get('note', 'no completed trial')}\n"
    lines = [
        summary["params_string"],
        f"# {summary['command']}",
        f"# {summary['command_note']}",
    ]
    lines += [f"# {key}: {value}" for key, value in summary["params_lists"].items()]
    return "\n".join(lines) + "\n"


def tune(
    split_pairs: pd.DataFrame,
    split_vqa: pd.DataFrame,
    cache_dir: str,
    tokenizer: Any,
    pretrain: Any,
    params: TuningParams,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any]]:
    """Run this worker's trials; returns (summary, trials table, {plot name: figure}).

    ``pretrain`` is the typed PretrainParams: preset, size, model overrides and trainer of the
    tuned model (the trial's sampled values are merged over ``pretrain.model``).
    """
    split = validation_split(
        split_pairs, split_vqa, params.protocol, params.validation_domain, pretrain.text_kinds
    )
    logger.info("Tuning split: %s", split.describe())
    inputs = ObjectiveInputs(
        split=split,
        cache_dir=cache_dir,
        tokenizer=tokenizer,
        preset=pretrain.preset,
        size=pretrain.size,
        base_model=pretrain.model,
        base_trainer=pretrain.trainer,
    )
    study = open_study(params)
    worker = run_study(study, make_objective(inputs, params), params)
    worker["split"] = split.describe()
    summary = summarise(study, params, worker)
    figures, notes = study_figures(study, params.objective_names)
    summary["plot_notes"] = notes
    return summary, trials_table(study), figures
