"""Generic CSV reader: configurable columns, classification, bad records."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import (
    CSV_HEADER,
    assert_bad_record,
    corrupt_image,
    csv_rows,
    write_csv,
    write_csv_pairs,
)

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.sources import csv_pairs
from robust_mmr_pipeline.sources.common.bad_records import IngestionError

FULL = {
    "id_column": "id",
    "label_column": "label",
    "split_column": "split",
    "domain_column": "site",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_csv_pairs(tmp_path / "csv")


def test_minimal_columns(root: Path) -> None:
    tables = csv_pairs.read(root, "cs", {}, "raise")
    assert tables.pairs["pair_id"].tolist() == ["cs:pairs-0", "cs:pairs-1", "cs:pairs-2"]
    assert set(tables.pairs["style"]) == {"cs"}
    assert set(tables.pairs["text_kind"]) == {"caption"}
    assert len(tables.classification) == 0
    images = tables.images.set_index("image_id")
    assert images.loc["cs:img/a1", "path"] == "img/a1.png"
    assert set(images["domain"]) == {"unknown"}


def test_all_columns(root: Path) -> None:
    options = {**FULL, "text_kind": "report", "style": "hospital"}
    tables = csv_pairs.read(root, "cs", options, "raise")
    assert tables.classification["split"].tolist() == ["train", "val", "test"]
    assert tables.classification["sample_id"].tolist() == ["cs:a1", "cs:a2", "cs:b1"]
    assert tables.classification["label"].tolist() == ["normal", "pneumonia", "normal"]
    assert set(tables.pairs["style"]) == {"hospital"}
    assert set(tables.images["domain"]) == {"site_a", "site_b"}


def test_images_dir_and_delimiter(tmp_path: Path) -> None:
    root = write_csv_pairs(tmp_path / "csv")
    (root / "media").mkdir()
    (root / "img").rename(root / "media" / "img")
    text = (root / "pairs.csv").read_text(encoding="utf-8").replace(",", ";")
    (root / "pairs.csv").write_text(text, encoding="utf-8")
    tables = csv_pairs.read(root, "cs", {"images_dir": "media", "delimiter": ";"}, "raise")
    assert tables.images["path"].tolist()[0] == "media/img/a1.png"


def test_missing_image(root: Path) -> None:
    (root / "img" / "b1.png").unlink()
    assert_bad_record(csv_pairs.read, root, FULL, "image file is missing", "b1.png")


def test_corrupt_image(root: Path) -> None:
    corrupt_image(root / "img" / "a2.png")
    assert_bad_record(csv_pairs.read, root, FULL, "cannot be decoded", "a2.png")


def test_malformed_row(root: Path) -> None:
    rows = [*csv_rows(), ["c1", "img/a1.png", "  ", "normal", "train", "site_c"]]
    write_csv(root / "pairs.csv", CSV_HEADER, rows)
    assert_bad_record(csv_pairs.read, root, FULL, "['text'] are empty", "pairs.csv")


def test_unknown_split(root: Path) -> None:
    rows = [*csv_rows(), ["c1", "img/a1.png", "Text.", "normal", "later", "site_c"]]
    write_csv(root / "pairs.csv", CSV_HEADER, rows)
    assert_bad_record(csv_pairs.read, root, FULL, "unknown split value 'later'", "pairs.csv")


def test_duplicate_id(root: Path) -> None:
    rows = [*csv_rows(), ["a1", "img/a1.png", "Again.", "normal", "train", "site_a"]]
    write_csv(root / "pairs.csv", CSV_HEADER, rows)
    assert_bad_record(csv_pairs.read, root, FULL, "duplicate id 'src:a1'", "pairs.csv")


def test_missing_column(root: Path) -> None:
    with pytest.raises(IngestionError, match=r"lacks column\(s\) \['caption'\]"):
        csv_pairs.read(root, "cs", {"text_column": "caption"}, "raise")


def test_bad_option_type(root: Path) -> None:
    with pytest.raises(ParameterError, match=r"options\.require_images = 'maybe'.*boolean"):
        csv_pairs.read(root, "cs", {"require_images": "maybe"}, "raise")
    with pytest.raises(ParameterError, match="text_kind"):
        csv_pairs.read(root, "cs", {"text_kind": "tweet"}, "raise")
