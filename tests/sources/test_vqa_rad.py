"""VQA-RAD reader: official and MEVF formats, ids, bad records, the real release."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fixtures import (
    assert_bad_record,
    corrupt_image,
    edit_json,
    require_shared,
    vqa_rad_official_records,
    write_vqa_rad,
)
from PIL import Image

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.schema import TABLES
from robust_mmr_pipeline.sources import registry, vqa_rad
from robust_mmr_pipeline.sources.common.bad_records import IngestionError

OFFICIAL = "VQA_RAD Dataset Public.json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_vqa_rad(tmp_path / "vqa_rad")


def test_official_format(root: Path) -> None:
    tables = vqa_rad.read(root, "vr", {}, "raise")
    assert list(tables.vqa.columns) == TABLES["vqa"].names
    assert len(tables.vqa) == 6 and len(tables.rejects) == 0
    by_qid = tables.vqa.set_index("qid")
    assert by_qid.loc["vr:official:0", "split"] == "train"
    assert by_qid.loc["vr:official:1", "split"] == "train"  # para
    assert by_qid.loc["vr:official:4", "split"] == "test"  # test_freeform
    assert by_qid.loc["vr:official:5", "split"] == "test"  # test_para
    assert by_qid.loc["vr:official:1", "answer_type"] == "closed"  # "CLOSED " stripped
    assert by_qid.loc["vr:official:2", "answer"] == "4"  # JSON integer answer
    assert by_qid.loc["vr:official:3", "answer"] == "right lung"
    assert by_qid.loc["vr:official:3", "question_type"] == "POS, PRES"
    assert by_qid.loc["vr:official:0", "image_id"] == "vr:synpic100"


def test_images_table(root: Path) -> None:
    tables = vqa_rad.read(root, "vr", {}, "raise")
    images = tables.images.set_index("image_id")
    assert sorted(images.index) == ["vr:synpic100", "vr:synpic200", "vr:synpic300"]
    row = images.loc["vr:synpic200"]
    assert row["path"] == "images/synpic200.jpg"
    assert (row["organ"], row["domain"], row["modality"]) == ("chest", "chest", "unknown")
    assert row["source"] == "vr"
    path = root / row["path"]
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with Image.open(path) as img:
        assert (row["width"], row["height"]) == img.size


def test_unreferenced_images_optional(root: Path) -> None:
    tables = vqa_rad.read(root, "vr", {"include_unreferenced_images": True}, "raise")
    images = tables.images.set_index("image_id")
    assert len(images) == 4
    assert images.loc["vr:synpic400", "domain"] == "unknown"


def test_the_reader_builds_no_pairs_itself(root: Path) -> None:
    """QA statements come from the registry for every VQA source (test_qa_statements.py)."""
    assert vqa_rad.read(root, "vr", {}, "raise").pairs.empty
    with pytest.raises(ParameterError, match=r"unknown key '.*options\.qa_pairs_from'"):
        vqa_rad.read(root, "vr", {"qa_pairs_from": "all"}, "raise")


def test_mevf_format(root: Path) -> None:
    tables = vqa_rad.read(root, "vr", {"split_format": "mevf"}, "raise")
    assert len(tables.vqa) == 4
    assert tables.vqa["split"].tolist() == ["train", "train", "train", "test"]
    assert tables.vqa["qid"].tolist() == ["vr:mevf:1", "vr:mevf:2", "vr:mevf:3", "vr:mevf:11"]


def test_missing_and_repeated_qids_get_deterministic_ids(root: Path) -> None:
    def edit(records: list[dict]) -> None:
        del records[2]["qid"]
        records[3]["qid"] = 1  # repeats qid 1 with different content

    edit_json(root / OFFICIAL, edit)
    first = vqa_rad.read(root, "vr", {}, "raise")
    second = vqa_rad.read(root, "vr", {}, "raise")
    qids = first.vqa["qid"].tolist()
    assert qids == second.vqa["qid"].tolist()
    assert "vr:official:official-i2" in qids
    assert "vr:official:1" in qids and "vr:official:1~official-i3" in qids
    assert first.vqa["qid"].is_unique


def test_mevf_qid_repeated_across_files(root: Path) -> None:
    edit_json(root / "mevf_split" / "testset.json", lambda r: r[0].update(qid=2))
    tables = vqa_rad.read(root, "vr", {"split_format": "mevf"}, "raise")
    assert "vr:mevf:2~test-i0" in tables.vqa["qid"].tolist()
    assert tables.vqa["qid"].is_unique


def test_missing_image(root: Path) -> None:
    (root / "images" / "synpic300.jpg").unlink()
    tables = vqa_rad.read(root, "vr", {}, "drop")
    # both records of the image are rejected, the image is decoded (looked up) once
    assert len(tables.rejects) == 2
    assert set(tables.rejects["reason"]) == {"image file is missing"}
    assert len(tables.vqa) == 4
    with pytest.raises(IngestionError, match=r"synpic300\.jpg.*image file is missing"):
        vqa_rad.read(root, "vr", {}, "raise")


def test_corrupt_image(root: Path) -> None:
    corrupt_image(root / "images" / "synpic100.jpg")
    tables = vqa_rad.read(root, "vr", {}, "drop")
    assert len(tables.rejects) == 2
    assert all("cannot be decoded" in r for r in tables.rejects["reason"])
    with pytest.raises(IngestionError, match="cannot be decoded"):
        vqa_rad.read(root, "vr", {}, "raise")


def test_malformed_record(root: Path) -> None:
    edit_json(root / OFFICIAL, lambda r: r[1].pop("question"))
    tables = assert_bad_record(vqa_rad.read, root, {}, "field 'question' is missing", OFFICIAL)
    assert len(tables.vqa) == 5


def test_wrong_type_record(root: Path) -> None:
    edit_json(root / OFFICIAL, lambda r: r[1].update(image_name=["synpic100.jpg"]))
    assert_bad_record(vqa_rad.read, root, {}, "field 'image_name' is a list", OFFICIAL)


def test_unknown_split(root: Path) -> None:
    edit_json(root / OFFICIAL, lambda r: r[0].update(phrase_type="validation_para"))
    assert_bad_record(vqa_rad.read, root, {}, "unknown split value", OFFICIAL)


def test_unknown_answer_type(root: Path) -> None:
    edit_json(root / OFFICIAL, lambda r: r[0].update(answer_type="MAYBE"))
    assert_bad_record(vqa_rad.read, root, {}, "neither CLOSED nor OPEN", OFFICIAL)


def test_duplicate_record(root: Path) -> None:
    edit_json(root / OFFICIAL, lambda r: r.append(dict(r[0])))
    tables = assert_bad_record(vqa_rad.read, root, {}, "duplicate record", OFFICIAL)
    assert len(tables.vqa) == 6


def test_malformed_json_file(root: Path) -> None:
    (root / OFFICIAL).write_text('[{"qid": 0,\n "image_name": }]', encoding="utf-8")
    with pytest.raises(IngestionError, match=r"not valid JSON.*line 2, column 16"):
        vqa_rad.read(root, "vr", {}, "drop")


def test_not_a_list(root: Path) -> None:
    (root / OFFICIAL).write_text('{"qid": 0}', encoding="utf-8")
    with pytest.raises(IngestionError, match="JSON list"):
        vqa_rad.read(root, "vr", {}, "raise")


def test_unknown_option(root: Path) -> None:
    with pytest.raises(ParameterError, match=r"options\.split' \(allowed there: .*split_format"):
        vqa_rad.read(root, "vr", {"split": "mevf"}, "raise")
    with pytest.raises(ParameterError, match=r"split_format = 'r2gen'.*'official' or 'mevf'"):
        vqa_rad.read(root, "vr", {"split_format": "r2gen"}, "raise")


def test_official_records_fixture_matches_release_quirks() -> None:
    records = vqa_rad_official_records()
    assert isinstance(records[0]["qid"], str) and isinstance(records[1]["qid"], int)
    assert records[1]["answer_type"] == "CLOSED "


@pytest.fixture(scope="module")
def real_root() -> Path:
    return require_shared("vqa_rad")


@pytest.mark.shared_data
def test_real_official(real_root: Path) -> None:
    assert len([p for p in (real_root / "images").iterdir() if p.suffix == ".jpg"]) == 315
    tables = vqa_rad.read(real_root, "vqa_rad", {"include_unreferenced_images": True}, "raise")
    assert len(tables.vqa) == 2248
    assert len(tables.images) == 315
    assert len(tables.rejects) == 0
    assert tables.vqa["qid"].is_unique
    assert tables.vqa["split"].value_counts().to_dict() == {"train": 1797, "test": 451}
    assert set(tables.images["domain"]) == {"head", "chest", "abd", "unknown"}
    assert set(tables.vqa["answer_type"]) == {"closed", "open"}
    assert tables.pairs.empty
    statements = registry.read_source("vqa_rad", real_root, "vqa_rad", {}, "raise").pairs
    assert len(statements) == 1797 and set(statements["text_kind"]) == {"qa_statement"}


@pytest.mark.shared_data
def test_real_mevf(real_root: Path) -> None:
    tables = vqa_rad.read(real_root, "vqa_rad", {"split_format": "mevf"}, "raise")
    assert tables.vqa["split"].value_counts().to_dict() == {"train": 3064, "test": 451}
    assert tables.vqa["qid"].is_unique
    assert len(tables.images) == 314
    assert len(tables.rejects) == 0
