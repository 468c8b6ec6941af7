"""Answer normalisation, answer types, the train-only vocabulary and QA statements."""

from __future__ import annotations

import pandas as pd
import pytest

from robust_mmr_pipeline.sources.answers import (
    build_answer_vocabulary,
    is_yes_no,
    normalize_answer,
    normalize_answer_type,
    qa_statement,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Yes", "yes"),
        ("YES", "yes"),
        ("yes.", "yes"),
        (" Y ", "yes"),
        ("Nope", "no"),
        ("No!", "no"),
        ("Right  lung.", "right lung"),
        ("~15 minutes\tpotentially faster", "~15 minutes potentially faster"),
        ("5.6cm", "5.6cm"),
        ("3.4 cm", "3.4 cm"),
        (4, "4"),
        (2.0, "2"),
        ("T2", "t2"),
        ("'Liver'", "liver"),
        ("ＣＴ", "ct"),
        ("有", "有"),
        ("yes, in the left lung", "yes, in the left lung"),
    ],
)
def test_normalize_answer(raw: object, expected: str) -> None:
    assert normalize_answer(raw) == expected
    assert normalize_answer(normalize_answer(raw)) == expected


def test_answer_type() -> None:
    assert normalize_answer_type("CLOSED ") == "closed"
    assert normalize_answer_type("Open") == "open"
    assert normalize_answer_type("MAYBE") is None
    assert normalize_answer_type(1) is None
    assert is_yes_no("YES") and not is_yes_no("left")


def test_vocabulary_from_train_only() -> None:
    vqa = pd.DataFrame(
        {
            "answer": ["yes", "No", "no", "liver", "spleen", "kidney"],
            "split": ["train", "train", "train", "train", "val", "test"],
        }
    )
    assert build_answer_vocabulary(vqa) == {"no": 0, "liver": 1, "yes": 2}
    assert "kidney" not in build_answer_vocabulary(vqa, splits=("train", "val"))
    assert build_answer_vocabulary(vqa, min_count=2) == {"no": 0}
    with pytest.raises(ValueError, match="training rows only"):
        build_answer_vocabulary(vqa, splits=("train", "test"))


@pytest.mark.parametrize(
    ("question", "answer", "kind", "expected"),
    [
        (
            "Is there evidence of an aortic aneurysm?",
            "yes",
            "closed",
            "There is evidence of an aortic aneurysm.",
        ),
        ("Is there a fracture?", "No", "closed", "There is no fracture."),
        ("Is there any free air?", "yes", "closed", "There is free air."),
        (
            "Are there any other organs visualized?",
            "no",
            "closed",
            "There are no other organs visualized.",
        ),
        ("Is this an MRI?", "no", "closed", "This is not an MRI."),
        ("Is this image in the axial plane?", "yes", "closed", "This image is in the axial plane."),
        ("Is it enhancing?", "Yes", "closed", "It is enhancing."),
        (
            "Are regions of the brain infarcted?",
            "Yes",
            "closed",
            "Are regions of the brain infarcted? Yes.",
        ),
        ("What organ is enlarged?", "Liver", "open", "What organ is enlarged? Liver."),
        ("How many?", 4, "open", "How many? 4."),
    ],
)
def test_qa_statement(question: str, answer: object, kind: str, expected: str) -> None:
    assert qa_statement(question, answer, kind) == expected
