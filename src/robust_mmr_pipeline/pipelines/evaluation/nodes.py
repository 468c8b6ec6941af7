"""Evaluation nodes: thin wrappers over ``recipes.evaluate`` (scoring) and ``reporting``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from robust_mmr_pipeline import reporting
from robust_mmr_pipeline.params import parse
from robust_mmr_pipeline.pipelines.evaluation.params import EvaluationParams
from robust_mmr_pipeline.reporting import references as published_references
from robust_mmr_pipeline.reporting.timings import timing_section, timing_summary

FIGURE_FILES = {
    "Label efficiency: main metric against the label budget (pre-trained vs from scratch vs "
    "frozen probes)": "label_efficiency.png",
    "Main metric against corruption severity (ours; dashed: the strongest reference, clean)": (
        "robustness_severity.png"
    ),
    "Main metric per domain (in-domain test domains and the held-out domain)": (
        "robustness_domains.png"
    ),
    "Retrieval mean rank, clean vs perturbed": "robustness_retrieval_ranks.png",
    "Validation metric during fine-tuning (model selection)": "finetune_validation.png",
}


def evaluate_models(
    finetune_manifest: dict[str, Any],
    finetune_reference_manifest: dict[str, Any],
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    split_pairs: pd.DataFrame,
    perturbation_sets: pd.DataFrame,
    image_cache: dict[str, Any],
    parameters: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Score the fine-tuned model, its from-scratch reference and the trivial baselines on the
    clean in-domain and cross-domain test splits, per domain, and on every selected
    perturbation x severity of the in-domain test split; also the seconds of every stage."""
    from robust_mmr_pipeline.recipes import evaluation_run as recipe
    from robust_mmr_pipeline.recipes.evaluation_clock import StageClock

    params = parse(EvaluationParams, parameters, "evaluation")
    text_kinds = finetune_manifest.get("text_kinds") or ["report", "caption"]
    tables = {
        "vqa": split_vqa,
        "classification": split_classification,
        "retrieval": split_pairs[split_pairs["text_kind"].isin(text_kinds)],
    }
    trained = finetune_manifest["tasks"]
    missing = sorted(set(params.tasks or []) - set(trained))
    if missing:
        raise ValueError(f"evaluation.tasks {missing} were not fine-tuned (finetune.tasks)")
    references = finetune_reference_manifest.get("tasks", {})
    checkpoints = {}
    for task in [t for t in (params.tasks or list(trained)) if t in trained]:
        checkpoints[task] = {recipe.OURS: trained[task]["checkpoint"]}
        if task in references:
            checkpoints[task][recipe.FROM_SCRATCH] = references[task]["checkpoint"]
    plan = recipe.EvaluationPlan(
        tables=tables,
        checkpoints=checkpoints,
        train_protocol=finetune_manifest.get("protocol", params.in_domain_protocol),
        retrieval_k={t: int(e.get("retrieval_k", 16)) for t, e in trained.items()},
        backbone_checkpoint=finetune_manifest.get("backbone_checkpoint"),
    )
    sets = _untrained_sets(perturbation_sets, params, finetune_manifest)
    clock = StageClock()
    results = recipe.evaluate_all(plan, sets, image_cache["cache_dir"], params, clock)
    return results, {"stages": clock.table()}


def evaluate_label_efficiency(
    finetune_manifest: dict[str, Any],
    finetune_reference_manifest: dict[str, Any],
    finetune_plain_manifest: dict[str, Any],
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
    image_cache: dict[str, Any],
    parameters: dict[str, Any],
    finetune: dict[str, Any],
) -> pd.DataFrame:
    """Every model at every label budget (pre-trained LP-FT, plain FT, from scratch, frozen
    probes of the pre-trained and of a random backbone) on the clean in- / cross-domain test
    rows, with paired differences."""
    from robust_mmr_pipeline.pipelines.finetune.params import FinetuneParams
    from robust_mmr_pipeline.recipes import label_efficiency as recipe

    params = parse(EvaluationParams, parameters, "evaluation")
    budget_seed = parse(FinetuneParams, finetune, "finetune").budget_seed
    manifests = {
        name: manifest
        for name, manifest in (
            (reporting.OURS, finetune_manifest),
            ("from_scratch", finetune_reference_manifest),
            (recipe.PLAIN_FT, finetune_plain_manifest),
        )
        if manifest.get("label_budgets")
    }
    if reporting.OURS not in manifests or finetune_manifest.get("from_scratch"):
        return pd.DataFrame(columns=list(recipe.LABEL_EFFICIENCY_COLUMNS))
    return recipe.evaluate_label_budgets(
        manifests,
        {"vqa": split_vqa, "classification": split_classification},
        image_cache["cache_dir"],
        params,
        finetune_manifest.get("backbone_checkpoint"),
        budget_seed,
    )


def _mce(severity: pd.DataFrame, baseline_path: str | None) -> dict[str, dict[str, Any]]:
    """mCE of every task against a baseline run's evaluation_severity.csv (same corruptions and
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


def _histories(manifest: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    for name, source in ((reporting.OURS, manifest), ("from_scratch", reference)):
        for task, entry in source.get("tasks", {}).items():
            out.setdefault(task, {})[name] = entry.get("history", [])
    return out


def _training_families(manifest: dict[str, Any]) -> dict[str, list[str]] | None:
    """The degraded-view perturbation families the backbone was pre-trained with (None when
    it was not pre-trained or its preset uses no degraded view)."""
    from robust_mmr_pipeline.perturb.families import training_families
    from robust_mmr_pipeline.recipes.finetune import backbone_config

    checkpoint = manifest.get("backbone_checkpoint")
    if manifest.get("from_scratch") or not checkpoint or not Path(checkpoint).exists():
        return None
    config = backbone_config(checkpoint)
    return training_families(config) if config.needs_perturbed_views else None


def _untrained_sets(
    perturbation_sets: pd.DataFrame, params: EvaluationParams, manifest: dict[str, Any]
) -> pd.DataFrame:
    """The perturbed sets minus the backbone's training families: ``all`` leaves them out, an
    explicit list naming one is refused (a gain there would be a copy of the test)."""
    from robust_mmr_pipeline.perturb.families import check_disjoint

    training = _training_families(manifest)
    if not training:
        return perturbation_sets
    explicit = {
        modality: list(chosen)
        for modality in ("image", "text")
        if (chosen := getattr(params, f"{modality}_perturbations")) != "all"
    }
    check_disjoint(training, explicit, f"evaluation of {manifest.get('backbone_checkpoint')}")
    trained = {(m, p) for m, names in training.items() for p in names}
    keep = [
        (m, p) not in trained
        for m, p in zip(perturbation_sets["modality"], perturbation_sets["perturbation"],
                        strict=True)
    ]  # fmt: skip
    return perturbation_sets[keep]


def _held_out_shift(ingestion: dict[str, Any] | None) -> dict[str, list[str]] | None:
    """The held-out SynthRad sites' shift, per modality (None without a labeled SynthRad)."""
    from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
    from robust_mmr_pipeline.sources.synthrad import SynthRadConfig
    from robust_mmr_pipeline.sources.synthrad.config import site_shift

    if not ingestion:
        return None
    shift: dict[str, list[str]] = {}
    for spec in parse(IngestionParams, ingestion, "ingestion").sources:
        if spec.kind != "synthrad" or spec.role != "labeled" or not spec.enabled:
            continue
        config = parse(SynthRadConfig, spec.options, "ingestion.sources[synthrad].options")
        for site in config.sites:
            if site.name in (config.held_out_sites or ()):
                for modality, items in site_shift(site).items():
                    shift.setdefault(modality, []).extend(f"{item} [{site.name}]" for item in items)
    return shift or None


def _retrieval_first_stage(manifest: dict[str, Any]) -> str:
    """What retrieval's contrastive first stage ranks with, said plainly."""
    from robust_mmr_pipeline.recipes.finetune import backbone_config

    checkpoint = manifest.get("backbone_checkpoint")
    if manifest.get("from_scratch") or not checkpoint or not Path(checkpoint).exists():
        return "projections trained by retrieval fine-tuning only (no pre-training)"
    objectives = backbone_config(checkpoint).objectives
    if objectives.gla_global or objectives.gla_local:
        return "GLA projections aligned by pre-training (image-report InfoNCE), then fine-tuned"
    return (
        "the fusion input projections, which this preset's pre-training (MIM, MLM, ITM) never "
        "trains to align image with text: only retrieval fine-tuning aligns them, and only the "
        "ITM re-ranking of the top k uses what pre-training learned. The GLA global objective "
        "(objectives.gla_global, MPMA presets) trains the alignment in pre-training."
    )


def report_robustness(
    evaluation_results: pd.DataFrame,
    label_efficiency: pd.DataFrame,
    finetune_manifest: dict[str, Any],
    finetune_reference_manifest: dict[str, Any],
    parameters: dict[str, Any],
    references: dict[str, Any] | None = None,
    ingestion: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Any, Any, Any, Any, Any, str, str]:
    """Summary metrics with verdicts, severity table, plots and the Markdown / HTML robustness
    report (with the published references of the ingested datasets, labelled as a different
    scale); all logged to the active MLflow run when there is one."""
    params = parse(EvaluationParams, parameters, "evaluation")
    severity = reporting.severity_table(evaluation_results)
    mce = _mce(severity, params.baseline_metrics)
    summary = reporting.metrics_summary(evaluation_results, mce)
    from robust_mmr_pipeline.reporting import label_efficiency as efficiency

    plots = [
        efficiency.label_efficiency_figure(label_efficiency),
        reporting.severity_figure(severity),
        reporting.domain_figure(evaluation_results),
        reporting.retrieval_figure(evaluation_results),
        reporting.validation_figure(_histories(finetune_manifest, finetune_reference_manifest)),
    ]
    figures = {
        caption: (path, plot)
        for (caption, path), plot in zip(FIGURE_FILES.items(), plots, strict=True)
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
        "baseline run for mCE": params.baseline_metrics or "none",
    }
    if "retrieval" in finetune_manifest["tasks"]:
        context["retrieval first stage"] = _retrieval_first_stage(finetune_manifest)
    stages = (timings or {}).get("stages") or []
    if stages:
        summary["timings"] = timing_summary(stages)
        context["evaluation time"] = f"{summary['timings']['total']:.0f} s (table at the end)"
    if len(label_efficiency):
        summary["label_efficiency"] = efficiency.nested_values(label_efficiency)
    reference_rows = published_references.reference_rows(references, ingestion)
    if not reference_rows.empty:
        summary["published_references"] = reference_rows.to_dict("records")
    lead = efficiency.label_efficiency_section(label_efficiency)
    extra = published_references.references_section(reference_rows)
    extra += reporting.perturbation_families_section(
        _training_families(finetune_manifest), evaluation_results, _held_out_shift(ingestion)
    )
    extra += timing_section(stages)
    markdown, page = (
        reporting.render_report(
            evaluation_results,
            summary,
            context,
            figures,
            fmt=fmt,
            extra_sections=extra,
            lead_sections=lead,
        )
        for fmt in ("md", "html")
    )
    if params.log_to_mlflow:
        _log_to_mlflow(summary, figures, markdown, page)
    severity_plot, domain_plot, retrieval_plot, validation_plot = plots[1:]
    return (
        summary, severity, severity_plot, domain_plot, retrieval_plot, validation_plot, plots[0],
        markdown, page,
    )  # fmt: skip


def _log_to_mlflow(
    summary: dict[str, Any], figures: dict[str, tuple[str, Any]], markdown: str, page: str
) -> None:
    import mlflow

    if mlflow.active_run() is None:
        return
    mlflow.log_metrics({f"evaluation/{k}": v for k, v in reporting.flat_metrics(summary).items()})
    mlflow.log_text(markdown, "evaluation/robustness_report.md")
    mlflow.log_text(page, "evaluation/robustness_report.html")
    for path, figure in figures.values():
        mlflow.log_figure(figure, f"evaluation/{path}")
