"""Evaluation nodes: thin wrappers over ``recipes.finetune`` (scoring) and ``reporting``."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline import reporting
from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.evaluation.params import EvaluationParams
from robust_mmr_pipeline.reporting import references as published_references

logger = logging.getLogger(__name__)

FIGURE_FILES = {
    "Main metric against corruption severity": "robustness_severity.png",
    "Main metric per domain (in-domain test domains and the held-out domain)": (
        "robustness_domains.png"
    ),
    "Retrieval mean rank, clean vs perturbed": "robustness_retrieval_ranks.png",
}


def _record(task: str, condition: str, protocol: str, **fields: Any) -> dict[str, Any]:
    row = {
        "task": task,
        "condition": condition,
        "protocol": protocol,
        "domain": "",
        "modality": "",
        "perturbation": "",
        "severity": 0,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    row.update(fields)
    return row


def _metric_rows(
    task: str, condition: str, protocol: str, metrics: dict[str, float], **fields: Any
) -> list[dict[str, Any]]:
    """One row per metric that has a CI (plus the item count ``n``)."""
    rows = []
    for name, value in metrics.items():
        if f"{name}_ci_low" in metrics:
            rows.append(
                _record(
                    task,
                    condition,
                    protocol,
                    metric=name,
                    value=float(value),
                    ci_low=float(metrics[f"{name}_ci_low"]),
                    ci_high=float(metrics[f"{name}_ci_high"]),
                    **fields,
                )
            )
    count = metrics.get("n", metrics.get("t2i_n"))
    if count is not None:
        rows.append(_record(task, condition, protocol, metric="n", value=float(count), **fields))
    return rows


def _ci(statistic: Any, *arrays: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    from robust_mmr_pipeline.tasks import bootstrap_ci

    if n_boot <= 0:
        value = float(np.asarray(statistic(*(a[None] for a in arrays))).reshape(-1)[0])
        return value, math.nan, math.nan
    ci = bootstrap_ci(statistic, *arrays, n_boot=n_boot, seed=seed)
    return ci.estimate, ci.low, ci.high


def _mean_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``[R, n]`` paired resamples -> ``[R]`` ``mean(first) - mean(second)``."""
    return first.mean(axis=1) - second.mean(axis=1)


def _domain_rows(
    task: str, protocol: str, items: Any, metric: str, n_boot: int, seed: int
) -> list[dict[str, Any]]:
    from robust_mmr_pipeline.tasks.metrics import mean_statistic

    if items.correct is None or items.domains is None:
        return []
    rows = []
    for domain in sorted(set(items.domains.tolist())):
        correct = items.correct[items.domains == domain]
        value, low, high = _ci(mean_statistic, correct, n_boot=n_boot, seed=seed)
        rows.append(
            _record(
                task,
                "domain",
                protocol,
                domain=str(domain),
                metric=metric,
                value=value,
                ci_low=low,
                ci_high=high,
            )
        )
    return rows


def _paired_rows(
    task: str, clean: Any, perturbed: Any, metric: str, n_boot: int, seed: int, **fields: Any
) -> list[dict[str, Any]]:
    """Drop of the main metric (clean - perturbed) and, for retrieval, mean-rank degradation
    (perturbed - clean), each with a paired bootstrap CI over the same items."""
    rows = []
    if clean.correct is not None:
        value, low, high = _ci(
            _mean_difference, clean.correct, perturbed.correct, n_boot=n_boot, seed=seed
        )
        rows.append(
            _record(task, "perturbed", "", metric=f"drop_{metric}", value=value, ci_low=low,
                    ci_high=high, **fields)
        )  # fmt: skip
    for direction in ("i2t", "t2i"):
        before = getattr(clean, f"{direction}_ranks")
        after = getattr(perturbed, f"{direction}_ranks")
        if before is None or after is None or not len(before):
            continue
        value, low, high = _ci(_mean_difference, after, before, n_boot=n_boot, seed=seed)
        rows.append(
            _record(task, "perturbed", "", metric=f"{direction}_mean_rank_degradation",
                    value=value, ci_low=low, ci_high=high, **fields)
        )  # fmt: skip
        if direction == "t2i" and metric == "t2i_r@1":
            value, low, high = _ci(
                lambda a, b: (a <= 1).mean(axis=1) - (b <= 1).mean(axis=1),
                before,
                after,
                n_boot=n_boot,
                seed=seed,
            )
            rows.append(
                _record(task, "perturbed", "", metric=f"drop_{metric}", value=value, ci_low=low,
                        ci_high=high, **fields)
            )  # fmt: skip
    return rows


def _selected_sets(perturbation_sets: pd.DataFrame, params: EvaluationParams) -> pd.DataFrame:
    sets = perturbation_sets[
        (perturbation_sets["protocol"] == params.in_domain_protocol)
        & (perturbation_sets["base_split"] == "test")
        & perturbation_sets["severity"].isin([int(s) for s in params.severities])
    ]
    keep = [params.wants(m, p) for m, p in zip(sets["modality"], sets["perturbation"], strict=True)]
    sets = sets[keep].sort_values(["modality", "perturbation", "severity"])
    for modality in ("image", "text"):
        chosen = getattr(params, f"{modality}_perturbations")
        if chosen != "all":
            missing = sorted(set(chosen) - set(sets[sets["modality"] == modality]["perturbation"]))
            if missing:
                raise ValueError(
                    f"evaluation.{modality}_perturbations names {missing}, which the "
                    "perturbation_sets manifest lacks for the in-domain test split (see "
                    "domain_split.image_perturbations / text_perturbations / severities)."
                )
    return sets.reset_index(drop=True)


def evaluate_models(
    finetune_manifest: dict[str, Any],
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
    perturbation_sets: pd.DataFrame,
    image_cache: dict[str, Any],
    parameters: dict[str, Any],
) -> pd.DataFrame:
    """Score every fine-tuned task on the clean in-domain and cross-domain test splits, per
    domain, and on every selected perturbation x severity of the in-domain test split."""
    from robust_mmr_pipeline.recipes import finetune as recipe

    params = parse(EvaluationParams, parameters, "evaluation")
    text_kinds = finetune_manifest.get("text_kinds") or ["report", "caption"]
    tables = {
        "vqa": split_vqa,
        "classification": split_classification,
        "retrieval": split_pairs[split_pairs["text_kind"].isin(text_kinds)],
    }
    trained = finetune_manifest["tasks"]
    tasks = [t for t in (params.tasks or list(trained)) if t in trained]
    missing = sorted(set(params.tasks or []) - set(trained))
    if missing:
        raise ValueError(f"evaluation.tasks {missing} were not fine-tuned (finetune.tasks)")
    sets = _selected_sets(perturbation_sets, params)
    rows: list[dict[str, Any]] = []
    for task in tasks:
        entry = trained[task]
        metric = recipe.MAIN_METRIC[task]
        evaluator = recipe.TaskEvaluator(
            task,
            entry["checkpoint"],
            image_cache["cache_dir"],
            batch_size=params.batch_size,
            n_boot=params.n_boot,
            seed=params.seed,
            retrieval_k=params.retrieval_k or int(entry.get("retrieval_k", 16)),
        )
        protocols = set(tables[task]["protocol"].unique())
        clean_items = None
        for condition, protocol in (
            ("in_domain", params.in_domain_protocol),
            ("cross_domain", params.cross_domain_protocol),
        ):
            if not protocol:
                continue  # none asked (the as_released branch has no cross-domain test)
            if protocol not in protocols:
                logger.warning("No %s protocol %r in the split manifests.", condition, protocol)
                continue
            test = recipe.task_rows(tables[task], protocol, "test")
            if test.empty:
                logger.warning("%s: protocol %r has no test rows.", task, protocol)
                continue
            metrics, items = evaluator.evaluate(test)
            rows += _metric_rows(task, condition, protocol, metrics)
            rows += _domain_rows(task, protocol, items, metric, params.n_boot, params.seed)
            if condition == "in_domain":
                clean_items, clean_rows = items, test
        if clean_items is None:
            raise ValueError(f"{task}: no in-domain test rows to evaluate")
        for _, spec in sets.iterrows():
            perturbation = {
                "modality": spec["modality"],
                "perturbation": spec["perturbation"],
                "severity": int(spec["severity"]),
                "seed": int(spec["seed"]),
            }
            fields = {
                "modality": str(spec["modality"]),
                "perturbation": str(spec["perturbation"]),
                "severity": int(spec["severity"]),
            }
            metrics, items = evaluator.evaluate(clean_rows, perturbation)
            rows += _metric_rows(task, "perturbed", params.in_domain_protocol, metrics, **fields)
            paired = _paired_rows(
                task, clean_items, items, metric, params.n_boot, params.seed, **fields
            )
            for row in paired:
                row["protocol"] = params.in_domain_protocol
            rows += paired
        logger.info("Evaluated %s on %d perturbed sets.", task, len(sets))
    frame = pd.DataFrame(rows, columns=list(reporting.RESULT_COLUMNS))
    frame["severity"] = frame["severity"].astype(int)
    return frame


def _mce(severity: pd.DataFrame, baseline_path: str | None) -> dict[str, dict[str, Any]]:
    """mCE of every task against a baseline's evaluation_severity.csv (same corruptions and
    severities; error = 1 - main metric)."""
    if not baseline_path:
        return {}
    path = Path(baseline_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"evaluation.baseline_metrics {path} does not exist: point it at a baseline run's "
            "data/08_reporting/evaluation_severity.csv (or set it to null)."
        )
    return reporting.mce_against(severity, pd.read_csv(path))


def report_robustness(
    evaluation_results: pd.DataFrame,
    finetune_manifest: dict[str, Any],
    parameters: dict[str, Any],
    references: dict[str, Any] | None = None,
    ingestion: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any, Any, Any, str, str]:
    """Summary metrics, severity table, plots and the Markdown / HTML robustness report (with
    the published references of the ingested datasets, labelled as a different scale); all
    logged to the active MLflow run when there is one."""
    params = parse(EvaluationParams, parameters, "evaluation")
    severity = reporting.severity_table(evaluation_results)
    mce = _mce(severity, params.baseline_metrics)
    summary = reporting.metrics_summary(evaluation_results, mce)
    figures = {
        "Main metric against corruption severity": reporting.severity_figure(severity),
        "Main metric per domain (in-domain test domains and the held-out domain)": (
            reporting.domain_figure(evaluation_results)
        ),
        "Retrieval mean rank, clean vs perturbed": reporting.retrieval_figure(evaluation_results),
    }
    context = {
        "backbone": "from scratch (no pre-training)"
        if finetune_manifest.get("from_scratch")
        else f"pre-trained {finetune_manifest.get('preset')} "
        f"({finetune_manifest.get('backbone_checkpoint')})",
        "trained on": f"{finetune_manifest.get('protocol')} train, selected on its val split",
        "selected steps": ", ".join(
            f"{task}: {entry['best_step']}" for task, entry in finetune_manifest["tasks"].items()
        ),
        "bootstrap": f"{params.n_boot} resamples, 95 % percentile intervals, seed {params.seed}",
        "severities": ", ".join(str(s) for s in params.severities),
        "baseline for mCE": params.baseline_metrics or "none",
    }
    markdown = reporting.render_markdown(
        evaluation_results, summary, context, {c: FIGURE_FILES[c] for c in figures}
    )
    page = reporting.render_html(
        evaluation_results,
        summary,
        context,
        {c: (FIGURE_FILES[c], reporting.figure_to_base64(f)) for c, f in figures.items()},
    )
    reference_rows = published_references.reference_rows(references, ingestion)
    if not reference_rows.empty:
        summary["published_references"] = reference_rows.to_dict("records")
        markdown, page = published_references.with_references(markdown, page, reference_rows)
    if params.log_to_mlflow:
        _log_to_mlflow(summary, figures, markdown, page)
    plots = list(figures.values())
    return summary, severity, plots[0], plots[1], plots[2], markdown, page


def _log_to_mlflow(summary: dict[str, Any], figures: dict[str, Any], markdown: str, page: str):
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.log_metrics({f"evaluation/{k}": v for k, v in reporting.flat_metrics(summary).items()})
    mlflow.log_text(markdown, "evaluation/robustness_report.md")
    mlflow.log_text(page, "evaluation/robustness_report.html")
    for caption, figure in figures.items():
        mlflow.log_figure(figure, f"evaluation/{FIGURE_FILES[caption]}")
