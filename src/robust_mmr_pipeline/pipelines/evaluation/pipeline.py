"""Evaluation: every fine-tuned task beside its references (from scratch, trivial baselines) on
in-domain, cross-domain and perturbed test sets."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.evaluation.nodes import (
    evaluate_label_efficiency,
    evaluate_models,
    report_robustness,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                evaluate_models,
                inputs=[
                    "finetune_manifest",
                    "finetune_reference_manifest",
                    "split_vqa",
                    "split_classification",
                    "split_pairs",
                    "perturbation_sets",
                    "image_cache",
                    "params:evaluation",
                ],
                outputs=["evaluation_results", "evaluation_timings"],
                name="evaluate_models",
            ),
            node(
                evaluate_label_efficiency,
                inputs=[
                    "finetune_manifest",
                    "finetune_reference_manifest",
                    "finetune_plain_manifest",
                    "split_vqa",
                    "split_classification",
                    "image_cache",
                    "params:evaluation",
                    "params:finetune",
                ],
                outputs="label_efficiency",
                name="evaluate_label_efficiency",
            ),
            node(
                report_robustness,
                inputs=[
                    "evaluation_results",
                    "label_efficiency",
                    "finetune_manifest",
                    "finetune_reference_manifest",
                    "params:evaluation",
                    "params:references",
                    "params:ingestion",
                    "evaluation_timings",
                ],
                outputs=[
                    "evaluation_metrics",
                    "evaluation_severity",
                    "robustness_severity_plot",
                    "robustness_domain_plot",
                    "robustness_retrieval_plot",
                    "finetune_validation_plot",
                    "label_efficiency_plot",
                    "robustness_report_md",
                    "robustness_report_html",
                ],
                name="report_robustness",
            ),
        ]
    )
