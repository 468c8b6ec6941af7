"""What a study leaves for users: the best parameters as a conf overlay and ``--params``,
the trials table and the optimisation plots."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from robust_mmr_pipeline.tuning.space import model_overrides

logger = logging.getLogger(__name__)

MIN_TRIALS_FOR_IMPORTANCE = 2


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial (multi-objective: the Pareto trial best on the first value)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    return max(study.best_trials, key=lambda t: (t.values[0], -t.number))


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for key, item in value.items():
            out += _flatten(f"{prefix}.{key}", item)
        return out
    return [(prefix, value)]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def params_string(overlay: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``kedro run --params`` string of the overlay's scalar keys, and the list-valued rest.

    Kedro splits ``--params`` on every comma, so a list (``robust.view_probs``) cannot travel
    through it; those keys come back separately (apply them with the overlay: ``--env tuned``).
    """
    scalars, lists = [], {}
    for key, value in _flatten("pretrain", overlay["pretrain"]):
        if isinstance(value, list | tuple):
            lists[key] = list(value)
        else:
            scalars.append(f"{key}={_format(value)}")
    return ",".join(scalars), lists


def overlay_for(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """``{"pretrain": {"model": overrides}}`` of a trial (a parameters_pretrain.yml overlay)."""
    return {"pretrain": {"model": model_overrides(trial.params)}}


def write_overlay(overlay: Mapping[str, Any], path: str | Path, header: str) -> Path:
    """Write the overlay YAML (a conf env file: ``conf/<env>/parameters_pretrain.yml``)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(json.loads(json.dumps(overlay)), sort_keys=False)
    path.write_text("".join(f"# {line}\n" for line in header.splitlines()) + text)
    return path


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, values, params, seed / failure notes."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
        for index, value in enumerate(trial.values or []):
            row[f"value_{index}"] = value
        row.update({f"params_{k}": v for k, v in trial.params.items()})
        for key in ("seed", "failure"):
            if key in trial.user_attrs:
                row[key] = trial.user_attrs[key]
        row["datetime_start"] = str(trial.datetime_start or "")
        row["datetime_complete"] = str(trial.datetime_complete or "")
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["number", "state"])


def _note_figure(title: str, note: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True, fontsize=11)
    return fig


def study_figures(
    study: optuna.Study, objective_names: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Optimisation history, parameter importances and parallel coordinates (matplotlib).

    A plot that cannot be drawn yet (no COMPLETE trial; importances need
    ``MIN_TRIALS_FOR_IMPORTANCE`` COMPLETE trials) becomes a figure stating why, and the same
    note is returned under its name.
    """
    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    target = None if len(study.directions) == 1 else (lambda t: t.values[0])
    target_name = objective_names[0]
    figures: dict[str, Any] = {}
    notes: dict[str, str] = {}
    plots = {
        "optimization_history": (ovm.plot_optimization_history, 1),
        "param_importances": (ovm.plot_param_importances, MIN_TRIALS_FOR_IMPORTANCE),
        "parallel_coordinate": (ovm.plot_parallel_coordinate, 1),
    }
    for name, (plot, needed) in plots.items():
        title = name.replace("_", " ")
        if complete < needed:
            notes[name] = (
                f"{title}: needs at least {needed} completed trial(s), the study has {complete}; "
                "run more trials (kedro run --pipelines tuning) and the plot appears."
            )
            figures[name] = _note_figure(title, notes[name])
            continue
        try:
            axes = plot(study, target=target, target_name=target_name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            notes[name] = f"{title}: could not be drawn ({type(exc).__name__}: {exc})"
            logger.warning(notes[name])
            figures[name] = _note_figure(title, notes[name])
            continue
        axes = axes.flat[0] if hasattr(axes, "flat") else axes
        figure = axes.get_figure()
        figure.set_size_inches(9, 5)
        figure.tight_layout()
        figures[name] = figure
    return figures, notes
