"""Domain split: validated unified tables -> protocol manifests, perturbed sets, summary."""

from kedro.pipeline import Pipeline, node, pipeline

from robust_mmr_pipeline.pipelines.domain_split.nodes import (
    build_answer_vocabulary,
    build_perturbation_sets,
    plot_domain_split,
    split_by_domain,
    summarise_domain_split,
)


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                split_by_domain,
                inputs={
                    "validation_summary": "validation_summary",
                    "images": "images",
                    "pairs": "pairs",
                    "vqa": "vqa",
                    "classification": "classification",
                    "parameters": "params:domain_split",
                    "ingestion": "params:ingestion",
                },
                outputs=["split_images", "split_pairs", "split_vqa", "split_classification"],
                name="split_by_domain",
            ),
            node(
                build_answer_vocabulary,
                inputs=["split_images", "split_vqa"],
                outputs="answer_vocabulary",
                name="build_answer_vocabulary",
            ),
            node(
                build_perturbation_sets,
                inputs=["split_images", "params:domain_split"],
                outputs="perturbation_sets",
                name="build_perturbation_sets",
            ),
            node(
                summarise_domain_split,
                inputs={
                    name: name
                    for name in (
                        "images",
                        "vqa",
                        "classification",
                        "split_images",
                        "split_pairs",
                        "split_vqa",
                        "split_classification",
                    )
                },
                outputs="domain_split_summary",
                name="summarise_domain_split",
            ),
            node(
                plot_domain_split,
                inputs="domain_split_summary",
                outputs="domain_split_figure",
                name="plot_domain_split",
            ),
        ]
    )
