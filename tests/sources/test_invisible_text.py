"""Invisible and reordering characters: a text made only of zero-width characters is empty (a
bad record, never the training pair ``'\\u200b? yes.'``), invisible characters inside a text
are removed, and bidirectional controls make the record a bad record naming the file, the
record, the character and the fix (the text would display in another order than it is
stored). Real readers on real files; the validation's expectations agree under Python's re and
RE2 (Arrow strings).
"""

from __future__ import annotations

import re

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from fixtures import (
    CSV_HEADER,
    assert_bad_record,
    csv_rows,
    edit_json,
    write_csv,
    write_csv_pairs,
    write_vqa_rad,
)

from robust_mmr_pipeline.sources import csv_pairs, vqa_rad
from robust_mmr_pipeline.sources.answers import normalize_answer
from robust_mmr_pipeline.sources.registry import read_source
from robust_mmr_pipeline.textnorm import is_blank, normalize_text, visible_char_pattern
from robust_mmr_pipeline.validation.suites import ENCODING_PATTERN

LABELLED = {"id_column": "id", "label_column": "label", "split_column": "split"}
VQA = {"id_column": "id", "text_column": None, "question_column": "q", "answer_column": "a",
       "split_column": "split"}  # fmt: skip


def _pairs_with(tmp_path, row: list[str]):
    root = write_csv_pairs(tmp_path / "csv")
    write_csv(root / "pairs.csv", CSV_HEADER, [*csv_rows(), row])
    return root


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u2060 \ufeff", "\u00ad", "\u3164"])
def test_a_text_of_invisible_characters_only_is_an_empty_record(tmp_path, text: str) -> None:
    root = _pairs_with(tmp_path, ["z1", "img/a1.png", text, "normal", "train", "site_a"])
    tables = assert_bad_record(
        csv_pairs.read, root, LABELLED, "column(s) ['text'] are empty", "pairs.csv"
    )
    assert "z1 (row 4, line 5)" in tables.rejects.iloc[0]["record"]
    if text.strip() and text != "\u3164":
        assert "once invisible characters (U+" in tables.rejects.iloc[0]["reason"]
    assert sorted(tables.pairs["pair_id"]) == ["src:a1", "src:a2", "src:b1"]


def test_a_zero_width_question_never_becomes_a_training_pair(tmp_path) -> None:
    root = write_csv_pairs(tmp_path / "csv")
    rows = [["q1", "img/a1.png", "Is there an effusion?", "no", "train"],
            ["q2", "img/a2.png", "\u200b", "yes.", "train"],
            ["q3", "img/b1.png", "Is the heart enlarged?", "\u200byes", "train"]]  # fmt: skip
    write_csv(root / "pairs.csv", ["id", "image", "q", "a", "split"], rows)
    tables = read_source("csv", root, "src", VQA, "drop")
    assert list(tables.rejects["record"]) == ["q2 (row 2, line 3)"]
    assert "column(s) ['q'] are empty" in tables.rejects.iloc[0]["reason"]
    assert "U+200B" in tables.rejects.iloc[0]["reason"]
    texts = list(tables.pairs["text"])
    assert texts and not any("\u200b" in t or t.startswith("?") for t in texts), texts
    assert sorted(tables.vqa["answer"]) == ["no", "yes"]  # '\u200byes' is the answer yes


def test_invisible_characters_inside_a_text_are_removed(tmp_path) -> None:
    text = "Clear\u200b lungs, no radio\u00adgraphic e\u0301ffusion\ufeff."
    root = _pairs_with(tmp_path, ["z1", "img/a1.png", text, "normal", "train", "site_a"])
    tables = csv_pairs.read(root, "src", LABELLED, "raise")
    stored = tables.pairs.set_index("pair_id").loc["src:z1", "text"]
    assert stored == "Clear lungs, no radiographic \u00e9ffusion."  # NFC, nothing invisible
    assert normalize_text("10\u2079/L, \u00bd") == "10\u2079/L, \u00bd"  # meaning kept (no NFKC)


@pytest.mark.parametrize("control", ["\u202e", "\u2067", "\u202a"])
def test_a_bidirectional_control_makes_a_bad_record(tmp_path, control: str) -> None:
    text = f"Impression: {control}on effusion{control} no."
    root = _pairs_with(tmp_path, ["z1", "img/a1.png", text, "normal", "train", "site_a"])
    tables = assert_bad_record(csv_pairs.read, root, LABELLED, f"U+{ord(control):04X}", "pairs.csv")
    reason = tables.rejects.iloc[0]["reason"]
    assert "column 'text' holds bidirectional control character(s)" in reason
    assert "displays in another order than it is stored" in reason
    with pytest.raises(Exception, match="remove the bidirectional control characters"):
        csv_pairs.read(root, "src", LABELLED, "raise")


def test_json_records_are_checked_the_same_way(tmp_path) -> None:
    root = write_vqa_rad(tmp_path / "vqa_rad")

    def blank_question(records: list) -> None:
        records[0]["question"] = "\u200b\u200d"

    edit_json(root / "VQA_RAD Dataset Public.json", blank_question)
    tables = assert_bad_record(
        vqa_rad.read, root, {}, "field 'question' is empty once invisible characters", "VQA_RAD"
    )
    assert "U+200B, U+200D" in tables.rejects.iloc[0]["reason"]

    def reordered_answer(records: list) -> None:
        records[0]["question"] = "Is there a mass?"
        records[0]["answer"] = "\u202eon"

    edit_json(root / "VQA_RAD Dataset Public.json", reordered_answer)
    assert_bad_record(
        vqa_rad.read, root, {}, "field 'answer' holds bidirectional control character(s) U+202E",
        "VQA_RAD",
    )  # fmt: skip


def test_normalised_answers_and_blankness() -> None:
    assert normalize_answer("\u200bYes\u200c.") == "yes"
    assert is_blank("\u200b \u2060\u3164") and not is_blank("\u200bno")


@pytest.mark.parametrize("text", ["\u200b", " \u200c\ufeff ", "\u00ad"])
def test_validation_sees_invisible_text_as_empty_under_re_and_re2(text: str) -> None:
    pattern = visible_char_pattern()
    assert re.search(pattern, text) is None
    assert not pc.match_substring_regex(pa.array([text]), pattern)[0].as_py()
    assert re.search(pattern, "a\u200b") and pc.match_substring_regex(pa.array(["a"]), pattern)[0]


def test_validation_flags_bidirectional_controls_under_re_and_re2() -> None:
    texts = pd.Series(["plain", "x\u202ey", "x\u2066y"], dtype="str")
    assert [bool(re.search(ENCODING_PATTERN, t)) for t in texts] == [False, True, True]
    assert texts.str.contains(ENCODING_PATTERN, regex=True).tolist() == [False, True, True]
