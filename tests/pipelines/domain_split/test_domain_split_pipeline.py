"""Real Kedro runs of the domain_split pipeline (and ingestion -> domain_split) in a temp copy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from robust_mmr_pipeline.schema import conform

MANIFEST_FILES = [
    "split_images.parquet",
    "split_pairs.parquet",
    "split_vqa.parquet",
    "split_classification.parquet",
    "perturbation_sets.parquet",
    "answer_vocabulary.json",
]

pytestmark = pytest.mark.slow


def _unified_tables() -> dict[str, pd.DataFrame]:
    """Two sources: a SynthRad-like one (sites a-d) and a VQA-RAD-like one (organs)."""
    synth = [f"synthrad:{i:03d}" for i in range(48)]
    rad = [f"vqa_rad:{i:03d}" for i in range(30)]
    images = pd.DataFrame(
        {
            "image_id": synth + rad,
            "source": ["synthrad"] * 48 + ["vqa_rad"] * 30,
            "path": [f"{i}.png" for i in synth + rad],
            "modality": "ct",
            "organ": "chest",
            "domain": [f"site_{'abcd'[i % 4]}" for i in range(48)]
            + [("head", "chest", "abd")[i % 3] for i in range(30)],
            "width": 64,
            "height": 64,
            "sha256": [f"sha-{i}" for i in synth + rad],
        }
    )
    pairs = pd.DataFrame(
        {
            "pair_id": [f"pair-{i}" for i in synth],
            "image_id": synth,
            "text": "no acute findings.",
            "text_kind": "report",
            "style": "structured",
        }
    )
    splits = ("train", "val", "test")
    vqa_rows = [(f"sq{i}", synth[i], ("yes", "no")[i % 2], splits[i % 3]) for i in range(48)]
    # VQA-RAD-like: official train/test only, with one image asked in both (a source leak).
    vqa_rows += [(f"rq{i}", rad[i], ("yes", "no", "left")[i % 3], "train") for i in range(20)]
    vqa_rows += [(f"rq{i}", rad[i], "right", "test") for i in range(20, 30)]
    vqa_rows += [("rq-leak", rad[0], "right", "test")]
    vqa = pd.DataFrame(vqa_rows, columns=["qid", "image_id", "answer", "split"]).assign(
        question="is it normal?", answer_type="closed", question_type="abnormality"
    )
    classification = pd.DataFrame(
        {
            "sample_id": [f"c{i}" for i in range(48)],
            "image_id": synth,
            "text": "report",
            "label": [("normal", "abnormal")[i % 2] for i in range(48)],
            "split": "unassigned",
        }
    )
    return {
        "images": conform(images, "images"),
        "pairs": conform(pairs, "pairs"),
        "vqa": conform(vqa, "vqa"),
        "classification": conform(classification, "classification"),
    }


def _write_validation_summary(project: Path, success: bool) -> None:
    """Write the validation report and, unless conf already has one, its catalog entry."""
    report = project / "data" / "08_reporting" / "validation_summary.json"
    report.write_text(json.dumps({"success": success}))
    declared = any(
        "validation_summary" in (yaml.safe_load(path.read_text()) or {})
        for path in (project / "conf").rglob("catalog*.yml")
    )
    if not declared:
        entry = {
            "validation_summary": {
                "type": "json.JSONDataset",
                "filepath": "data/08_reporting/validation_summary.json",
            }
        }
        (project / "conf" / "test" / "catalog_validation_summary.yml").write_text(
            yaml.safe_dump(entry)
        )


def _write_tables(project: Path) -> dict[str, pd.DataFrame]:
    tables = _unified_tables()
    for name, frame in tables.items():
        frame.to_parquet(project / "data" / "03_primary" / f"{name}.parquet", index=False)
    return tables


def _registry() -> tuple[list[str], list[str]]:
    from robust_mmr_pipeline.splits.perturbation_sets import registry_names

    return registry_names()


def test_domain_split_run_writes_manifests_reports_and_is_reproducible(
    kedro_project: Path, run_kedro: Callable[..., dict[str, Any]]
) -> None:
    tables = _write_tables(kedro_project)
    _write_validation_summary(kedro_project, success=True)
    run_kedro("domain_split")

    model_input = kedro_project / "data" / "05_model_input"
    reporting = kedro_project / "data" / "08_reporting"
    for name in MANIFEST_FILES:
        assert (model_input / name).is_file(), name
    figure = reporting / "domain_split_counts.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    images = pd.read_parquet(model_input / "split_images.parquet")
    protocols = set(images["protocol"])
    synth_sites = {f"site_{c}" for c in "abcd"}
    assert protocols == {"in_domain", "cross_domain"} | {
        f"lodo:{d}" for d in synth_sites | {"head", "chest", "abd"}
    }
    assert not images.duplicated(subset=["protocol", "image_id"]).any()
    cross = images[images["protocol"] == "cross_domain"]
    assert set(cross.loc[cross["split"] == "test", "domain"]) == {"site_d", "head"}
    assert not {"site_d", "head"} & set(cross.loc[cross["split"] != "test", "domain"])

    vqa = pd.read_parquet(model_input / "split_vqa.parquet")
    in_vqa = vqa[vqa["protocol"] == "in_domain"]
    assert "rq0" not in set(in_vqa["qid"])  # train record of the leaked image, excluded
    assert in_vqa.set_index("qid").loc["rq-leak", "split"] == "test"

    vocabulary = json.loads((model_input / "answer_vocabulary.json").read_text())
    assert set(vocabulary) == protocols
    train_answers = set(in_vqa.loc[in_vqa["split"] == "train", "answer"])
    assert set(vocabulary["in_domain"]) == train_answers
    assert "right" not in vocabulary["in_domain"]  # a test-only answer

    sets = pd.read_parquet(model_input / "perturbation_sets.parquet")
    image_names, text_names = _registry()
    assert set(sets["severity"]) == {1, 3, 5}  # conf/test/parameters_domain_split.yml
    assert set(sets.loc[sets["modality"] == "image", "perturbation"]) == set(image_names)
    assert set(sets.loc[sets["modality"] == "text", "perturbation"]) == set(text_names)
    assert len(sets) == len(protocols) * 3 * (len(image_names) + len(text_names))

    summary = pd.read_csv(reporting / "domain_split_summary.csv", keep_default_na=False)
    in_domain = summary[summary["protocol"] == "in_domain"]
    assert in_domain["images"].sum() == len(tables["images"])
    assert in_domain["leaked_images"].sum() == 1 and in_domain["vqa_excluded"].sum() == 1

    first = {name: (model_input / name).read_bytes() for name in MANIFEST_FILES}
    run_kedro("domain_split")
    second = {name: (model_input / name).read_bytes() for name in MANIFEST_FILES}
    assert first == second


def test_domain_split_refuses_when_validation_failed(
    kedro_project: Path, run_kedro: Callable[..., dict[str, Any]]
) -> None:
    _write_tables(kedro_project)
    _write_validation_summary(kedro_project, success=False)
    with pytest.raises(Exception, match="refuses to split") as error:
        run_kedro("domain_split")
    assert "validation" in str(error.value)
    assert not (kedro_project / "data" / "05_model_input" / "split_images.parquet").exists()


def test_unknown_perturbation_name_fails_before_splitting(
    kedro_project: Path, run_kedro: Callable[..., dict[str, Any]]
) -> None:
    _write_tables(kedro_project)
    _write_validation_summary(kedro_project, success=True)
    with pytest.raises(Exception, match="not_a_perturbation"):
        run_kedro(
            "domain_split", params={"domain_split": {"image_perturbations": ["not_a_perturbation"]}}
        )
    assert not (kedro_project / "data" / "05_model_input" / "split_images.parquet").exists()


def test_ingestion_validation_then_domain_split_on_synthrad(
    kedro_project: Path, run_kedro: Callable[..., dict[str, Any]]
) -> None:
    run_kedro("ingestion")
    run_kedro("validation")
    report = json.loads(
        (kedro_project / "data" / "08_reporting" / "validation_summary.json").read_text()
    )
    assert report["success"] is True
    run_kedro("domain_split")

    primary = pd.read_parquet(kedro_project / "data" / "03_primary" / "images.parquet")
    images = pd.read_parquet(kedro_project / "data" / "05_model_input" / "split_images.parquet")
    sites = set(primary["domain"])
    assert "site_d" in sites
    assert set(images["protocol"]) == {"in_domain", "cross_domain"} | {f"lodo:{s}" for s in sites}
    assert (images.groupby("protocol").size() == len(primary)).all()
    cross = images[images["protocol"] == "cross_domain"]
    assert set(cross.loc[cross["split"] == "test", "domain"]) == {"site_d"}
    assert "site_d" not in set(cross.loc[cross["split"] != "test", "domain"])
    for name in ("split_pairs", "split_vqa", "split_classification"):
        records = pd.read_parquet(kedro_project / "data" / "05_model_input" / f"{name}.parquet")
        joined = records.merge(images, on=["protocol", "image_id"], suffixes=("", "_image"))
        assert len(joined) == len(records)
        assert (joined["split"] == joined["split_image"]).all()
    assert (kedro_project / "data" / "08_reporting" / "domain_split_counts.png").is_file()
