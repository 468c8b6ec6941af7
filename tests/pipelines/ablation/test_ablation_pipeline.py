"""The ablation pipeline: its graph, its parameters, and a real Kedro run on the test env."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from browser_support import CHROMIUM, assert_reads_well
from safetensors.numpy import load_file

from robust_mmr_pipeline.params import ParameterError

GRID = {
    "ROBUST_MMR_ABLATION_SETTINGS": "no_pretraining,mmr,robust_mmr",
    "ROBUST_MMR_ABLATION_SEEDS": "0,1",
}
RUNS = [(s, k) for s in ("no_pretraining", "mmr", "robust_mmr") for k in (0, 1)]


@pytest.fixture
def small_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in GRID.items():
        monkeypatch.setenv(name, value)


def _registered_ablation():
    from robust_mmr_pipeline.pipelines.ablation import create_pipeline

    return create_pipeline()


def test_default_grid_has_one_namespace_per_setting_and_seed(monkeypatch) -> None:
    for name in GRID:
        monkeypatch.delenv(name, raising=False)
    ablation = _registered_ablation()
    namespaces = {n.namespace for n in ablation.nodes if n.namespace}
    expected = {
        f"ablation.{s}.seed_{k}"
        for s in ("no_pretraining", "mmr", "mpma", "robust_mmr", "robust_mmr_mpma")
        for k in (0, 1, 2)
    }
    assert namespaces == expected | {"ablation"}  # the comparison node
    names = {n.name for n in ablation.nodes}
    assert "ablation.mmr.seed_2.pretrain_model" in names
    assert "ablation.no_pretraining.seed_0.scratch_backbone" in names
    assert "ablation.no_pretraining.seed_0.pretrain_model" not in names
    compare = next(n for n in ablation.nodes if n.name == "ablation.compare_ablation")
    assert len([i for i in compare.inputs if i.endswith(".evaluation_results")]) == 15
    # the upstream is part of the pipeline, so it runs on a fresh clone; shared inputs are
    # read un-namespaced by every run
    assert {"ingest_sources", "fit_tokenizer", "build_image_cache"} <= names
    assert not [i for i in ablation.all_inputs() if i.endswith(".tokenizer")]


def test_grid_comes_from_the_environment(small_grid) -> None:
    namespaces = {n.namespace for n in _registered_ablation().nodes if n.namespace}
    assert namespaces == {f"ablation.{s}.seed_{k}" for s, k in RUNS} | {"ablation"}


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        ("ROBUST_MMR_ABLATION_SEEDS", "0,zero", "non-negative integers"),
        ("ROBUST_MMR_ABLATION_SEEDS", "1,1", "distinct"),
        ("ROBUST_MMR_ABLATION_SETTINGS", "mmr,robust mmr", "letters, digits"),
    ],
)
def test_bad_grid_is_refused(monkeypatch, variable: str, value: str, match: str) -> None:
    from robust_mmr_pipeline.pipelines.ablation.grid import ablation_seeds, ablation_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=match):
        ablation_seeds() if "SEEDS" in variable else ablation_settings()


def test_run_parameters_set_preset_seed_and_folder() -> None:
    from robust_mmr_pipeline.pipelines.ablation.params import AblationParams

    params = AblationParams(pretrain={"trainer": {"max_steps": 7}}, evaluation={"severities": [5]})
    base = {
        "pretrain": {"preset": "robust_mmr", "trainer": {"max_steps": 200, "lr": 1e-3}},
        "finetune": {"from_scratch": False, "trainer": {"seed": 0}},
        "evaluation": {"severities": [1, 3, 5], "baseline_metrics": "x.csv"},
    }
    mmr = params.run_parameters("mmr", 2, base)
    assert mmr["pretrain"]["preset"] == "mmr"
    assert mmr["pretrain"]["trainer"] == {"max_steps": 7, "lr": 1e-3, "seed": 2}
    assert mmr["pretrain"]["register_model"] is False
    assert mmr["pretrain"]["output_dir"] == "data/06_models/ablation/mmr/seed_2/pretrain"
    assert mmr["finetune"]["from_scratch"] is False and mmr["finetune"]["trainer"]["seed"] == 2
    assert mmr["evaluation"] == {"severities": [5], "baseline_metrics": None}
    scratch = params.run_parameters("no_pretraining", 0, base)
    assert scratch["pretrain"]["preset"] == "mmr" and scratch["finetune"]["from_scratch"] is True
    assert base["pretrain"]["trainer"]["max_steps"] == 200  # the base is not modified


@pytest.mark.parametrize(
    ("section", "value", "match"),
    [
        ("pretrain", {"preset": "mpma"}, "set per run"),
        ("finetune", {"from_scratch": True}, "set per run"),
        ("evaluation", {"baseline_metrics": "a.csv"}, "ablation.reference"),
    ],
)
def test_per_run_keys_cannot_be_overridden(section: str, value: dict, match: str) -> None:
    from robust_mmr_pipeline.pipelines.ablation.params import AblationParams

    with pytest.raises(ValueError, match=match):
        AblationParams(**{section: value})


def test_a_bad_run_override_fails_before_anything_runs(
    kedro_project: Path, run_kedro, small_grid
) -> None:
    with pytest.raises(ParameterError, match=r"'ablation\.pretrain\.trainer\.max_stepz'"):
        run_kedro("ablation", params={"ablation": {"pretrain": {"trainer": {"max_stepz": 3}}}})
    assert not (kedro_project / "data/03_primary").exists() or not any(
        (kedro_project / "data/03_primary").iterdir()
    )


def test_reference_outside_the_grid_fails_before_anything_runs(run_kedro, small_grid) -> None:
    with pytest.raises(ValueError, match=r"ablation\.reference is 'mpma'"):
        run_kedro("ablation", params={"ablation": {"reference": "mpma"}})


def _weights(run_dir: Path) -> dict[str, np.ndarray]:
    checkpoints = sorted((run_dir / "pretrain").glob("*/checkpoints/step-*"))
    assert checkpoints, f"no pre-training checkpoint under {run_dir}"
    return load_file(checkpoints[-1] / "model.safetensors")


@pytest.mark.slow
def test_ablation_runs_every_setting_and_seed_and_compares_them(
    chain_project: Path, run_kedro, small_grid
) -> None:
    # the upstream outputs exist (chain_project): only the runs and the comparison execute
    run_kedro("ablation", only_missing_outputs=True)
    models = chain_project / "data/06_models/ablation"
    for setting, seed in RUNS:
        run_dir = models / setting / f"seed_{seed}"
        pretrain = json.loads((run_dir / "pretrain_params.json").read_text())
        finetune = json.loads((run_dir / "finetune_params.json").read_text())
        assert pretrain["trainer"]["seed"] == seed and finetune["trainer"]["seed"] == seed
        manifest = json.loads((run_dir / "finetune_manifest.json").read_text())
        assert manifest["from_scratch"] is (setting == "no_pretraining")
        assert set(manifest["tasks"]) == {"vqa", "retrieval"}
        for entry in manifest["tasks"].values():
            assert Path(entry["checkpoint"]).is_relative_to(f"{models.relative_to(chain_project)}")
        if setting == "no_pretraining":
            assert not (run_dir / "pretrain").exists()
            backbone = json.loads((run_dir / "pretrain_checkpoint.json").read_text())
            assert backbone["checkpoint"] is None and backbone["model_config"]["preset"] == "mmr"
        else:
            assert pretrain["preset"] == setting
        results = pd.read_parquet(
            chain_project / f"data/07_model_output/ablation/{setting}/seed_{seed}/"
            "evaluation_results.parquet"
        )
        assert set(results["perturbation"]) - {""} == {"gaussian_noise", "typos"}
    # the seed reaches the initial weights: two seeds of one preset start apart
    seed_0, seed_1 = (_weights(models / "mmr" / f"seed_{k}") for k in (0, 1))
    assert any(not np.array_equal(seed_0[name], seed_1[name]) for name in seed_0)

    reporting = chain_project / "data/08_reporting"
    headlines = pd.read_csv(reporting / "ablation_runs.csv")
    assert set(zip(headlines["setting"], headlines["seed"], strict=True)) == set(RUNS)
    conditions = set(headlines["condition"])
    assert {"in_domain", "cross_domain", "perturbed", "drop", "mce"} <= conditions
    assert "mean_rank_degradation" in set(headlines[headlines["task"] == "retrieval"]["condition"])
    mce = headlines[headlines["condition"] == "mce"]
    assert np.allclose(mce[mce["setting"] == "mmr"]["value"], 1.0)

    summary = pd.read_csv(reporting / "ablation_summary.csv")
    assert list(dict.fromkeys(summary["setting"])) == ["no_pretraining", "mmr", "robust_mmr"]
    assert (summary["n_seeds"] == 2).all()
    for _, row in summary.iterrows():
        values = headlines[
            (headlines["setting"] == row["setting"])
            & (headlines["task"] == row["task"])
            & (headlines["condition"] == row["condition"])
        ]["value"]
        assert math.isclose(row["mean"], values.mean(), abs_tol=1e-9)
        if values.std() > 0:
            assert row["ci_low"] < row["mean"] < row["ci_high"]

    gaps = pd.read_csv(reporting / "ablation_gaps.csv")
    assert set(gaps["focus"]) == {"robust_mmr"} and set(gaps["reference"]) == {"mmr"}
    assert {"in_domain", "cross_domain", "perturbed"} <= set(gaps["condition"])
    for _, gap in gaps.iterrows():
        pick = headlines[
            (headlines["task"] == gap["task"]) & (headlines["condition"] == gap["condition"])
        ]
        focus = pick[pick["setting"] == "robust_mmr"].set_index("seed")["value"]
        reference = pick[pick["setting"] == "mmr"].set_index("seed")["value"]
        assert math.isclose(gap["gap"], (focus - reference).mean(), abs_tol=1e-9)

    metrics = json.loads((reporting / "ablation_metrics.json").read_text())
    assert {"no_pretraining", "mmr", "robust_mmr", "gap_robust_mmr_minus_mmr"} <= set(metrics)
    page = (reporting / "ablation_report.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "robust_mmr − mmr" in page
    if CHROMIUM:  # the run's own page in a browser (tests/reporting: on every machine with one)
        assert_reads_well(reporting / "ablation_report.html", figures=1)
    markdown = (reporting / "ablation_report.md").read_text()
    assert "## VQA" in markdown and "## Retrieval" in markdown and "ablation.png" in markdown
    assert (reporting / "ablation.png").stat().st_size > 1000

    # every run has its own MLflow run, nested under the pipeline's run
    client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = {r.info.run_name: r for r in runs if r.info.run_name.startswith("ablation/")}
    assert set(children) == {f"ablation/{s}/seed_{k}" for s, k in RUNS}
    parents = {r.data.tags["mlflow.parentRunId"] for r in children.values()}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert any(k.startswith("ablation/gap_robust_mmr_minus_mmr/") for k in parent.data.metrics)
    assert all(r.info.status == "FINISHED" for r in children.values())
    assert any(k.startswith("vqa/") for k in children["ablation/mmr/seed_0"].data.metrics)
    assert "train/loss" in children["ablation/robust_mmr/seed_1"].data.metrics
