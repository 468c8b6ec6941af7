"""Real Kedro runs: finetune then evaluation on the tiny test env (SynthRad, nothing mocked)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from browser_support import CHROMIUM, assert_reads_well

TASKS = {"vqa", "classification", "retrieval"}
FRACTIONS = ("overall", "closed", "open", "accuracy", "macro_f1")


def _is_fraction(metric: str) -> bool:
    """Accuracies and recalls (not their drops or differences, which may be negative)."""
    if metric.startswith(("drop_", "diff_")):
        return False
    return metric in FRACTIONS or "r@" in metric


@pytest.mark.slow
def test_finetune_then_evaluation_writes_report_metrics_and_plots(
    chain_project: Path, run_kedro
) -> None:
    run_kedro("finetune")
    manifest = json.loads((chain_project / "data/06_models/finetune_manifest.json").read_text())
    assert set(manifest["tasks"]) == TASKS and manifest["from_scratch"] is False
    for task, entry in manifest["tasks"].items():
        checkpoint = chain_project / entry["checkpoint"]
        assert (checkpoint / "model.safetensors").is_file(), task
        assert checkpoint.parent == chain_project / f"data/06_models/finetune/{task}/best"
        # selection on validation: the chosen step is the first argmax of the val history
        key = f"val/{entry['selection_metric']}"
        values = [record[key] for record in entry["history"]]
        assert entry["best_step"] == entry["history"][values.index(max(values))]["step"]
        assert not any("test" in name for record in entry["history"] for name in record)
    assert json.loads((chain_project / "data/07_model_output/finetune_metrics.json").read_text())

    run_kedro("evaluation")
    reporting = chain_project / "data/08_reporting"
    results = pd.read_parquet(chain_project / "data/07_model_output/evaluation_results.parquet")
    assert set(results["task"]) == TASKS
    for task in TASKS:
        conditions = set(results[results["task"] == task]["condition"])
        assert {"in_domain", "cross_domain", "perturbed"} <= conditions, task
    with_ci = results[results["ci_low"].notna()]
    assert (with_ci["ci_low"] <= with_ci["value"] + 1e-9).all()
    assert (with_ci["value"] <= with_ci["ci_high"] + 1e-9).all()
    fractions = results[results["metric"].map(_is_fraction)]
    assert not fractions.empty and fractions["value"].between(0, 1).all()
    perturbed = results[results["condition"] == "perturbed"]
    assert {"drop_overall", "drop_accuracy", "t2i_mean_rank_degradation"} <= set(
        perturbed["metric"]
    )
    assert set(perturbed["severity"]) == {1, 5}
    assert set(perturbed["perturbation"]) == {"gaussian_noise", "typos"}

    severity = pd.read_csv(reporting / "evaluation_severity.csv")
    assert {"task", "perturbation", "severity", "accuracy", "ci_low", "ci_high"} <= set(
        severity.columns
    )
    assert severity["accuracy"].between(0, 1).all()
    assert (severity["ci_low"] <= severity["accuracy"] + 1e-9).all()
    summary = json.loads((reporting / "evaluation_metrics.json").read_text())
    for task in TASKS:
        metric = summary[task]["main_metric"]
        for condition in ("in_domain", "cross_domain"):
            point = summary[task][condition][metric]
            assert 0 <= point <= 1
            low, high = (summary[task][condition][f"{metric}_ci_{s}"] for s in ("low", "high"))
            assert low <= point <= high
    # every reference is scored on the same rows as the model, with a verdict per task
    assert {"ours", "from_scratch", "majority", "question_prior", "text_tfidf", "image_pixels",
            "chance", "tfidf_pixels_cca"} <= set(results["model"])  # fmt: skip
    counts = results[(results["metric"] == "n") & (results["condition"] != "domain")]
    assert (counts.groupby(["task", "condition", "perturbation", "severity"])["value"].nunique()
            == 1).all()  # fmt: skip
    for task in TASKS:
        for condition in ("in_domain", "cross_domain"):
            verdict = summary[task]["verdict"][condition]
            assert verdict["reference"] in summary[task]["references"]
            assert verdict["difference_ci_low"] <= verdict["difference"]
    # every model at every label budget (test env: 50 % and 100 %) on the same test rows
    efficiency = pd.read_csv(reporting / "label_efficiency.csv")
    scores = efficiency[~efficiency["metric"].str.startswith("diff_")]
    assert set(scores["budget"]) == {"50%", "100%"}
    assert set(scores["task"]) == {"vqa", "classification"}
    assert {"ours", "from_scratch", "frozen_backbone", "frozen_random"} <= set(scores["model"])
    assert set(scores.loc[scores["budget"] == "50%", "model"]) >= {"plain_ft"}
    rows_per_budget = scores.groupby(["task", "budget"])["train_rows"].first().unstack()
    assert (rows_per_budget["50%"] < rows_per_budget["100%"]).all()
    assert scores["value"].between(0, 1).all()
    assert {"diff_overall_vs_from_scratch", "diff_accuracy_vs_frozen_random"} <= set(
        efficiency["metric"]
    )
    html = (reporting / "robustness_report.html").read_text()
    # what a reader came for first: the headline cards, then the figures, then the tables
    assert html.index('id="headline"') < html.index("<figure") < html.index("<details")
    # label efficiency, severity, domains, retrieval ranks and the fine-tuning validation curves
    assert html.count("data:image/png;base64,") == 5
    # the label-efficiency table leads the long tables (does pre-training pay?)
    assert html.index("Label efficiency") < html.index("Ours minus each reference")
    assert "cross-domain test (held-out domain)" in html
    if CHROMIUM:  # the run's own page in a browser (tests/reporting: on every machine with one)
        assert_reads_well(reporting / "robustness_report.html", figures=5)
    markdown = (reporting / "robustness_report.md").read_text()
    assert "robustness_severity.png" in markdown and "| vqa |" in markdown
    # the backbone's training perturbation families beside the evaluated ones
    assert "Perturbation families: pre-training vs evaluation" in markdown
    # each scorer once per task table (from_scratch / frozen also carry baseline labels)
    for label in ("| same architecture, no pre-training |", "| majority answer / label |"):
        for section in markdown.split("\n## ")[1:4]:  # the per-task headline tables
            assert section.count(label) <= 1, section
    for name in (
        "label_efficiency",
        "robustness_severity",
        "robustness_domains",
        "robustness_retrieval_ranks",
        "finetune_validation",
    ):
        assert (reporting / f"{name}.png").stat().st_size > 1000

    # The store the run logged to (MLflow caches stores by URI, and the URI is relative).
    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    logged = [r for r in runs if "evaluation/vqa/in_domain/overall" in r.data.metrics]
    assert logged, "the evaluation metrics were not logged to MLflow"
    artifacts = {a.path for a in client.list_artifacts(logged[0].info.run_id, "evaluation")}
    assert "evaluation/robustness_report.html" in artifacts


def test_bad_evaluation_parameters_fail_before_running(kedro_project: Path, run_kedro) -> None:
    from robust_mmr_pipeline.params import ParameterError

    with pytest.raises(ParameterError, match="severities"):
        run_kedro("evaluation", params={"evaluation": {"severities": [7]}})
