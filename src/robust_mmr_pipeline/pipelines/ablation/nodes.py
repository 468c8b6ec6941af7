"""Ablation nodes: per-run configuration, MLflow child runs, and the comparison table.

The training and scoring nodes of every run are the pretrain / finetune / evaluation
pipelines' own node functions (see ``pipeline.py``); this module only composes each run's
parameters, puts each run in its own MLflow run, and compares the runs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.ablation.grid import parse_run_key
from robust_mmr_pipeline.pipelines.ablation.params import AblationParams
from robust_mmr_pipeline.reporting import ablation as report
from robust_mmr_pipeline.reporting import flat_metrics

FIGURE_FILE = "ablation.png"


def run_configurator(setting: str, seed: int) -> Callable[..., tuple[dict, dict, dict]]:
    """The ``configure_run`` node function of the run ``setting`` / ``seed``."""

    def configure_run(
        pretrain: dict[str, Any],
        finetune: dict[str, Any],
        evaluation: dict[str, Any],
        ablation: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The pretrain / finetune / evaluation parameters of one run (saved with the run)."""
        params = parse(AblationParams, ablation, "ablation")
        sections = params.run_parameters(
            setting, seed, {"pretrain": pretrain, "finetune": finetune, "evaluation": evaluation}
        )
        return sections["pretrain"], sections["finetune"], sections["evaluation"]

    return configure_run


@contextlib.contextmanager
def mlflow_child_run(name: str, tags: dict[str, str]) -> Iterator[None]:
    """Run the block inside the MLflow run ``name`` nested under the active run (created the
    first time, resumed by the run's later nodes); no-op without an active run."""
    import mlflow

    parent = mlflow.active_run()
    if parent is None:
        yield
        return
    found = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.mlflow.runName = '{name}'"
        ),
        output_format="list",
    )
    if found:
        run = mlflow.start_run(run_id=found[0].info.run_id, nested=True)
    else:
        run = mlflow.start_run(run_name=name, nested=True, tags=tags)
    with run:  # ending the child makes the parent the active run again
        yield


def in_run(func: Callable[..., Any], setting: str, seed: int) -> Callable[..., Any]:
    """``func`` run inside the MLflow child run of the ablation run ``setting`` / ``seed``."""

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        name = f"ablation/{setting}/seed_{seed}"
        with mlflow_child_run(name, {"ablation.setting": setting, "ablation.seed": str(seed)}):
            return func(*args)

    return wrapper


def compare_runs(ablation: dict[str, Any], **runs: pd.DataFrame) -> tuple[Any, ...]:
    """One comparison over every run's evaluation results (keyword ``<setting>__seed_<k>``).

    Returns the per-run headline table, the per-setting summary (mean ± 95 % t interval over
    seeds), the ``focus - reference`` gaps paired by seed, their nested metrics, the figure
    and the Markdown / HTML report.
    """
    params = parse(AblationParams, ablation, "ablation")
    keyed = {parse_run_key(key): results for key, results in runs.items()}
    settings = list(dict.fromkeys(setting for setting, _ in keyed))
    seeds = sorted({seed for _, seed in keyed})
    reference = params.reference if params.reference in settings else None
    headlines = report.headline_table(keyed, reference)
    summary = report.summarise_settings(headlines, settings)
    gaps = (
        report.paired_gaps(headlines, params.focus, params.reference)
        if {params.focus, params.reference} <= set(settings)
        else pd.DataFrame(columns=list(report.GAP_COLUMNS))
    )
    metrics = report.ablation_summary(summary, gaps)
    figure = report.ablation_figure(summary, settings)
    context = {
        "settings": ", ".join(settings),
        "seeds": ", ".join(str(s) for s in seeds),
        "runs": str(len(keyed)),
        "mCE reference": reference or "none (reference setting not in the grid)",
        "gap": f"{params.focus} − {params.reference}, paired by seed",
        "overrides of the main parameters": _overrides(params),
    }
    markdown = report.render_ablation_markdown(summary, gaps, context, FIGURE_FILE)
    page = report.render_ablation_html(summary, gaps, context, figure)
    _log_to_mlflow(metrics, figure, markdown, page)
    return headlines, summary, gaps, metrics, figure, markdown, page


def _overrides(params: AblationParams) -> str:
    parts = [
        f"{section}: {getattr(params, section)}"
        for section in ("pretrain", "finetune", "evaluation")
        if getattr(params, section)
    ]
    return "; ".join(parts) or "none"


def _log_to_mlflow(metrics: dict[str, Any], figure: Any, markdown: str, page: str) -> None:
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.log_metrics({f"ablation/{k}": v for k, v in flat_metrics(metrics).items()})
    mlflow.log_text(markdown, "ablation/ablation_report.md")
    mlflow.log_text(page, "ablation/ablation_report.html")
    mlflow.log_figure(figure, f"ablation/{FIGURE_FILE}")
