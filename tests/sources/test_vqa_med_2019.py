"""VQA-Med 2019 reader: per-category files, the test format, organ domain, bad records."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import (
    VQA_MED_TEST,
    VQA_MED_TRAIN,
    assert_bad_record,
    corrupt_image,
    write_vqa_med_2019,
)

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.sources import vqa_med_2019
from robust_mmr_pipeline.sources.common.bad_records import IngestionError

TRAIN_ORGAN = f"{VQA_MED_TRAIN}/QAPairsByCategory/C3_Organ_train.txt"
TEST_FILE = f"{VQA_MED_TEST}/VQAMed2019_Test_Questions_w_Ref_Answers.txt"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_vqa_med_2019(tmp_path / "vqamed")


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def test_published_layout(root: Path) -> None:
    tables = vqa_med_2019.read(root, "vm", {}, "raise")
    assert len(tables.vqa) == 8 + 4 + 2
    assert tables.vqa["split"].value_counts().to_dict() == {"train": 8, "val": 4, "test": 2}
    by_qid = tables.vqa.set_index("qid")
    row = by_qid.loc["vm:train:organ:synpic1"]
    assert row["answer"] == "lung, mediastinum, pleura"
    assert row["question_type"] == "organ"
    assert by_qid.loc["vm:train:modality:synpic2", "answer_type"] == "closed"
    assert by_qid.loc["vm:train:plane:synpic2", "answer_type"] == "open"
    test_row = by_qid.loc["vm:test:modality:synpic4"]
    assert test_row["question"] == "is this a t1 weighted image?"
    assert by_qid.loc["vm:test:abnormality:synpic5", "answer"] == "glioma#oligodendroglioma"


def test_images_domain_is_organ_system(root: Path) -> None:
    images = vqa_med_2019.read(root, "vm", {}, "raise").images.set_index("image_id")
    assert images.loc["vm:synpic1", "path"] == f"{VQA_MED_TRAIN}/Train_images/synpic1.jpg"
    assert images.loc["vm:synpic1", "domain"] == "lung, mediastinum, pleura"
    assert images.loc["vm:synpic1", "modality"] == "x-ray"
    assert images.loc["vm:synpic3", "modality"] == "mri"
    assert images.loc["vm:synpic2", "modality"] == "unknown"  # yes/no modality answer
    assert images.loc["vm:synpic4", "domain"] == "unknown"  # test image, no organ question


def test_categories_and_splits_options(root: Path) -> None:
    tables = vqa_med_2019.read(
        root, "vm", {"categories": ["modality", "organ", "plane"], "splits": ["train"]}, "raise"
    )
    assert len(tables.vqa) == 6
    assert set(tables.vqa["question_type"]) == {"modality", "organ", "plane"}
    with pytest.raises(ParameterError, match="categories must be"):
        vqa_med_2019.read(root, "vm", {"categories": ["colour"]}, "raise")


def test_missing_split_folder(root: Path) -> None:
    for path in sorted((root / VQA_MED_TEST).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (root / VQA_MED_TEST).rmdir()
    with pytest.raises(IngestionError, match="leave 'test' out of the `splits` option"):
        vqa_med_2019.read(root, "vm", {}, "raise")
    assert len(vqa_med_2019.read(root, "vm", {"splits": ["train", "val"]}, "raise").vqa) == 12


def test_missing_image(root: Path) -> None:
    (root / VQA_MED_TEST / "VQAMed2019_Test_Images" / "synpic5.jpg").unlink()
    assert_bad_record(vqa_med_2019.read, root, {}, "image file is missing", "synpic5.jpg")


def test_corrupt_image_rejects_every_question(root: Path) -> None:
    corrupt_image(root / VQA_MED_TRAIN / "Train_images" / "synpic1.jpg")
    tables = vqa_med_2019.read(root, "vm", {}, "drop")
    assert len(tables.rejects) == 4
    assert "vm:synpic1" not in set(tables.images["image_id"])


def test_malformed_line(root: Path) -> None:
    _append(root / TRAIN_ORGAN, "synpic9|what organ?")
    assert_bad_record(vqa_med_2019.read, root, {}, "expected 3 non-empty", "C3_Organ_train")


def test_unknown_test_category(root: Path) -> None:
    _append(root / TEST_FILE, "synpic4|colour|what colour?|grey")
    assert_bad_record(vqa_med_2019.read, root, {}, "category 'colour'", "Ref_Answers")


def test_duplicate_question(root: Path) -> None:
    _append(root / TRAIN_ORGAN, "synpic1|which organ system is shown?|musculoskeletal")
    tables = assert_bad_record(
        vqa_med_2019.read, root, {}, "duplicate qid 'src:train:organ:synpic1'", "C3_Organ_train"
    )
    assert len(tables.vqa) == 14
