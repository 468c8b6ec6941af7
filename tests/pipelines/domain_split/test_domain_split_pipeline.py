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
    # VQA-RAD-like: official train/test only, with one image asked in both (a source leak). The
    # leaked image, rad[1], is a chest image: in_domain (head is held out) holds it.
    vqa_rows += [(f"rq{i}", rad[i], ("yes", "no", "left")[i % 3], "train") for i in range(20)]
    vqa_rows += [(f"rq{i}", rad[i], "right", "test") for i in range(20, 30)]
    vqa_rows += [("rq-leak", rad[1], "right", "test")]
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


RECORD_MANIFESTS = {
    "split_pairs": "pair_id",
    "split_vqa": "qid",
    "split_classification": "sample_id",
}


def _read(project: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(project / "data" / "05_model_input" / f"{name}.parquet")


def _in_domain_reference(project: Path, tables: dict[str, pd.DataFrame]) -> pd.Series:
    """The in-domain split of EVERY labeled image: in_domain of the run's parameters, nothing
    held out (the corpus sources' images are pre-training's only).

    Built with the library rather than a second Kedro run: kedro-mlflow keeps logging a
    process's sessions into one run, which refuses a changed parameter value.
    """
    from kedro.framework.session import KedroSession

    from robust_mmr_pipeline.params import parse
    from robust_mmr_pipeline.pipelines.domain_split.params import DomainSplitParams
    from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
    from robust_mmr_pipeline.splits import build_splits

    with KedroSession.create(project_path=project, env="test") as session:
        loaded = session.load_context().params
    params = parse(DomainSplitParams, loaded["domain_split"], "domain_split")
    corpus = parse(IngestionParams, loaded["ingestion"], "ingestion").corpus_sources
    manifests = build_splits(
        tables["images"],
        tables["pairs"],
        tables["vqa"],
        tables["classification"],
        seed=params.seed,
        fractions=params.fractions,
        held_out_domains=[],
        leave_one_out_all=False,
        respect_official_splits=params.respect_official_splits,
        carve_val_from_train=params.carve_val_from_train,
        corpus_sources=corpus,
    )
    assert manifests.protocols == ["in_domain", "pretrain"]
    in_domain = manifests.images[manifests.images["protocol"] == "in_domain"]
    reference = in_domain.set_index("image_id")["split"]
    labeled = tables["images"][~tables["images"]["source"].isin(corpus)]
    assert sorted(reference.index) == sorted(labeled["image_id"])
    return reference


def _expected_splits(
    reference: pd.Series,
    domain_of: pd.Series,
    held_out: set[str],
    with_pretrain: bool = True,
    corpus: dict[str, str] | None = None,
) -> dict[str, dict[str, str]]:
    """Protocol -> {image_id: split} by the protocol definitions (splits/protocols.py).

    in_domain: the images outside ``held_out`` with their in-domain split. cross_domain and
    lodo:<d> (d held out): held-out images -> test, plus the in-domain train/val images of the
    other domains; in-domain test images are left out. pretrain: the in-domain train/val
    images outside ``held_out`` plus ``corpus`` ({image_id: "train"}).
    """
    corpus = corpus or {}
    train_val = reference[reference.isin(["train", "val"])]

    def leave_out(held: set[str]) -> dict[str, str]:
        return {**train_val[~train_val.index.isin(held)].to_dict(), **dict.fromkeys(held, "test")}

    expected = {
        "in_domain": reference[~reference.index.isin(held_out)].to_dict(),
        "cross_domain": leave_out(held_out),
    }
    if with_pretrain:
        expected["pretrain"] = {**train_val[~train_val.index.isin(held_out)].to_dict(), **corpus}
    labeled_domains = domain_of[~domain_of.index.isin(list(corpus))]
    for domain in sorted(set(labeled_domains)):
        expected[f"lodo:{domain}"] = leave_out(
            set(labeled_domains.index[labeled_domains == domain])
        )
    return expected


def _splits_by_protocol(images: pd.DataFrame) -> dict[str, dict[str, str]]:
    return {
        str(protocol): rows.set_index("image_id")["split"].to_dict()
        for protocol, rows in images.groupby("protocol")
    }


def _train_val_rows(frame: pd.DataFrame, protocol: str) -> pd.DataFrame:
    rows = frame[(frame["protocol"] == protocol) & frame["split"].isin(["train", "val"])]
    return rows.drop(columns="protocol").reset_index(drop=True)


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
    assert protocols == {"in_domain", "cross_domain", "pretrain"} | {
        f"lodo:{d}" for d in synth_sites | {"head", "chest", "abd"}
    }
    assert not images.duplicated(subset=["protocol", "image_id"]).any()
    cross = images[images["protocol"] == "cross_domain"]
    assert set(cross.loc[cross["split"] == "test", "domain"]) == {"site_d", "head"}
    assert not {"site_d", "head"} & set(cross.loc[cross["split"] != "test", "domain"])
    in_images = images[images["protocol"] == "in_domain"]
    assert not {"site_d", "head"} & set(in_images["domain"])
    assert _train_val_rows(cross, "cross_domain").equals(_train_val_rows(in_images, "in_domain"))
    in_test = set(in_images.loc[in_images["split"] == "test", "image_id"])
    assert in_test and not in_test & set(cross["image_id"])
    records = {name: _read(kedro_project, name) for name in RECORD_MANIFESTS}
    for name, frame in records.items():  # the shared train/val split, record for record
        assert _train_val_rows(frame, "cross_domain").equals(_train_val_rows(frame, "in_domain"))
        joined = frame.merge(images, on=["protocol", "image_id"], suffixes=("", "_image"))
        assert len(joined) == len(frame), name
        assert (joined["split"] == joined["split_image"]).all(), name

    vqa = records["split_vqa"]
    in_vqa = vqa[vqa["protocol"] == "in_domain"]
    assert "rq1" not in set(in_vqa["qid"])  # train record of the leaked image, excluded
    assert in_vqa.set_index("qid").loc["rq-leak", "split"] == "test"
    # The leaked image is an in-domain test image: not in cross_domain at all ...
    assert not {"rq1", "rq-leak"} & set(vqa.loc[vqa["protocol"] == "cross_domain", "qid"])
    # ... and a held-out (test) image of lodo:chest, which ignores official splits.
    chest = vqa[vqa["protocol"] == "lodo:chest"].set_index("qid")["split"]
    assert chest[["rq1", "rq-leak"]].tolist() == ["test", "test"]

    vocabulary = json.loads((model_input / "answer_vocabulary.json").read_text())
    assert set(vocabulary) == protocols
    train_answers = set(in_vqa.loc[in_vqa["split"] == "train", "answer"])
    assert set(vocabulary["in_domain"]) == train_answers
    assert "right" not in vocabulary["in_domain"]  # a test-only answer
    assert vocabulary["cross_domain"] == vocabulary["in_domain"]

    sets = pd.read_parquet(model_input / "perturbation_sets.parquet")
    image_names, text_names = _registry()
    assert set(sets["severity"]) == {1, 3, 5}  # conf/test/parameters_domain_split.yml
    assert set(sets.loc[sets["modality"] == "image", "perturbation"]) == set(image_names)
    assert set(sets.loc[sets["modality"] == "text", "perturbation"]) == set(text_names)
    tested = protocols - {"pretrain"}  # pre-training's protocol has no test split
    assert set(sets["protocol"]) == tested
    assert len(sets) == len(tested) * 3 * (len(image_names) + len(text_names))

    summary = pd.read_csv(reporting / "domain_split_summary.csv", keep_default_na=False)
    table = tables["images"]
    held = set(
        table.loc[
            ((table["source"] == "synthrad") & (table["domain"] == "site_d"))
            | ((table["source"] == "vqa_rad") & (table["domain"] == "head")),
            "image_id",
        ]
    )
    assert len(held) == 12 + 10
    in_domain = summary[summary["protocol"] == "in_domain"]
    assert in_domain["images"].sum() == len(table) - len(held)
    assert in_domain["leaked_images"].sum() == 1 and in_domain["vqa_excluded"].sum() == 1
    others = summary[summary["protocol"] != "in_domain"]
    assert others[["leaked_images", "vqa_excluded", "classification_excluded"]].sum().sum() == 0
    for column, frame in [("images", images)] + [
        (name.removeprefix("split_"), frame) for name, frame in records.items()
    ]:
        per_protocol = summary.groupby("protocol")[column].sum()
        counts = frame.groupby("protocol").size().reindex(per_protocol.index, fill_value=0)
        assert per_protocol.to_dict() == counts.to_dict(), column

    first = {name: (model_input / name).read_bytes() for name in MANIFEST_FILES}
    run_kedro("domain_split")
    second = {name: (model_input / name).read_bytes() for name in MANIFEST_FILES}
    assert first == second

    # Every protocol holds exactly the images its definition names, in their splits.
    reference = _in_domain_reference(kedro_project, tables)
    domain_of = table.set_index("image_id")["domain"]
    expected = _expected_splits(reference, domain_of, held)
    assert _splits_by_protocol(images) == expected
    # Records: those of the protocol's images, at their image's split. Only in_domain drops the
    # leaked train record rq1: its image rad[1] is an in-domain test image, so it is absent from
    # cross_domain and the other lodos, and a held-out image (every record kept) of lodo:chest.
    for name, key in RECORD_MANIFESTS.items():
        source = tables[name.removeprefix("split_")]
        for protocol, splits in expected.items():
            kept = source[source["image_id"].isin(splits)]
            if protocol == "in_domain":
                kept = kept[kept[key] != "rq1"]
            if protocol == "pretrain" and name != "split_pairs":
                kept = kept.iloc[:0]  # pre-training's protocol holds no labeled record
            wanted = dict(zip(kept[key], kept["image_id"].map(splits), strict=True))
            frame = records[name]
            rows = frame[frame["protocol"] == protocol].set_index(key)["split"].to_dict()
            assert rows == wanted, (name, protocol)


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
    assert set(images["protocol"]) == {"in_domain", "cross_domain", "pretrain"} | {
        f"lodo:{s}" for s in sites
    }
    # the unlabeled corpus (test env: 32 studies) is pre-training's only, never the held-out site
    pretrain = images[images["protocol"] == "pretrain"]
    corpus = pretrain[pretrain["image_id"].str.startswith("synthrad_corpus:")]
    assert len(corpus) == 32 and (corpus["split"] == "train").all()
    assert "site_d" not in set(corpus["domain"])
    assert (
        not images.loc[images["protocol"] != "pretrain", "image_id"]
        .str.startswith("synthrad_corpus:")
        .any()
    )
    assert not images.duplicated(subset=["protocol", "image_id"]).any()
    cross = images[images["protocol"] == "cross_domain"]
    assert set(cross.loc[cross["split"] == "test", "domain"]) == {"site_d"}
    assert "site_d" not in set(cross.loc[cross["split"] != "test", "domain"])
    assert _train_val_rows(images, "cross_domain").equals(_train_val_rows(images, "in_domain"))
    # SynthRad gives all records of a study one split: no leak, so no record is excluded.
    unified = {
        name: pd.read_parquet(kedro_project / "data" / "03_primary" / f"{name}.parquet")
        for name in ("pairs", "vqa", "classification")
    }
    official = pd.concat([unified["vqa"], unified["classification"]])
    official = official[official["split"] != "unassigned"]
    assert (official.groupby("image_id")["split"].nunique() == 1).all()
    split_records = {name: _read(kedro_project, name) for name in RECORD_MANIFESTS}
    assert (kedro_project / "data" / "08_reporting" / "domain_split_counts.png").is_file()

    held = set(primary.loc[primary["domain"] == "site_d", "image_id"])
    reference = _in_domain_reference(kedro_project, {"images": primary, **unified})
    corpus_images = primary[primary["source"] == "synthrad_corpus"]
    expected = _expected_splits(
        reference,
        primary.set_index("image_id")["domain"],
        held,
        corpus=dict.fromkeys(corpus_images["image_id"], "train"),
    )
    assert _splits_by_protocol(images) == expected
    assert expected["lodo:site_d"] == expected["cross_domain"]
    # Records: every record of an image in a protocol, at its image's split, and no other.
    for name, key in RECORD_MANIFESTS.items():
        frame = split_records[name]
        source = unified[name.removeprefix("split_")]
        assert not source.empty, name
        for protocol, splits in expected.items():
            rows = frame[frame["protocol"] == protocol].set_index(key)["split"].to_dict()
            if protocol == "pretrain" and name != "split_pairs":
                assert rows == {}, name  # pre-training's protocol holds no labeled record
                continue
            kept = source[source["image_id"].isin(splits)]
            wanted = dict(zip(kept[key], kept["image_id"].map(splits), strict=True))
            assert rows == wanted, (name, protocol)
