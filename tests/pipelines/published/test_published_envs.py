"""The published-benchmark conf envs (vqa_rad, slake, vqa_med_2019) run the whole chain.

Each test writes a small release in its published layout (release_fixtures.py: VQA-only, the
releases' quirks included), points the env at it with ``ingestion.roots`` (as a user would with
``--params``), shrinks the model and the steps to conf/test's sizes, and runs the ``published``
pipeline for real: ingestion -> validation -> domain_split -> pretrain -> finetune ->
evaluation, then fine-tuning and evaluation on the as_released protocol and the benchmark page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from browser_support import CHROMIUM, assert_reads_well
from release_fixtures import (
    EMPTY_ANSWER_QID,
    write_slake_release,
    write_vqa_med_2019_release,
    write_vqa_rad_release,
)

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
WRITERS = {
    "vqa_rad": write_vqa_rad_release,
    "slake": write_slake_release,
    "vqa_med_2019": write_vqa_med_2019_release,
}
HELD_OUT = {"vqa_rad": "head", "slake": "mri", "vqa_med_2019": "skull and contents"}


def _tiny_params(env: str, root: Path) -> dict[str, Any]:
    """conf/test's model and step sizes over the env, and the env pointed at ``root``."""
    test = {}
    for name in ("pretrain", "finetune", "evaluation"):
        path = REPO_ROOT / "conf" / "test" / f"parameters_{name}.yml"
        test.update(yaml.safe_load(path.read_text(encoding="utf-8")))
    return {
        "ingestion": {"roots": {env: str(root)}},
        "pretrain": {**test["pretrain"], "register_model": False},
        "finetune": {
            **test["finetune"],
            "trainer": {**test["finetune"]["trainer"], "max_steps": 4, "batch_size": 8},
        },
        "evaluation": test["evaluation"],
        # more val images than the default 10 % so that every protocol of a tiny release has a
        # val split to select on
        "domain_split": {"fractions": {"train": 0.5, "val": 0.3, "test": 0.2}},
    }


def _read(project: Path, relative: str) -> pd.DataFrame:
    return pd.read_parquet(project / "data" / relative)


def _json(project: Path, relative: str) -> Any:
    return json.loads((project / "data" / relative).read_text(encoding="utf-8"))


@pytest.mark.parametrize("env", sorted(WRITERS))
def test_env_runs_the_whole_chain_and_both_protocols(
    env: str, kedro_project: Path, run_kedro: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    root = tmp_path / "release" / env
    expected = WRITERS[env](root)
    run_kedro("published", env=env, params=_tiny_params(env, root))

    # ingestion: the published counts, QA statements of the training records, VQA-only
    images, vqa = (
        _read(kedro_project, "03_primary/images.parquet"),
        _read(kedro_project, "03_primary/vqa.parquet"),
    )
    pairs, rejects = (
        _read(kedro_project, "03_primary/pairs.parquet"),
        _read(kedro_project, "03_primary/rejects.parquet"),
    )
    assert len(images) == expected["images"]
    counts = vqa["split"].value_counts().to_dict()
    assert counts == {s: expected[s] for s in ("train", "val", "test") if expected.get(s)}
    assert set(pairs["text_kind"]) == {"qa_statement"} and len(pairs) == expected["train"]
    assert _read(kedro_project, "03_primary/classification.parquet").empty
    if env == "slake":  # the release's empty answer: dropped (tolerate), kept as a reject
        assert len(rejects) == 1 and str(EMPTY_ANSWER_QID) in rejects["record"].iloc[0]
        validation = _json(kedro_project, "08_reporting/validation_summary.json")
        assert validation["success"] is True
        report = (kedro_project / "data/08_reporting/validation_report.md").read_text()
        assert str(EMPTY_ANSWER_QID) in report
    else:
        assert rejects.empty

    # domain split: image-disjoint protocols and as_released with its overlap counted
    summary = pd.read_csv(kedro_project / "data/08_reporting/domain_split_summary.csv")
    assert {"in_domain", "cross_domain", "as_released"} <= set(summary["protocol"])
    overlap = summary.groupby(["protocol", "split"])["overlap_images"].sum()
    assert overlap.loc["as_released", "test"] == expected["overlap"]
    assert overlap.drop("as_released", level="protocol").sum() == 0
    released = summary[summary["protocol"] == "as_released"].groupby("split")["vqa"].sum()
    assert released.loc["test"] == expected["test"]  # the official test set, as published
    cross = summary[(summary["protocol"] == "cross_domain") & (summary["split"] == "test")]
    assert set(cross.loc[cross["images"] > 0, "domain"]) == {HELD_OUT[env]}

    # evaluation: in-domain and cross-domain, and the as_released branch on the official test
    results = _read(kedro_project, "07_model_output/evaluation_results.parquet")
    overall = results[(results["task"] == "vqa") & (results["metric"] == "overall")]
    assert {"in_domain", "cross_domain"} <= set(overall["condition"])
    branch = _read(kedro_project, "07_model_output/as_released/evaluation_results.parquet")
    ours = branch[branch["model"] == "ours"]
    clean = ours[(ours["condition"] == "in_domain") & (ours["metric"] == "n")]
    assert clean["protocol"].tolist() == ["as_released"]
    assert clean["value"].tolist() == [expected["test"]]
    manifest = _json(kedro_project, "06_models/finetune_as_released/finetune_manifest.json")
    assert manifest["protocol"] == "as_released"
    assert (kedro_project / manifest["tasks"]["vqa"]["checkpoint"]).exists()

    # references: M3AE beside our numbers for VQA-RAD and SLAKE, none for VQA-Med
    page = (kedro_project / "data/08_reporting/published_benchmark.md").read_text()
    main_report = (kedro_project / "data/08_reporting/robustness_report.md").read_text()
    assert "as released (official split)" in page and "in-domain (image-disjoint)" in page
    if CHROMIUM:  # the run's own page in a browser (tests/reporting: on every machine with one)
        assert_reads_well(kedro_project / "data/08_reporting/published_benchmark.html", figures=0)
    if env in ("vqa_rad", "slake"):
        assert "M3AE (published; reference at a different scale)" in page
        assert "Published references (a different scale)" in main_report
        metrics = _json(kedro_project, "08_reporting/evaluation_metrics.json")
        assert {r["model"] for r in metrics["published_references"]} == {"M3AE"}
    else:
        assert "M3AE" not in page and "Published references" not in main_report
