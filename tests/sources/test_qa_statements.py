"""QA-statement pairs: one builder for every VQA source, from training records only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fixtures import (
    CSV_VQA_OPTIONS,
    write_csv_vqa,
    write_slake,
    write_vqa_med_2019,
    write_vqa_rad,
)

from robust_mmr_pipeline.params import ParameterError
from robust_mmr_pipeline.schema import TABLES, conform
from robust_mmr_pipeline.sources import csv_pairs, slake, vqa_med_2019, vqa_rad
from robust_mmr_pipeline.sources.qa_statements import qa_statement_pairs
from robust_mmr_pipeline.sources.registry import read_source

VQA_SOURCES = {
    "vqa_rad": (write_vqa_rad, {}, vqa_rad.read),
    "slake": (write_slake, {}, slake.read),
    "vqa_med_2019": (write_vqa_med_2019, {}, vqa_med_2019.read),
    "csv": (write_csv_vqa, CSV_VQA_OPTIONS, csv_pairs.read),
}


@pytest.mark.parametrize("kind", sorted(VQA_SOURCES))
def test_every_vqa_source_gets_statements_of_its_train_records(kind: str, tmp_path: Path) -> None:
    writer, options, reader = VQA_SOURCES[kind]
    root = writer(tmp_path / kind)
    assert reader(root, "src", options, "raise").pairs.empty  # no per-reader copy
    tables = read_source(kind, root, "src", options, "raise")
    statements = tables.pairs[tables.pairs["text_kind"] == "qa_statement"]
    train = tables.vqa[tables.vqa["split"] == "train"]
    assert len(train) and sorted(statements["pair_id"]) == sorted(train["qid"] + ":qa")
    assert list(tables.pairs.columns) == TABLES["pairs"].names
    assert set(statements["style"]) == {"src"}
    by_pair = statements.set_index("pair_id")["image_id"]
    assert (by_pair.loc[train["qid"] + ":qa"].to_numpy() == train["image_id"].to_numpy()).all()
    # val / test answers never become pre-training text
    assert not set(statements["pair_id"]) & set(tables.vqa["qid"][tables.vqa["split"] != "train"])
    off = read_source(kind, root, "src", options, "raise", qa_statements=False)
    assert off.pairs[off.pairs["text_kind"] == "qa_statement"].empty


def test_statement_text_and_unassigned_records() -> None:
    vqa = conform(
        pd.DataFrame(
            {
                "qid": ["s:1", "s:2", "s:3", "s:4"],
                "image_id": ["s:a", "s:a", "s:b", "s:c"],
                "question": [
                    "Is there evidence of a hemorrhage?",
                    "How many ribs are fractured?",
                    "What organ is shown?",
                    "Is this an MRI?",
                ],
                "answer": ["no", "4", "liver", "no"],
                "answer_type": ["closed", "open", "open", "closed"],
                "question_type": "",
                "split": ["train", "unassigned", "test", "val"],
            }
        ),
        "vqa",
    )
    pairs = qa_statement_pairs(vqa, "s")
    texts = dict(zip(pairs["pair_id"], pairs["text"], strict=True))
    # unassigned records follow their image to a split later, exactly like their statement
    assert texts == {
        "s:1:qa": "There is no evidence of a hemorrhage.",
        "s:2:qa": "How many ribs are fractured? 4.",
    }
    assert qa_statement_pairs(vqa[vqa["split"] == "test"], "s").empty


def test_vqa_csv_reader(tmp_path: Path) -> None:
    root = write_csv_vqa(tmp_path / "csv")
    tables = csv_pairs.read(root, "cv", CSV_VQA_OPTIONS, "raise")
    vqa = tables.vqa.set_index("qid")
    assert list(vqa.index) == ["cv:q1", "cv:q2", "cv:q3", "cv:q4"]
    assert vqa.loc["cv:q2", "answer"] == "left" and vqa.loc["cv:q2", "answer_type"] == "open"
    assert vqa.loc["cv:q3", "split"] == "val"
    assert tables.pairs.empty and tables.classification.empty
    assert set(tables.images["domain"]) == {"site_a", "site_b"}
    # without an answer-type column, yes / no answers are closed and the rest open
    options = {k: v for k, v in CSV_VQA_OPTIONS.items() if k != "answer_type_column"}
    guessed = csv_pairs.read(root, "cv", options, "raise").vqa.set_index("qid")["answer_type"]
    assert guessed.to_dict() == {
        "cv:q1": "closed",
        "cv:q2": "open",
        "cv:q3": "closed",
        "cv:q4": "open",
    }


def test_vqa_csv_bad_rows_and_options(tmp_path: Path) -> None:
    root = write_csv_vqa(tmp_path / "csv")
    text = (root / "vqa.csv").read_text(encoding="utf-8")
    (root / "vqa.csv").write_text(text.replace(",Liver,", ",.,"), encoding="utf-8")
    tables = csv_pairs.read(root, "cv", CSV_VQA_OPTIONS, "drop")
    assert tables.rejects["record"].str.startswith("q4").tolist() == [True]
    assert "blank once normalised" in tables.rejects["reason"].iloc[0]

    with pytest.raises(ParameterError, match="question_column and answer_column go together"):
        csv_pairs.read(root, "cv", {**CSV_VQA_OPTIONS, "answer_column": None}, "raise")
    with pytest.raises(ParameterError, match="set text_column"):
        csv_pairs.read(root, "cv", {"text_column": None}, "raise")
