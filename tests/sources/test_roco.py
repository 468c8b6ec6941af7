"""ROCO reader: captions/keywords/licences, image naming, text-only mode, real captions."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import assert_bad_record, corrupt_image, require_shared, write_roco

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.sources import roco
from robust_mmr_pipeline.sources.common.bad_records import IngestionError

SPLITS = {"val": "validation", "test": "test"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_roco(tmp_path / "roco")


def test_published_layout(root: Path) -> None:
    tables = roco.read(root, "rc", {"splits": SPLITS}, "raise")
    assert len(tables.pairs) == 5 and len(tables.images) == 5
    texts = dict(zip(tables.pairs["pair_id"], tables.pairs["text"], strict=True))
    assert texts["rc:val:ROCO_00020"] == "Axial computed tomography scan of the pelvis."
    assert set(tables.pairs["text_kind"]) == {"caption"}
    assert set(tables.pairs["style"]) == {"roco"}
    images = tables.images.set_index("image_id")
    assert images.loc["rc:ROCO_00020", "path"] == "validation/images/PMC3970251_fig-003.jpg"
    domains = images["domain"].to_dict()
    assert domains == {
        "rc:ROCO_00020": "ct",
        "rc:ROCO_00027": "x-ray",
        "rc:ROCO_05014": "other",
        "rc:ROCO_00001": "mri",
        "rc:ROCO_00006": "ultrasound",
    }
    assert (images["modality"] == images["domain"]).all()


def test_roco_id_image_naming(tmp_path: Path) -> None:
    root = write_roco(tmp_path / "roco", image_naming="roco_id")
    (root / "test" / "licences.txt").unlink()
    tables = roco.read(root, "rc", {"splits": SPLITS, "image_naming": "roco_id"}, "raise")
    assert "test/images/ROCO_00001.jpg" in set(tables.images["path"])


def test_text_only(root: Path) -> None:
    for image in root.rglob("*.jpg"):
        image.unlink()
    (root / "test" / "licences.txt").unlink()
    tables = roco.read(root, "rc", {"splits": SPLITS, "require_images": False}, "raise")
    assert len(tables.images) == 0
    assert len(tables.pairs) == 5
    assert tables.pairs["image_id"].str.startswith("rc:ROCO_").all()


def test_missing_split_folder(root: Path) -> None:
    with pytest.raises(IngestionError, match=r"split 'train' does not exist"):
        roco.read(root, "rc", {}, "raise")


def test_missing_image(root: Path) -> None:
    (root / "test" / "images" / "PMC4840839_g02.jpg").unlink()
    tables = assert_bad_record(
        roco.read, root, {"splits": SPLITS}, "image file is missing", "PMC4840839_g02"
    )
    assert len(tables.pairs) == 4


def test_corrupt_image(root: Path) -> None:
    corrupt_image(root / "validation" / "images" / "PMC2766744_g005.jpg")
    assert_bad_record(roco.read, root, {"splits": SPLITS}, "cannot be decoded", "PMC2766744")


def test_malformed_caption_line(root: Path) -> None:
    with (root / "test" / "captions.txt").open("a", encoding="utf-8") as handle:
        handle.write("ROCO_00099 no tab here\n")
    assert_bad_record(roco.read, root, {"splits": SPLITS}, "malformed line", "captions.txt")


def test_missing_licence_row(root: Path) -> None:
    path = root / "test" / "licences.txt"
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n", encoding="utf-8")
    assert_bad_record(roco.read, root, {"splits": SPLITS}, "no licence row", "licences.txt")


def test_bad_licence_header(root: Path) -> None:
    (root / "test" / "licences.txt").write_text("id,file\n", encoding="utf-8")
    with pytest.raises(IngestionError, match="ROCO_ID,PMC_ID,CC"):
        roco.read(root, "rc", {"splits": SPLITS}, "drop")


def test_duplicate_roco_id(root: Path) -> None:
    with (root / "test" / "captions.txt").open("a", encoding="utf-8") as handle:
        handle.write("ROCO_00020\t Same id as a validation record.\n")
    assert_bad_record(
        roco.read, root, {"splits": SPLITS}, "duplicate ROCO_ID 'ROCO_00020'", "captions.txt"
    )


def test_splits_option_checked(root: Path) -> None:
    with pytest.raises(ParameterError, match="splits must map"):
        roco.read(root, "rc", {"splits": {"validation": "validation"}}, "raise")


@pytest.mark.shared_data
def test_real_radiology_captions() -> None:
    real = require_shared("roco_radiology_captions")
    tables = roco.read(real, "roco", {"splits": SPLITS, "require_images": False}, "raise")
    split_of = tables.pairs["pair_id"].str.split(":").str[1]
    assert split_of.value_counts().to_dict() == {"val": 8180, "test": 8179}
    assert len(tables.rejects) == 0
    assert len(tables.images) == 0
    assert not tables.pairs["text"].str.startswith(" ").any()
    assert tables.pairs["image_id"].is_unique
