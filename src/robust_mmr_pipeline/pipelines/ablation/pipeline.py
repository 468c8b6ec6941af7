"""Ablation: one namespaced pretrain -> finetune -> evaluate pipeline per setting x seed.

Every run ``ablation.<setting>.seed_<k>`` reads the shared upstream outputs (splits, image
cache, tokenizer, perturbation manifest), trains with its own parameters (``configure_run``:
the main parameters with ``params:ablation`` merged over them) and writes under
``data/06_models/ablation/<setting>/seed_<k>/``. ``compare_ablation`` then builds the table.
The upstream pipelines are part of this one, so it runs on a fresh clone; after a ``kedro
run``, ``kedro run --pipelines ablation --only-missing-outputs`` skips what exists (and
resumes an interrupted ablation run by run).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines import domain_split, ingestion, validation
from robust_mmr_pipeline.pipelines import pretrain as pretrain_pipeline
from robust_mmr_pipeline.pipelines.ablation.grid import (
    NO_PRETRAINING,
    ablation_seeds,
    ablation_settings,
    run_key,
    run_namespace,
)
from robust_mmr_pipeline.pipelines.ablation.nodes import compare_runs, in_run, run_configurator
from robust_mmr_pipeline.pipelines.evaluation.nodes import evaluate_models
from robust_mmr_pipeline.pipelines.finetune.nodes import finetune_tasks
from robust_mmr_pipeline.pipelines.pretrain.nodes import pretrain_model, scratch_backbone

# Outputs of the upstream pipelines every run reads (never namespaced).
SHARED_INPUTS = (
    "split_pairs",
    "split_vqa",
    "split_classification",
    "perturbation_sets",
    "image_cache",
    "tokenizer",
)
SECTIONS = ("pretrain", "finetune", "evaluation")


def run_pipeline(setting: str, seed: int) -> Pipeline:
    """pretrain (or the scratch backbone) -> finetune -> evaluate of one run, namespaced."""
    if setting == NO_PRETRAINING:
        backbone = node(
            scratch_backbone,
            inputs=["tokenizer", "pretrain_params"],
            outputs="pretrain_checkpoint",
            name="scratch_backbone",
        )
    else:
        backbone = node(
            in_run(pretrain_model, setting, seed),
            inputs=["split_pairs", "image_cache", "tokenizer", "pretrain_params"],
            outputs=["pretrain_checkpoint", "pretrain_losses", "pretrain_loss_plot"],
            name="pretrain_model",
        )
    nodes = [
        node(
            run_configurator(setting, seed),
            inputs=[f"params:{s}" for s in (*SECTIONS, "ablation")],
            outputs=[f"{s}_params" for s in SECTIONS],
            name="configure_run",
        ),
        backbone,
        node(
            in_run(finetune_tasks, setting, seed),
            inputs=[
                "split_vqa",
                "split_classification",
                "split_pairs",
                "image_cache",
                "tokenizer",
                "pretrain_checkpoint",
                "finetune_params",
            ],
            outputs=["finetune_manifest", "finetune_metrics"],
            name="finetune_tasks",
        ),
        node(
            in_run(evaluate_models, setting, seed),
            inputs=[
                "finetune_manifest",
                "split_vqa",
                "split_classification",
                "split_pairs",
                "perturbation_sets",
                "image_cache",
                "evaluation_params",
            ],
            outputs="evaluation_results",
            name="evaluate_models",
        ),
    ]
    return pipeline(
        nodes,
        namespace=run_namespace(setting, seed),
        inputs=set(SHARED_INPUTS),
        parameters={f"params:{s}" for s in (*SECTIONS, "ablation")},
    )


def create_pipeline(**kwargs) -> Pipeline:
    settings, seeds = ablation_settings(), ablation_seeds()
    runs = [run_pipeline(setting, seed) for setting in settings for seed in seeds]
    comparison = node(
        compare_runs,
        inputs={
            "ablation": "params:ablation",
            **{
                run_key(setting, seed): f"{run_namespace(setting, seed)}.evaluation_results"
                for setting in settings
                for seed in seeds
            },
        },
        outputs=[
            "ablation_headlines",
            "ablation_summary",
            "ablation_gaps",
            "ablation_metrics",
            "ablation_plot",
            "ablation_report_md",
            "ablation_report_html",
        ],
        name="compare_ablation",
        namespace="ablation",  # it reads the runs' namespaced outputs
    )
    upstream = (
        ingestion.create_pipeline()
        + validation.create_pipeline()
        + domain_split.create_pipeline()
        + pretrain_pipeline.create_pipeline().only_nodes("fit_tokenizer", "build_image_cache")
    )
    return upstream + sum(runs, Pipeline([])) + pipeline([comparison])
