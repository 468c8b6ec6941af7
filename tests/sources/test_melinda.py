"""MELINDA reader: train/dev/test CSVs, a single annotation file, bad records."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import (
    MELINDA_HEADER,
    assert_bad_record,
    corrupt_image,
    melinda_rows,
    write_csv,
    write_melinda,
)

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.sources import melinda
from robust_mmr_pipeline.sources.common.bad_records import IngestionError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_melinda(tmp_path / "melinda")


def test_published_layout(root: Path) -> None:
    tables = melinda.read(root, "ml", {}, "raise")
    cls = tables.classification
    assert len(cls) == 5
    assert cls["split"].tolist() == ["train", "train", "train", "val", "test"]
    assert cls["sample_id"].tolist()[:2] == ["ml:train-0", "ml:train-1"]
    assert cls["label"].tolist()[0] == "Antibody"
    assert cls["text"].tolist()[1] == 'A "pull down" assay, with controls.'
    assert len(tables.pairs) == 5
    assert tables.pairs["pair_id"].tolist()[0] == "ml:train-0:caption"
    images = tables.images.set_index("image_id")
    assert len(images) == 4  # two rows share PMC1_fig1_a.jpg
    assert images.loc["ml:PMC1_fig1_a", "path"] == "melinda_images/PMC1_fig1_a.jpg"
    assert images.loc["ml:PMC2_fig2_b", "domain"] == "imaging technique"


def test_label_and_domain_columns(root: Path) -> None:
    tables = melinda.read(
        root, "ml", {"label_column": "i_meth_label", "domain_column": "p_meth_label"}, "raise"
    )
    assert tables.classification["label"].tolist()[0] == "Affinity chromatography"
    assert set(tables.images["domain"]) == {"antibody", "tag", "sequence"}
    with pytest.raises(ParameterError, match="leaves nothing to predict"):
        melinda.read(root, "ml", {"domain_column": "p_meth_label"}, "raise")


def test_single_annotation_file(root: Path) -> None:
    rows = [
        [*row, split]
        for split, rows in (
            ("train", melinda_rows()["train.csv"]),
            ("validation", melinda_rows()["dev.csv"]),
        )
        for row in rows
    ]
    write_csv(root / "all.csv", [*MELINDA_HEADER, "split"], rows)
    options = {"annotation_file": "all.csv", "split_column": "split"}
    tables = melinda.read(root, "ml", options, "raise")
    assert tables.classification["split"].tolist() == ["train"] * 3 + ["val"]
    plain = melinda.read(root, "ml", {"annotation_file": "all.csv"}, "raise")
    assert set(plain.classification["split"]) == {"unassigned"}


def test_unknown_split(root: Path) -> None:
    rows = [[*row, "holdout"] for row in melinda_rows()["test.csv"]]
    write_csv(root / "all.csv", [*MELINDA_HEADER, "split"], rows)
    options = {"annotation_file": "all.csv", "split_column": "split"}
    assert_bad_record(melinda.read, root, options, "unknown split value 'holdout'", "all.csv")


def test_missing_column(root: Path) -> None:
    write_csv(root / "dev.csv", ["figure_file", "caption"], [["PMC3_fig3.jpg", "x"]])
    with pytest.raises(IngestionError, match=r"dev\.csv lacks column\(s\) \['p_meth_label'"):
        melinda.read(root, "ml", {}, "drop")


def test_missing_image(root: Path) -> None:
    (root / "melinda_images" / "PMC4_fig4.jpg").unlink()
    assert_bad_record(melinda.read, root, {}, "image file is missing", "PMC4_fig4.jpg")


def test_corrupt_image(root: Path) -> None:
    corrupt_image(root / "melinda_images" / "PMC3_fig3.jpg")
    assert_bad_record(melinda.read, root, {}, "cannot be decoded", "PMC3_fig3.jpg")


def test_malformed_row(root: Path) -> None:
    rows = melinda_rows()["test.csv"] + [["PMC5", "PMC5.jpg", "", "a", "b", "c", "d"]]
    write_csv(root / "test.csv", MELINDA_HEADER, rows)
    assert_bad_record(melinda.read, root, {}, "['caption'] are empty", "test.csv")


def test_row_with_extra_field(root: Path) -> None:
    rows = melinda_rows()["test.csv"] + [["PMC5", "PMC5.jpg", "c", "a", "b", "c", "d", "x"]]
    write_csv(root / "test.csv", MELINDA_HEADER, rows)
    assert_bad_record(melinda.read, root, {}, "the row has 8 fields", "test.csv")


def test_duplicate_id(root: Path) -> None:
    options = {"id_column": "pmcid"}
    tables = assert_bad_record(
        melinda.read, root, options, "duplicate sample id 'src:PMC1'", "train"
    )
    assert tables.classification["sample_id"].tolist() == [
        "src:PMC1",
        "src:PMC2",
        "src:PMC3",
        "src:PMC4",
    ]


def test_text_only(root: Path) -> None:
    for image in (root / "melinda_images").iterdir():
        image.unlink()
    tables = melinda.read(root, "ml", {"require_images": False}, "raise")
    assert len(tables.images) == 0 and len(tables.classification) == 5
