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

from kedro.pipeline import Node, Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines import domain_split, evaluation, finetune, ingestion, validation
from robust_mmr_pipeline.pipelines import pretrain as pretrain_pipeline
from robust_mmr_pipeline.pipelines.ablation.grid import (
    NO_PRETRAINING,
    ablation_seeds,
    ablation_settings,
    run_key,
    run_namespace,
)
from robust_mmr_pipeline.pipelines.ablation.nodes import compare_runs, in_run, run_configurator
from robust_mmr_pipeline.pipelines.pretrain.nodes import scratch_backbone

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


def _run_node(source: Pipeline, name: str, section: str, setting: str, seed: int) -> Node:
    """Node ``name`` of a main pipeline as one run's node: same function, inputs and outputs,
    but reading the run's ``<section>_params`` instead of ``params:<section>`` and logging to
    the run's MLflow run (so a change of the main pipeline reaches the ablation too)."""
    original = next(n for n in source.nodes if n.name == name)
    inputs = [f"{section}_params" if i == f"params:{section}" else i for i in original.inputs]
    outputs = original.outputs
    return node(
        in_run(original.func, setting, seed),
        inputs=inputs,
        outputs=outputs[0] if len(outputs) == 1 else outputs,
        name=name,
    )


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
        backbone = _run_node(
            pretrain_pipeline.create_pipeline(), "pretrain_model", "pretrain", setting, seed
        )
    nodes = [
        node(
            run_configurator(setting, seed),
            inputs=[f"params:{s}" for s in (*SECTIONS, "ablation")],
            outputs=[f"{s}_params" for s in SECTIONS],
            name="configure_run",
        ),
        backbone,
        _run_node(finetune.create_pipeline(), "finetune_tasks", "finetune", setting, seed),
        # the no_pretraining setting is the ablation's from-scratch reference: off per run
        # (ablation.finetune.reference_from_scratch: false), the node still writes its manifest
        _run_node(finetune.create_pipeline(), "finetune_reference", "finetune", setting, seed),
        _run_node(evaluation.create_pipeline(), "evaluate_models", "evaluation", setting, seed),
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
