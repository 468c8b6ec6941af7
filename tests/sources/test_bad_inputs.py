"""Bad inputs that must be rejected one record at a time, naming the record and the fix.

A generic CSV source (``csv`` reader) with one good row per case and one bad row: a huge PNG
(rejected from its header, never decoded), an image symlinked out of the dataset folder, a
missing-value label such as ``NaN``, a byte that is not UTF-8. Under ``raise`` the bad row
stops ingestion with an IngestionError naming file, record, line and fix; under ``drop`` only
that row goes to the rejects table and every other row is kept.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fixtures import CSV_HEADER, assert_bad_record, csv_rows, write_csv, write_csv_pairs
from PIL import ImageFile

from robust_mmr_pipeline.sources import csv_pairs
from robust_mmr_pipeline.sources.common.bad_records import IngestionError
from robust_mmr_pipeline.sources.common.csv_rows import read_csv_rows, undecodable_bytes
from robust_mmr_pipeline.sources.common.images import image_pixel_limit
from robust_mmr_pipeline.sources.common.records import missing_value

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))
from validation_test_support import write_png_header

LABELLED = {"id_column": "id", "label_column": "label", "split_column": "split"}


def _with_row(root: Path, row: list[str]) -> Path:
    write_csv(root / "pairs.csv", CSV_HEADER, [*csv_rows(), row])
    return root


def test_huge_png_is_rejected_from_its_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_csv_pairs(tmp_path / "csv")
    write_png_header(root / "img" / "huge.png", 12000, 12000)
    _with_row(root, ["h1", "img/huge.png", "Huge film.", "normal", "train", "site_a"])
    decoded: list[str] = []
    original = ImageFile.ImageFile.load

    def spy(self):  # the good rows are decoded; the huge one must never be
        decoded.append(str(self.filename))
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    tables = assert_bad_record(
        csv_pairs.read,
        root,
        LABELLED,
        "12000 x 12000 = 144,000,000 pixels, above validation.images.max_pixels",
        "huge.png",
    )
    assert not any(name.endswith("huge.png") for name in decoded)
    assert "(row 4, line 5)" in tables.rejects.iloc[0]["record"]
    assert sorted(tables.classification["sample_id"]) == ["src:a1", "src:a2", "src:b1"]


def test_pixel_limit_follows_the_setting(tmp_path: Path) -> None:
    root = write_csv_pairs(tmp_path / "csv")  # 8 x 6 images: 48 pixels
    with image_pixel_limit(47):
        tables = csv_pairs.read(root, "src", LABELLED, "drop")
    assert len(tables.rejects) == 3 and len(tables.images) == 0
    with image_pixel_limit(48):
        assert len(csv_pairs.read(root, "src", LABELLED, "drop").images) == 3


def test_symlink_out_of_the_dataset_folder_is_rejected(tmp_path: Path) -> None:
    root = write_csv_pairs(tmp_path / "csv")
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes((root / "img" / "a1.png").read_bytes())
    (root / "img" / "link.png").symlink_to(secret)
    (root / "img" / "inside.png").symlink_to(root / "img" / "a1.png")  # a link inside: fine
    _with_row(root, ["l1", "img/link.png", "Linked film.", "normal", "train", "site_a"])
    tables = assert_bad_record(
        csv_pairs.read, root, LABELLED, "leaves the dataset folder", "link.png"
    )
    assert str(secret.resolve()) in tables.rejects.iloc[0]["reason"]
    _with_row(root, ["i1", "img/inside.png", "Same film.", "normal", "train", "site_a"])
    assert len(csv_pairs.read(root, "src", LABELLED, "raise").pairs) == 4


@pytest.mark.parametrize("label", ["NaN", "nan", "NA", "N/A", "null", "None", "#N/A"])
def test_missing_value_label_is_not_a_class(tmp_path: Path, label: str) -> None:
    root = _with_row(
        write_csv_pairs(tmp_path / "csv"),
        ["n1", "img/a1.png", "Chest film.", label, "train", "site_a"],
    )
    tables = assert_bad_record(
        csv_pairs.read, root, LABELLED, f"holds {label!r}, a missing value", "pairs.csv"
    )
    assert tables.rejects.iloc[0]["record"] == "n1 (row 4, line 5)"
    assert label not in set(tables.classification["label"])
    assert len(tables.classification) == 3


def test_empty_label_is_a_bad_record(tmp_path: Path) -> None:
    root = _with_row(
        write_csv_pairs(tmp_path / "csv"), ["e1", "img/a1.png", "Chest film.", " ", "train", "x"]
    )
    assert_bad_record(csv_pairs.read, root, LABELLED, "['label'] are empty", "pairs.csv")


def test_missing_value_markers() -> None:
    assert all(missing_value(v) for v in (None, float("nan"), "", "  NaN ", "n/a", "NULL"))
    assert not any(missing_value(v) for v in ("normal", "0", "nana", "None of the above", 0.0))


def _latin1_csv(root: Path, bom: bool = False) -> Path:
    """pairs.csv with 'Café' written in Latin-1 on the data row of line 3."""
    data = write_csv(root / "pairs.csv", CSV_HEADER, csv_rows()).read_bytes()
    data = data.replace(b"Right lower lobe opacity.", "Café au lait spots.".encode("latin-1"))
    (root / "pairs.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return root


@pytest.mark.parametrize("bom", [False, True], ids=["plain", "with-bom"])
def test_non_utf8_byte_costs_its_row_only(tmp_path: Path, bom: bool) -> None:
    root = _latin1_csv(write_csv_pairs(tmp_path / "csv"), bom)
    raw = (root / "pairs.csv").read_bytes()
    offset = raw.index(b"\xe9")
    assert undecodable_bytes(raw) == [offset]
    tables = assert_bad_record(
        csv_pairs.read,
        root,
        LABELLED,
        f"byte 0xE9 at line 3, byte offset {offset} is not UTF-8",
        "pairs.csv",
    )
    assert tables.rejects.iloc[0]["record"] == "a2 (row 2, line 3)"
    assert sorted(tables.classification["sample_id"]) == ["src:a1", "src:b1"]
    with pytest.raises(IngestionError, match=r"re-save the file as UTF-8") as caught:
        csv_pairs.read(root, "src", LABELLED, "raise")
    assert "re-download" not in str(caught.value)
    assert "'é'" in str(caught.value)  # what the byte reads as in cp1252


def test_bad_byte_inside_a_multiline_field_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    data = b'id,text\n1,"first line\nsecond \xff line"\n2,fine\n'
    path.write_bytes(data)
    rows = read_csv_rows(path, "src", ["id", "text"], "fix it")
    assert [r.line for r in rows] == [3, 4]
    offset = data.index(b"\xff")
    assert rows[0].problem.startswith(f"byte 0xFF at line 3, byte offset {offset} is not UTF-8")
    assert rows[0].fix and not rows[1].problem
    assert rows[1].values == {"id": "2", "text": "fine"}


def test_bad_byte_in_the_header_stops_even_under_drop(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"id,imag\xe9,text\n1,a.png,x\n")
    with pytest.raises(IngestionError, match=r"header row .* byte 0xE9 at line 1, byte offset 7"):
        read_csv_rows(path, "src", ["id"], "fix it")


@pytest.mark.parametrize("size", [(1, 1), (3, 200)])
def test_an_image_below_the_minimum_side_is_a_bad_record(tmp_path: Path, size) -> None:
    from fixtures import write_image

    root = write_csv_pairs(tmp_path / "csv")
    write_image(root / "img" / "dot.png", size=size)
    _with_row(root, ["d1", "img/dot.png", "A dot.", "normal", "train", "site_a"])
    tables = assert_bad_record(
        csv_pairs.read,
        root,
        LABELLED,
        f"image is too small: {size[0]} x {size[1]} pixels, a side below "
        "validation.images.min_side = 4",
        "dot.png",
    )
    with pytest.raises(IngestionError, match="replace it with the full image"):
        csv_pairs.read(root, "src", LABELLED, "raise")
    assert sorted(tables.classification["sample_id"]) == ["src:a1", "src:a2", "src:b1"]
    with image_pixel_limit(64_000_000, min_side=1):  # the setting decides
        assert len(csv_pairs.read(root, "src", LABELLED, "drop").rejects) == 0


def test_an_absolute_image_path_names_the_csv_file(tmp_path: Path) -> None:
    root = write_csv_pairs(tmp_path / "csv")
    _with_row(root, ["x1", str(root / "img" / "a1.png"), "Film.", "normal", "train", "site_a"])
    tables = assert_bad_record(csv_pairs.read, root, LABELLED, "is absolute", "pairs.csv")
    assert tables.rejects.iloc[0]["file"] == str(root / "pairs.csv")
    with pytest.raises(IngestionError, match=r"in \S*pairs\.csv: image path .* Fix: write image"):
        csv_pairs.read(root, "src", LABELLED, "raise")


def test_many_bad_rows_stream_into_the_rejects_table_in_order(tmp_path: Path) -> None:
    from robust_mmr_pipeline.sources.common.bad_records import BadRecords

    rows = 2 * BadRecords.BATCH_ROWS + 5  # three batches, the last one partial
    root = tmp_path / "csv"
    root.mkdir()
    lines = ["id,image,text"] + [f"{i},x" for i in range(rows)] + ["good,img.png,Fine."]
    (root / "pairs.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tables = csv_pairs.read(root, "src", {"id_column": "id", "require_images": False}, "drop")
    rejects = tables.rejects
    assert len(rejects) == rows and list(tables.pairs["pair_id"]) == ["src:good"]
    assert rejects["record"].iloc[0] == "0 (row 1, line 2)"
    assert rejects["record"].iloc[-1] == f"{rows - 1} (row {rows}, line {rows + 1})"
    assert set(rejects["file"]) == {str(root / "pairs.csv")} and set(rejects["source"]) == {"src"}
    assert set(rejects["reason"]) == {"malformed record: the row has 2 fields, the header 3"}
