"""published: for a published benchmark (conf envs vqa_rad, slake, vqa_med_2019).

The default chain (ingestion -> validation -> domain_split -> pretrain -> finetune ->
evaluation, image-disjoint protocols), then fine-tuning and evaluation on the official split as
released and the page that puts both beside the published references
(pipelines/as_released)::

    kedro run --env vqa_rad --pipelines published
"""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN
from robust_mmr_pipeline.pipelines import as_released


def create_pipeline(**kwargs) -> Pipeline:
    chain = [
        importlib.import_module(f"robust_mmr_pipeline.pipelines.{name}").create_pipeline()
        for name in DEFAULT_CHAIN
    ]
    return sum(chain, Pipeline([])) + as_released.create_pipeline()
