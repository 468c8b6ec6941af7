"""SLAKE 1.0 reader: language filter, splits, modality domain, bad records."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fixtures import assert_bad_record, corrupt_image, edit_json, write_slake

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.sources import slake
from robust_mmr_pipeline.sources.common.bad_records import IngestionError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_slake(tmp_path / "slake")


def test_english_by_default(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        tables = slake.read(root, "sl", {}, "raise")
    assert "divide the images differently" in caplog.text
    assert tables.vqa["qid"].tolist() == ["sl:0", "sl:1", "sl:2", "sl:10", "sl:20"]
    assert tables.vqa["split"].tolist() == ["train", "train", "train", "val", "test"]
    by_qid = tables.vqa.set_index("qid")
    assert by_qid.loc["sl:1", "answer"] == "yes"
    assert by_qid.loc["sl:1", "answer_type"] == "closed"
    assert by_qid.loc["sl:0", "question_type"] == "Organ"
    images = tables.images.set_index("image_id")
    assert images.loc["sl:xmlab0", "path"] == "imgs/xmlab0/source.jpg"
    assert images.loc["sl:xmlab1", "domain"] == "x-ray"
    assert images.loc["sl:xmlab2", "modality"] == "mri"
    assert images.loc["sl:xmlab2", "organ"] == "head"
    assert len(tables.rejects) == 0


def test_chinese_and_all(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    zh = slake.read(root, "sl", {"q_lang": "zh"}, "raise")
    assert zh.vqa["qid"].tolist() == ["sl:3", "sl:11"]
    assert zh.vqa["answer"].tolist() == ["有", "ct"]
    with caplog.at_level(logging.WARNING):
        both = slake.read(root, "sl", {"q_lang": "all"}, "raise")
    assert len(both.vqa) == 7
    assert "leakage" in caplog.text


def test_hugging_face_validation_name(root: Path) -> None:
    (root / "validate.json").rename(root / "validation.json")
    tables = slake.read(root, "sl", {}, "raise")
    assert "val" in set(tables.vqa["split"])


def test_missing_file(root: Path) -> None:
    (root / "test.json").unlink()
    with pytest.raises(IngestionError, match=r"test\.json does not exist"):
        slake.read(root, "sl", {}, "drop")


def test_missing_image(root: Path) -> None:
    (root / "imgs" / "xmlab3" / "source.jpg").unlink()
    assert_bad_record(slake.read, root, {}, "image file is missing", "xmlab3")


def test_corrupt_image(root: Path) -> None:
    corrupt_image(root / "imgs" / "xmlab2" / "source.jpg")
    assert_bad_record(slake.read, root, {}, "cannot be decoded", "xmlab2")


def test_malformed_record(root: Path) -> None:
    edit_json(root / "test.json", lambda r: r[0].update(answer=None))
    assert_bad_record(slake.read, root, {}, "field 'answer' is missing", "test.json")


def test_unknown_language(root: Path) -> None:
    edit_json(root / "test.json", lambda r: r[0].update(q_lang="fr"))
    assert_bad_record(slake.read, root, {}, "neither 'en' nor 'zh'", "test.json")


def test_duplicate_qid(root: Path) -> None:
    edit_json(root / "test.json", lambda r: r[0].update(qid=0))
    tables = assert_bad_record(slake.read, root, {}, "duplicate qid 'src:0'", "test.json")
    assert "test" not in set(tables.vqa["split"])


def test_malformed_json(root: Path) -> None:
    (root / "validate.json").write_text('[\n  {"qid": 1,}\n]', encoding="utf-8")
    with pytest.raises(IngestionError, match=r"validate\.json is not valid JSON.*line 2"):
        slake.read(root, "sl", {}, "drop")


def test_unknown_option(root: Path) -> None:
    with pytest.raises(ParameterError, match=r"options\.lang'.*q_lang"):
        slake.read(root, "sl", {"lang": "en"}, "raise")
