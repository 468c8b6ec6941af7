"""A run that fails when learning breaks: the fine-tuned models beat the trivial references
computed in the same run (real Kedro run of the whole chain, test env, seeded).

Behavioural, not a timing: the tiny test model, trained for a few hundred steps on a few
hundred SynthRad studies, must answer VQA better than the per-question answer prior and
classify better than the majority label, on the same in-domain test rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LEARNABLE = {
    "ingestion": {"sources": [{"kind": "synthrad", "root": "data/01_raw/synthrad",
                               "options": {"n_studies": 320, "image_size": 32, "seed": 0}}]},
    "pretrain": {"trainer": {"max_steps": 20, "checkpoint_every": 0}},
    "finetune": {
        "tasks": ["vqa", "classification"],
        "reference_from_scratch": False,
        "trainer": {"max_steps": 300, "batch_size": 32, "lr": 1.0e-3, "eval_every": 100,
                    "log_every": 50},
    },
    "evaluation": {"image_perturbations": ["gaussian_noise"], "text_perturbations": ["typos"],
                   "severities": [3], "n_boot": 200,
                   "baselines": ["majority", "question_prior"]},
}  # fmt: skip


@pytest.mark.slow
def test_finetuned_models_beat_the_priors_of_the_same_run(kedro_project: Path, run_kedro) -> None:
    run_kedro(params=LEARNABLE)
    summary = json.loads((kedro_project / "data/08_reporting/evaluation_metrics.json").read_text())
    vqa, classification = summary["vqa"], summary["classification"]
    prior = vqa["references"]["question_prior"]["in_domain"]["overall"]
    majority = classification["references"]["majority"]["in_domain"]["accuracy"]
    # observed (AMD EPYC, seed 0): VQA 0.594 vs prior 0.507, classification 0.735 vs majority
    # 0.163; the thresholds sit >= 10 % below those so another CPU's trajectory still passes
    assert vqa["in_domain"]["overall"] > prior + 0.01, (vqa["in_domain"]["overall"], prior)
    assert classification["in_domain"]["accuracy"] > majority + 0.2
    # the verdict line of the report says so, with a paired interval above 0
    assert classification["verdict"]["in_domain"]["beats"]
