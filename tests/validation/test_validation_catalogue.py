"""A catalogue of bad inputs, each producing its own clear validation failure or warning.

All cases are injected into one clean synthetic set (each into records of its own) and
validated in a single Great Expectations run; every case then checks that exactly its expected
checks fail for its records, and every failure's examples are attributable to some case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from validation_test_support import write_png_header

from robust_mmr_pipeline.schema import PRIMARY_KEYS, conform
from robust_mmr_pipeline.validation.config import PhiParams, ValidationParams
from robust_mmr_pipeline.validation.images import check_images
from robust_mmr_pipeline.validation.phi import scan_tables
from robust_mmr_pipeline.validation.report import (
    DataValidationError,
    failure_message,
    raise_if_fatal,
)
from robust_mmr_pipeline.validation.run import validate_all
from robust_mmr_pipeline.validation.synthetic import make_synthetic, write_image

SOURCE = "synthrad"  # promises disjoint splits (default validation.split_overlap)
OTHER = "leaky"  # does not
PUBLISHED = "published"  # opted out of the phi check (validation.phi.allowed_sources)


@dataclass
class Workspace:
    """Tables being broken, the image folders, and the rows each case appends."""

    tables: dict[str, pd.DataFrame]
    roots: dict[str, str]
    root: Path
    new_rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, **row: Any) -> None:
        self.new_rows.setdefault(table, []).append(row)

    def image(self, image_id: str, name: str, size: int = 48, source: str = SOURCE, **kw) -> None:
        row = {
            "image_id": image_id,
            "source": source,
            "path": name,
            "modality": "xray",
            "organ": "chest",
            "domain": "site_a",
            "width": size,
            "height": size,
            "sha256": "0" * 64,
        }
        self.add("images", **(row | kw))

    def first(self, table: str, split: str) -> dict[str, Any]:
        frame = self.tables[table]
        return frame[frame["split"] == split].iloc[0].to_dict()

    def image_of_split(self, split: str, skip: int) -> str:
        vqa = self.tables["vqa"]
        return str(vqa.loc[vqa["split"] == split, "image_id"].drop_duplicates().iloc[skip])


def _vqa_row(ws: Workspace, qid: str, image_id: str, **kw: Any) -> None:
    row = {
        "qid": qid,
        "image_id": image_id,
        "question": "Is there a pleural effusion?",
        "answer": "yes",
        "answer_type": "closed",
        "question_type": "presence",
        "split": "train",
    }
    ws.add("vqa", **(row | kw))


def _pair_row(ws: Workspace, pair_id: str, text: Any) -> None:
    image_id = str(ws.tables["images"]["image_id"].iloc[0])
    ws.add("pairs", pair_id=pair_id, image_id=image_id, text=text, text_kind="report", style="s")


# ------------------------------------------------------------------ the cases (marker returned)


def corrupt_jpeg(ws: Workspace) -> str:
    good = (ws.root / "img000001.jpg").read_bytes()
    data = bytearray(good)
    rng = np.random.default_rng(7)
    data[-400:-2] = rng.integers(0, 256, 398, dtype=np.uint8).tobytes()
    (ws.root / "bad_corrupt.jpg").write_bytes(bytes(data))
    ws.image("synthrad:bad_corrupt", "bad_corrupt.jpg")
    return "synthrad:bad_corrupt"


def corrupt_jpeg_header(ws: Workspace) -> str:
    data = bytearray((ws.root / "img000003.jpg").read_bytes())
    data[20:200] = bytes(range(180))
    (ws.root / "bad_header.jpg").write_bytes(bytes(data))
    ws.image("synthrad:bad_header", "bad_header.jpg")
    return "synthrad:bad_header"


def truncated_png(ws: Workspace) -> str:
    data = (ws.root / "img000000.png").read_bytes()
    (ws.root / "bad_trunc.png").write_bytes(data[: len(data) // 2])
    ws.image("synthrad:bad_trunc", "bad_trunc.png")
    return "synthrad:bad_trunc"


def zero_byte_file(ws: Workspace) -> str:
    (ws.root / "bad_zero.png").write_bytes(b"")
    ws.image("synthrad:bad_zero", "bad_zero.png")
    return "synthrad:bad_zero"


def missing_file(ws: Workspace) -> str:
    ws.image("synthrad:bad_missing", "no_such_file.png")
    return "synthrad:bad_missing"


def oversized_png(ws: Workspace) -> str:
    # a 12000 x 12000 header with a garbage IDAT: decoding it would fail, so only the size
    # check may fire (it reads the header and decodes nothing)
    write_png_header(ws.root / "bad_huge.png", 12000, 12000)
    ws.image("synthrad:bad_huge", "bad_huge.png", size=12000)
    return "synthrad:bad_huge"


def symlink_out_of_root(ws: Workspace) -> str:
    outside = ws.root.parent / "outside_secret.png"
    write_image(outside, 48, 97)
    (ws.root / "bad_link.png").symlink_to(outside)
    ws.image("synthrad:bad_link", "bad_link.png")
    return "synthrad:bad_link"


def missing_image_root(ws: Workspace) -> str:
    ws.image("ghost:img", "img000000.png", source="ghost")
    return "ghost:img"


def one_by_one_image(ws: Workspace) -> str:
    Image.new("L", (1, 1), 128).save(ws.root / "bad_tiny.png")
    ws.image("synthrad:bad_tiny", "bad_tiny.png", size=1)
    return "synthrad:bad_tiny"


def palette_image(ws: Workspace) -> str:
    Image.new("P", (48, 48)).save(ws.root / "bad_palette.png")
    ws.image("synthrad:bad_palette", "bad_palette.png")
    return "synthrad:bad_palette"


def size_mismatch(ws: Workspace) -> str:
    write_image(ws.root / "bad_dims.png", 48, 99)
    ws.image("synthrad:bad_dims", "bad_dims.png", width=40, height=40)
    return "synthrad:bad_dims"


def null_domain(ws: Workspace) -> str:
    write_image(ws.root / "bad_domain.png", 48, 98)
    ws.image("synthrad:bad_domain", "bad_domain.png", domain=None)
    return "synthrad:bad_domain"


def empty_report(ws: Workspace) -> str:
    _pair_row(ws, "bad:empty_report", "")
    return "bad:empty_report"


def blank_report(ws: Workspace) -> str:
    _pair_row(ws, "bad:blank_report", "   \n ")
    return "bad:blank_report"


def phi_like_string(ws: Workspace) -> str:
    _pair_row(ws, "bad:phi", "Seen by Dr. Smith on 03/14/2012, call (555) 123-4567.")
    return "bad:phi"


def phi_unlabelled_name(ws: Workspace) -> str:
    _pair_row(ws, "bad:phi_name", "Patient John Smith was referred for a chest radiograph.")
    return "bad:phi_name"


def phi_upper_case_title(ws: Workspace) -> str:
    _pair_row(ws, "bad:phi_title", "MR. JONES underwent CT of the abdomen.")
    return "bad:phi_title"


def phi_month_name_date(ws: Workspace) -> str:
    _pair_row(ws, "bad:phi_dob", "Date of birth 14-Mar-1962, male.")
    return "bad:phi_dob"


def phi_spaced_phone(ws: Workspace) -> str:
    _pair_row(ws, "bad:phi_phone", "Call the reading room at 555 123 4567.")
    return "bad:phi_phone"


def phi_ssn(ws: Workspace) -> str:
    _pair_row(ws, "bad:phi_ssn", "SSN 123-45-6789 was on the requisition.")
    return "bad:phi_ssn"


def phi_in_opted_out_source(ws: Workspace) -> str:
    _pair_row(ws, f"{PUBLISHED}:cap1", "CT of 14 March 2012 (courtesy of Dr. Alan Grant).")
    return f"{PUBLISHED}:cap1"


def replacement_character(ws: Workspace) -> str:
    _pair_row(ws, "bad:fffd", "The heart size is normal. It\ufffds a clear film.")
    return "bad:fffd"


def mojibake(ws: Workspace) -> str:
    _pair_row(ws, "bad:mojibake", "The patientâ€™s lungs are clear at 37Â°C.")
    return "bad:mojibake"


def lone_surrogate(ws: Workspace) -> str:
    _pair_row(ws, "bad:surrogate", "Bytes that were never UTF-8: \udce9t\udca0.")
    return "bad:surrogate"


def duplicate_id(ws: Workspace) -> str:
    row = ws.first("vqa", "val")
    ws.add("vqa", **row)
    return str(row["qid"])


def nan_answer(ws: Workspace) -> str:
    _vqa_row(ws, "bad:nan_answer", ws.image_of_split("train", 1), answer=np.nan)
    return "bad:nan_answer"


def unknown_split(ws: Workspace) -> str:
    _vqa_row(ws, "bad:split", ws.image_of_split("train", 2), split="training")
    return "bad:split"


def unknown_answer_type(ws: Workspace) -> str:
    _vqa_row(ws, "bad:answer_type", ws.image_of_split("train", 3), answer_type="boolean")
    return "bad:answer_type"


def unknown_image_reference(ws: Workspace) -> str:
    _vqa_row(ws, "bad:image_ref", "synthrad:no_such_image")
    return "bad:image_ref"


def out_of_vocabulary_answer(ws: Workspace) -> str:
    _vqa_row(ws, "bad:oov", ws.image_of_split("test", 1), split="test", answer="banana")
    return "bad:oov"


def train_test_overlap(ws: Workspace) -> str:
    image_id = ws.image_of_split("train", 4)
    _vqa_row(ws, "bad:leak", image_id, split="test")
    return image_id


def source_leaks_by_design(ws: Workspace) -> str:
    other_root = ws.root.parent / OTHER
    write_image(other_root / "a.png", 48, 5)
    ws.roots[OTHER] = str(other_root)
    ws.image(f"{OTHER}:a", "a.png", source=OTHER)
    _vqa_row(ws, f"{OTHER}:q1", f"{OTHER}:a", split="train")
    _vqa_row(ws, f"{OTHER}:q2", f"{OTHER}:a", split="test")
    return f"{OTHER}:a"


def rare_class(ws: Workspace) -> str:
    image_id = ws.image_of_split("train", 5)
    for i in range(2):
        ws.add(
            "classification",
            sample_id=f"bad:rare{i}",
            image_id=image_id,
            text="Chest radiograph.",
            label="rare_label",
            split="train",
        )
    return "rare_label"


def dropped_record(ws: Workspace) -> str:
    ws.add("rejects", source=SOURCE, file="annotations.json", record="bad:rec", reason="bad")
    return "bad:rec"


CASES: dict[str, tuple[Callable[[Workspace], str], set[str]]] = {
    "corrupt_jpeg": (corrupt_jpeg, {"image_decodes"}),
    "corrupt_jpeg_header": (corrupt_jpeg_header, {"image_decodes"}),
    "truncated_png": (truncated_png, {"image_decodes"}),
    "zero_byte_file": (zero_byte_file, {"image_decodes", "image_bytes"}),
    "missing_file": (missing_file, {"image_exists"}),
    "missing_image_root": (missing_image_root, {"image_exists"}),
    "oversized_png": (oversized_png, {"image_pixels"}),
    "symlink_out_of_root": (symlink_out_of_root, {"image_in_root"}),
    "one_by_one_image": (one_by_one_image, {"image_size"}),
    "palette_image": (palette_image, {"image_mode"}),
    "size_mismatch": (size_mismatch, {"image_dims_match"}),
    "null_domain": (null_domain, {"required_values"}),
    "empty_report": (empty_report, {"text_not_empty", "text_length"}),
    "blank_report": (blank_report, {"text_not_empty"}),
    "phi_like_string": (phi_like_string, {"phi"}),
    "phi_unlabelled_name": (phi_unlabelled_name, {"phi"}),
    "phi_upper_case_title": (phi_upper_case_title, {"phi"}),
    "phi_month_name_date": (phi_month_name_date, {"phi"}),
    "phi_spaced_phone": (phi_spaced_phone, {"phi"}),
    "phi_ssn": (phi_ssn, {"phi"}),
    "phi_in_opted_out_source": (phi_in_opted_out_source, {"phi_opted_out"}),
    "replacement_character": (replacement_character, {"text_encoding"}),
    "mojibake": (mojibake, {"text_encoding"}),
    "lone_surrogate": (lone_surrogate, {"text_encoding"}),
    "duplicate_id": (duplicate_id, {"ids_unique"}),
    "nan_answer": (nan_answer, {"text_not_empty"}),
    "unknown_split": (unknown_split, {"split_values"}),
    "unknown_answer_type": (unknown_answer_type, {"enum_values"}),
    "unknown_image_reference": (unknown_image_reference, {"image_refs_exist"}),
    "out_of_vocabulary_answer": (out_of_vocabulary_answer, {"answer_vocab"}),
    "train_test_overlap": (train_test_overlap, {"split_overlap"}),
    "source_leaks_by_design": (source_leaks_by_design, {"split_overlap_by_design"}),
    "rare_class": (rare_class, {"class_min_count"}),
    "dropped_record": (dropped_record, {"rejects"}),
}


def _append(ws: Workspace) -> dict[str, pd.DataFrame]:
    tables = dict(ws.tables)
    for table, rows in ws.new_rows.items():
        if table == "pairs":
            # a lone surrogate cannot be stored as Arrow/parquet text: keep it as Python str
            extra = pd.DataFrame(rows, dtype=object)
            base = tables[table].astype({"text": object})
            tables[table] = pd.concat([base, extra], ignore_index=True)
        else:
            extra = pd.DataFrame(rows)
            tables[table] = conform(pd.concat([tables[table], extra], ignore_index=True), table)
    return tables


def _validate(
    tables: dict[str, pd.DataFrame], roots: dict[str, str], params: ValidationParams
) -> dict[str, Any]:
    text = ("pairs", "vqa", "classification")
    image_checks = check_images(tables["images"], roots, workers=1)
    phi = scan_tables(
        tables,
        {t: list(params.text_columns(t)) for t in text},
        {t: PRIMARY_KEYS[t] for t in text},
        params.phi.patterns(),
    )
    return validate_all(tables, image_checks, phi, params)


def _values(record: dict[str, Any]) -> set[str]:
    return {str(v) for v in record.values() if v is not None}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, str]]:
    """The summary of one validation run over every case, and each case's marker."""
    root = tmp_path_factory.mktemp("catalogue") / SOURCE
    synthetic = make_synthetic(root, n_images=30, source=SOURCE)
    ws = Workspace(tables=synthetic.tables, roots=dict(synthetic.roots), root=root)
    markers = {name: build(ws) for name, (build, _) in CASES.items()}
    return _validate(_append(ws), ws.roots, _catalogue_params()), markers


def _catalogue_params() -> ValidationParams:
    return ValidationParams(
        max_examples=200,
        phi=PhiParams(allowed_sources={PUBLISHED: "captions of published, consented cases"}),
    )


def test_clean_synthetic_tables_pass_without_warnings(tmp_path: Path) -> None:
    synthetic = make_synthetic(tmp_path / SOURCE, n_images=20)
    summary = _validate(synthetic.tables, synthetic.roots, ValidationParams())
    failed = [(c["table"], c["check"], c["examples"][:1]) for c in summary["checks"]]
    failed = [f for f, c in zip(failed, summary["checks"], strict=True) if not c["success"]]
    assert summary["success"] and summary["warnings"] == 0, failed
    assert summary["phi"]["count"] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gives_its_clear_failure(catalogue, case: str) -> None:
    summary, markers = catalogue
    marker = markers[case]
    expected = CASES[case][1]
    hit = {
        c["check"]
        for c in summary["checks"]
        if not c["success"] and any(marker in _values(e) for e in c["examples"])
    }
    assert hit == expected, f"{case}: marker {marker!r} failed {hit}, expected {expected}"
    severities = _catalogue_params().severities()
    for check in summary["checks"]:
        if check["check"] in expected and not check["success"]:
            assert check["status"] == severities[check["check"]]
            assert check["unexpected_count"] is None or check["unexpected_count"] >= 1


def test_every_failure_is_explained_by_a_case(catalogue) -> None:
    summary, markers = catalogue
    known = set(markers.values())
    for check in summary["checks"]:
        if check["success"]:
            continue
        assert check["examples"], check
        for example in check["examples"]:
            assert _values(example) & known, (check["table"], check["check"], example)


def test_fatal_failure_message_names_table_expectation_count_and_examples(catalogue) -> None:
    summary, markers = catalogue
    assert not summary["success"]
    paths = {"markdown": Path("data/08_reporting/validation_report.md")}
    with pytest.raises(DataValidationError) as raised:
        raise_if_fatal(summary, paths)
    message = str(raised.value)
    assert message == failure_message(summary, paths)
    assert "validation_report.md" in message
    assert (
        "table 'vqa', check 'ids_unique' (expect_column_values_to_be_unique on column 'qid'): "
        "2 of " in message
    )
    assert markers["duplicate_id"] in message
    assert "table 'image_files', check 'image_exists'" in message
    assert "check 'text_encoding'" not in message  # a warning, not fatal


def test_empty_images_table_fails_row_count_and_references(tmp_path: Path) -> None:
    synthetic = make_synthetic(tmp_path / SOURCE, n_images=10)
    tables = dict(synthetic.tables)
    tables["images"] = tables["images"].iloc[0:0]
    summary = _validate(tables, synthetic.roots, ValidationParams())
    failed = {(c["table"], c["check"]) for c in summary["checks"] if not c["success"]}
    assert ("images", "row_count") in failed
    assert {("pairs", "image_refs_exist"), ("vqa", "image_refs_exist")} <= failed


def test_missing_column_and_severity_lists(tmp_path: Path) -> None:
    """A missing column fails once (columns); a check moved to warn warns; skipped checks vanish."""
    synthetic = make_synthetic(tmp_path / SOURCE, n_images=10)
    tables = dict(synthetic.tables)
    tables["vqa"] = tables["vqa"].drop(columns=["split"])
    duplicated = tables["classification"].iloc[[0]]
    tables["classification"] = conform(
        pd.concat([tables["classification"], duplicated], ignore_index=True), "classification"
    )
    fatal = [n for n in ValidationParams().fatal if n not in ("ids_unique", "phi")]
    params = ValidationParams(fatal=fatal, warn=["ids_unique"], skip=["phi", "text_length"])
    summary = _validate(tables, synthetic.roots, params)
    failed = [(c["table"], c["check"], c["status"]) for c in summary["checks"] if not c["success"]]
    assert failed == [("vqa", "columns", "fatal"), ("classification", "ids_unique", "warn")]
    columns = next(c for c in summary["checks"] if c["check"] == "columns" and not c["success"])
    assert columns["examples"][0]["missing"] == ["split"]
    assert summary["fatal_failures"] == 1 and summary["warnings"] == 1
    assert summary["by_check"]["ids_unique"]["severity"] == "warn"
    assert not summary["by_check"]["phi"]["evaluated"]
    assert all(c["check"] not in ("phi", "text_length") for c in summary["checks"])
