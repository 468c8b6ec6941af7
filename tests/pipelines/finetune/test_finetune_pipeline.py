"""Real Kedro runs of the finetune pipeline (tiny test env): the no-pretraining baseline and
mCE against a baseline's severity table; typed parameters fail before any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_from_scratch_baseline_and_mce_against_a_baseline(chain_project: Path, run_kedro) -> None:
    only_vqa = {"finetune": {"tasks": ["vqa"], "from_scratch": True}}
    run_kedro("finetune", params=only_vqa)
    manifest = json.loads((chain_project / "data/06_models/finetune_manifest.json").read_text())
    assert manifest["from_scratch"] is True and manifest["backbone_checkpoint"] is None
    assert set(manifest["tasks"]) == {"vqa"} and manifest["tasks"]["vqa"]["from_scratch"]

    run_kedro("evaluation")
    reporting = chain_project / "data/08_reporting"
    baseline = chain_project / "baseline_severity.csv"
    baseline.write_bytes((reporting / "evaluation_severity.csv").read_bytes())
    run_kedro("evaluation", params={"evaluation": {"baseline_metrics": str(baseline)}})
    summary = json.loads((reporting / "evaluation_metrics.json").read_text())
    assert set(summary) == {"vqa", "timings"}  # the tasks and where the minutes went
    assert summary["timings"]["vqa"]["score_perturbed_sets"] >= 0
    mce = summary["vqa"]["mce"]
    # the same model against itself: every corruption error ratio is 1
    assert mce["mce"] == pytest.approx(1.0)
    assert mce["corruptions"] == 2
    assert "Mean corruption error" in (reporting / "robustness_report.md").read_text()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tasks": ["vqa", "captioning"]}, r"finetune\.tasks\[1\] = 'captioning'"),
        ({"task_options": {"vqa": {"vqa_los": "ce"}}}, r"'finetune\.task_options\.vqa\.vqa_los'"),
        ({"trainer": {"max_step": 3}}, r"'finetune\.trainer\.max_step' \(did you mean"),
    ],
)
def test_bad_finetune_parameters_fail_before_training(
    kedro_project: Path, run_kedro, params: dict, message: str
) -> None:
    from robust_mmr_pipeline.params import ParameterError

    with pytest.raises(ParameterError, match=message):
        run_kedro("finetune", params={"finetune": params})
    assert not (kedro_project / "data/06_models/finetune_manifest.json").exists()
