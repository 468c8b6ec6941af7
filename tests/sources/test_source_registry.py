"""The reader registry and the shared helpers behind it (options, policy, names)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fixtures import (
    write_csv_pairs,
    write_iu_xray,
    write_melinda,
    write_roco,
    write_slake,
    write_vqa_med_2019,
    write_vqa_rad,
)

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.schema import TABLES, SourceTables
from robust_mmr_pipeline.sources.common.bad_records import IngestionError
from robust_mmr_pipeline.sources.common.records import infer_modality
from robust_mmr_pipeline.sources.registry import (
    SOURCE_OPTIONS,
    SOURCE_READERS,
    declared_yield,
    read_source,
)

WRITERS = {
    "vqa_rad": (write_vqa_rad, {}),
    "slake": (write_slake, {}),
    "vqa_med_2019": (write_vqa_med_2019, {}),
    "roco": (write_roco, {"splits": {"val": "validation", "test": "test"}}),
    "melinda": (write_melinda, {}),
    "iu_xray": (write_iu_xray, {}),
    "csv": (write_csv_pairs, {}),
}


def test_kinds() -> None:
    assert sorted(SOURCE_READERS) == sorted(WRITERS)
    assert sorted(SOURCE_OPTIONS) == sorted(WRITERS)
    assert "synthrad" not in SOURCE_READERS
    for options in SOURCE_OPTIONS.values():
        assert dataclasses.is_dataclass(options)
        assert options.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_every_kind_reads_its_fixture(kind: str, tmp_path: Path) -> None:
    writer, options = WRITERS[kind]
    root = writer(tmp_path / kind)
    tables = read_source(kind, root, f"my_{kind}", options, "raise")
    assert isinstance(tables, SourceTables)
    for name, frame in tables.as_dict().items():
        assert list(frame.columns) == TABLES[name].names
    assert len(tables.rejects) == 0
    assert len(tables.images) > 0
    assert tables.images["image_id"].str.startswith(f"my_{kind}:").all()
    assert tables.images["image_id"].is_unique
    for path in tables.images["path"]:
        assert not Path(path).is_absolute()
        assert (root / path).is_file()
    referenced = set(tables.pairs["image_id"]) | set(tables.vqa["image_id"])
    referenced |= set(tables.classification["image_id"])
    assert referenced <= set(tables.images["image_id"])
    for table, key in (("pairs", "pair_id"), ("vqa", "qid"), ("classification", "sample_id")):
        assert getattr(tables, table)[key].is_unique


def test_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(IngestionError, match=r"unknown source kind 'vqarad'.*'vqa_rad'"):
        read_source("vqarad", tmp_path, "x", {}, "raise")


def test_unknown_option_names_allowed_keys(tmp_path: Path) -> None:
    root = write_iu_xray(tmp_path / "iu")
    with pytest.raises(ParameterError) as caught:
        read_source("iu_xray", root, "iu", {"require_image": False}, "raise")
    message = str(caught.value)
    assert "options.require_image'" in message and "require_images" in message
    assert "pair_per" in message


def test_options_must_be_a_mapping(tmp_path: Path) -> None:
    root = write_iu_xray(tmp_path / "iu")
    with pytest.raises(
        ParameterError, match=r"options = \['require_images'\]: Input should be a dictionary"
    ):
        read_source("iu_xray", root, "iu", ["require_images"], "raise")  # type: ignore[arg-type]


def test_bad_policy_name_and_root(tmp_path: Path) -> None:
    root = write_iu_xray(tmp_path / "iu")
    with pytest.raises(IngestionError, match="on_bad_record"):
        read_source("iu_xray", root, "iu", {}, "skip")  # type: ignore[arg-type]
    with pytest.raises(IngestionError, match="not usable as an id prefix"):
        read_source("iu_xray", root, "my source", {}, "raise")
    with pytest.raises(IngestionError, match="does not exist"):
        read_source("iu_xray", tmp_path / "absent", "iu", {}, "raise")


def test_image_path_escaping_root_is_rejected(tmp_path: Path) -> None:
    root = write_csv_pairs(tmp_path / "csv")
    text = (root / "pairs.csv").read_text(encoding="utf-8").replace("img/b1.png", "../b1.png")
    (root / "pairs.csv").write_text(text, encoding="utf-8")
    tables = read_source("csv", root, "cs", {}, "drop")
    assert len(tables.rejects) == 1
    assert "leaves the dataset folder" in tables.rejects.iloc[0]["reason"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Axial computed tomography of the pelvis", "ct"),
        ("CT angiography of the aorta", "ct"),
        ("MR angiography of the circle of Willis", "mri"),
        ("FDG PET/CT fusion image", "nuclear"),
        ("Digital subtraction angiography (DSA)", "angiography"),
        ("Chest radiograph, PA view", "x-ray"),
        ("Transabdominal ultrasound of the liver", "ultrasound"),
        ("Barium swallow study", "fluoroscopy"),
        ("Right breast mammogram", "mammography"),
        ("Dosimetric results obtained with RapidArc", None),
    ],
)
def test_infer_modality(text: str, expected: str | None) -> None:
    assert infer_modality(text) == expected


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_declared_yield_matches_what_is_read(kind: str, tmp_path: Path) -> None:
    """Each reader's static declaration (what the requirements check trusts before reading)
    covers exactly the tables and text kinds its fixture gives, and its fixed domains."""
    writer, options = WRITERS[kind]
    root = writer(tmp_path / kind)
    tables = read_source(kind, root, kind, options, "raise")
    declared = declared_yield(kind, options)
    filled = {name for name in ("vqa", "classification", "pairs") if len(getattr(tables, name))}
    assert filled == set(declared.tables)
    assert set(tables.pairs["text_kind"]) == set(declared.text_kinds)
    assert declared.images == (len(tables.images) > 0)
    if declared.domains is not None:
        assert set(tables.images["domain"]) <= set(declared.domains)
    bare = declared_yield(kind, options, qa_statements=False)
    assert "qa_statement" not in bare.text_kinds


def test_declared_yield_of_synthrad_and_options() -> None:
    synth = declared_yield("synthrad", {"n_studies": 8})
    assert synth.domains == ("site_a", "site_b", "site_c", "site_d")
    assert synth.text_kinds == {"report", "caption"}
    text_only = declared_yield("roco", {"require_images": False})
    assert not text_only.images
    labelled = declared_yield("csv", {"label_column": "label", "text_kind": "report"})
    assert labelled.tables == {"pairs", "classification"} and labelled.domains == ("unknown",)
    with pytest.raises(IngestionError, match="unknown source kind"):
        declared_yield("vqarad")
