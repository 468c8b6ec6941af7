"""published: for a published benchmark (conf envs vqa_rad, slake, vqa_med_2019).

The default chain (ingestion -> validation -> domain_split -> pretrain -> finetune ->
evaluation, image-disjoint protocols), then fine-tuning and evaluation on the official split as
released and the page that puts both beside the published references
(pipelines/as_released)::

    kedro run --env vqa_rad --pipelines published
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN, stage_pipeline
from robust_mmr_pipeline.pipelines import as_released


def create_pipeline(**kwargs) -> Pipeline:
    # the chain's stages in their namespaces, as in __default__ (one group each in Kedro-Viz)
    chain = [stage_pipeline(name) for name in DEFAULT_CHAIN]
    return sum(chain, Pipeline([])) + as_released.create_pipeline()
