"""IU X-ray (R2Gen annotation.json) reader: pairs per image or study, bad records, real split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import (
    assert_bad_record,
    corrupt_image,
    edit_json,
    require_shared,
    write_iu_xray,
)

from robust_mmr_pipeline.sources import iu_xray
from robust_mmr_pipeline.sources.common.bad_records import IngestionError

ANNOTATION = "annotation.json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_iu_xray(tmp_path / "iu")


def test_pairs_per_image(root: Path) -> None:
    tables = iu_xray.read(root, "iu", {}, "raise")
    assert len(tables.pairs) == 7
    first = tables.pairs.iloc[0]
    assert first["pair_id"] == "iu:train:CXR1_1_IM-0001:0"
    assert first["image_id"] == "iu:CXR1_1_IM-0001/0"
    assert first["text"] == "The heart is normal. No XXXX effusion."
    assert (first["text_kind"], first["style"]) == ("report", "iu_xray")
    images = tables.images.set_index("image_id")
    assert len(images) == 7
    row = images.loc["iu:CXR1_1_IM-0001/1"]
    assert row["path"] == "images/CXR1_1_IM-0001/1.png"
    assert (row["modality"], row["organ"], row["domain"]) == ("x-ray", "chest", "chest_xray")


def test_pairs_per_study(root: Path) -> None:
    tables = iu_xray.read(root, "iu", {"pair_per": "study"}, "raise")
    assert tables.pairs["pair_id"].tolist() == [
        "iu:train:CXR1_1_IM-0001",
        "iu:train:CXR2_1_IM-0002",
        "iu:val:CXR3_1_IM-0003",
        "iu:test:CXR4_1_IM-0004",
    ]
    assert len(tables.images) == 4


def test_text_only(root: Path) -> None:
    tables = iu_xray.read(
        root / ".." / "iu", "iu", {"images_dir": "absent", "require_images": False}, "raise"
    )
    assert len(tables.images) == 0 and len(tables.pairs) == 7
    with pytest.raises(IngestionError, match="require_images: false"):
        iu_xray.read(root, "iu", {"images_dir": "absent"}, "raise")


def test_missing_image_drops_that_pair_only(root: Path) -> None:
    (root / "images" / "CXR3_1_IM-0003" / "1.png").unlink()
    tables = assert_bad_record(iu_xray.read, root, {}, "image file is missing", "1.png")
    assert "src:val:CXR3_1_IM-0003:0" in set(tables.pairs["pair_id"])
    assert len(tables.pairs) == 6


def test_corrupt_image(root: Path) -> None:
    corrupt_image(root / "images" / "CXR4_1_IM-0004" / "0.png")
    assert_bad_record(iu_xray.read, root, {}, "cannot be decoded", "0.png")


def test_malformed_record(root: Path) -> None:
    edit_json(root / ANNOTATION, lambda d: d["val"][0].update(image_path=[]))
    assert_bad_record(iu_xray.read, root, {}, "image_path is an empty list", ANNOTATION)


def test_wrong_report_type(root: Path) -> None:
    edit_json(root / ANNOTATION, lambda d: d["test"][0].update(report=["a", "b"]))
    assert_bad_record(iu_xray.read, root, {}, "field 'report' is a list", ANNOTATION)


def test_unknown_split_key(root: Path) -> None:
    edit_json(root / ANNOTATION, lambda d: d.update(holdout=[d["test"].pop()]))
    assert_bad_record(iu_xray.read, root, {}, "unknown split value 'holdout'", ANNOTATION)


def test_split_field_disagrees(root: Path) -> None:
    edit_json(root / ANNOTATION, lambda d: d["val"][0].update(split="test"))
    assert_bad_record(iu_xray.read, root, {}, "unknown split value", ANNOTATION)


def test_duplicate_study(root: Path) -> None:
    edit_json(root / ANNOTATION, lambda d: d["test"].append(dict(d["train"][0])))
    edit_json(root / ANNOTATION, lambda d: d["test"][-1].update(split="test"))
    assert_bad_record(iu_xray.read, root, {}, "duplicate study id 'CXR1_1_IM-0001'", ANNOTATION)


def test_not_an_object(root: Path) -> None:
    (root / ANNOTATION).write_text(json.dumps([1, 2]), encoding="utf-8")
    with pytest.raises(IngestionError, match="R2Gen"):
        iu_xray.read(root, "iu", {}, "raise")


def test_truncated_json(root: Path) -> None:
    text = (root / ANNOTATION).read_text(encoding="utf-8")
    (root / ANNOTATION).write_text(text[:-20], encoding="utf-8")
    with pytest.raises(IngestionError, match=r"annotation\.json is not valid JSON.*line \d+"):
        iu_xray.read(root, "iu", {}, "drop")


@pytest.mark.shared_data
def test_real_r2gen_split() -> None:
    real = require_shared("iu_xray/annotation.json").parent
    tables = iu_xray.read(real, "iu_xray", {"require_images": False, "pair_per": "study"}, "raise")
    split_of = tables.pairs["pair_id"].str.split(":").str[1]
    assert split_of.value_counts().to_dict() == {"train": 3062, "val": 382, "test": 382}
    assert len(tables.rejects) == 0
    per_image = iu_xray.read(real, "iu_xray", {"require_images": False}, "raise")
    assert len(per_image.pairs) == 7430
    assert per_image.pairs["image_id"].is_unique
