"""Answer normalisation, answer types, the answer vocabulary and QA statements.

Normalisation follows what published VQA-RAD / SLAKE work does before building the answer
classes (M3AE lower-cases and strips the answer string before its VQA-glossary clean-up):

1. Unicode NFKC (full-width characters become ASCII), lower case;
2. whitespace (tabs, newlines, runs of spaces) collapsed to single spaces, ends stripped;
3. trailing punctuation (``. , ; : ! ?``) and surrounding quotes stripped;
4. yes/no variants (``Yes``, ``YES``, ``yes.``, ``y``, ``yeah``, ``nope`` …) mapped to
   ``yes`` / ``no``.

Numbers are kept as written (``5.6cm``, ``2``, ``t2``): number words are *not* turned into
digits, and a decimal point inside a number is never touched. Non-English answers (SLAKE's
Chinese set) pass through steps 1–3 only.

The answer vocabulary is built from training rows only: building it from train + test (as
M3AE's preprocessing does) leaks test answers into the classifier, a flaw METHOD.md asks us
to avoid.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable

import pandas as pd

from robust_mmr_pipeline.schema import ANSWER_TYPES
from robust_mmr_pipeline.textnorm import strip_invisible

YES_VARIANTS: frozenset[str] = frozenset({"yes", "y", "yeah", "yep", "yup", "yes yes"})
NO_VARIANTS: frozenset[str] = frozenset({"no", "n", "nope", "no no"})

_TRAILING = ".,;:!?"
_QUOTES = "\"'`"


def normalize_answer(answer: object) -> str:
    """The normalised form of one answer (see the module docstring for the steps).

    ``answer`` may be a string or a number (VQA-RAD stores a few counts as JSON integers);
    an integral float prints without its ``.0``.
    """
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    text = strip_invisible(unicodedata.normalize("NFKC", str(answer))).lower()
    text = " ".join(text.split())
    previous = None
    while previous != text:
        previous = text
        text = text.rstrip(_TRAILING).strip().strip(_QUOTES).strip()
    if text in YES_VARIANTS:
        return "yes"
    if text in NO_VARIANTS:
        return "no"
    return text


def normalize_answer_type(value: object) -> str | None:
    """``closed`` / ``open`` from a published answer_type (``CLOSED``, ``'CLOSED '``, ``Open``).

    Returns None for anything else, which adapters report as a malformed record.
    """
    if not isinstance(value, str):
        return None
    kind = value.strip().lower()
    return kind if kind in ANSWER_TYPES else None


def is_yes_no(answer: object) -> bool:
    """True when the normalised answer is ``yes`` or ``no``."""
    return normalize_answer(answer) in ("yes", "no")


def build_answer_vocabulary(
    vqa: pd.DataFrame, splits: Iterable[str] = ("train",), min_count: int = 1
) -> dict[str, int]:
    """Answer -> class index, from the rows of ``vqa`` whose split is in ``splits``.

    The answers are normalised again (idempotent), counted, filtered by ``min_count`` and
    ordered by decreasing frequency then alphabetically, so the mapping is deterministic.
    ``splits`` must not contain ``test``: the vocabulary must not see test answers.
    """
    chosen = tuple(splits)
    if "test" in chosen:
        raise ValueError(
            "build_answer_vocabulary: the answer vocabulary must come from training rows only "
            "(test answers would leak into the classifier); drop 'test' from splits."
        )
    if min_count < 1:
        raise ValueError(f"build_answer_vocabulary: min_count must be >= 1, got {min_count}.")
    missing = [c for c in ("answer", "split") if c not in vqa.columns]
    if missing:
        raise ValueError(f"build_answer_vocabulary: the vqa table lacks column(s) {missing}.")
    rows = vqa[vqa["split"].isin(chosen)]
    counts = Counter(normalize_answer(a) for a in rows["answer"])
    kept = sorted(
        (answer for answer, n in counts.items() if n >= min_count and answer),
        key=lambda a: (-counts[a], a),
    )
    return {answer: index for index, answer in enumerate(kept)}


_AUXILIARIES = frozenset({"is", "are", "was", "were"})
_PRONOUN_SUBJECTS = frozenset({"there", "it"})
_DEMONSTRATIVES = frozenset({"this", "that", "these", "those"})
_ARTICLES = frozenset({"a", "an", "the"})
_IMAGE_NOUNS = frozenset(
    {
        "image",
        "images",
        "film",
        "scan",
        "study",
        "radiograph",
        "x-ray",
        "mri",
        "ct",
        "patient",
        "lesion",
        "mass",
        "view",
        "picture",
    }
)


def qa_statement(question: str, answer: object, answer_type: str) -> str:
    """A declarative sentence from a QA pair, for image–text pre-training.

    Closed yes/no questions of the forms *Is/Are/Was/Were there|it …*, *Is this a/an/the …*
    and *Is this image/film/scan … …* become statements (``Is there a fracture?`` + no ->
    ``There is no fracture.``; ``Is this an MRI?`` + no -> ``This is not an MRI.``). Every
    other pair becomes ``"<question> <answer>."`` (``What organ is shown? Liver.``).
    """
    question_text = " ".join(str(question).split()).rstrip(" ?.")
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    answer_text = " ".join(str(answer).split())
    normalised = normalize_answer(answer)
    words = question_text.split()
    if answer_type == "closed" and normalised in ("yes", "no") and len(words) >= 3:
        aux, first = words[0].lower(), words[1].lower()
        subject: list[str] | None = None
        rest: list[str] = []
        if aux in _AUXILIARIES and first in _PRONOUN_SUBJECTS:
            subject, rest = [first], words[2:]
        elif aux in _AUXILIARIES and first in _DEMONSTRATIVES:
            second = words[2].lower()
            if second in _ARTICLES:
                subject, rest = [first], words[2:]
            elif second in _IMAGE_NOUNS and len(words) >= 4:
                subject, rest = [first, words[2]], words[3:]
        if subject is not None and rest:
            negation: list[str] = []
            if subject == ["there"] and rest[0].lower() == "any":
                rest = rest[1:]  # "Is there any X?" -> "There is (no) X."
            if normalised == "no":
                if subject == ["there"]:
                    if rest and rest[0].lower() in ("a", "an"):
                        rest = rest[1:]
                    negation = ["no"]
                else:
                    negation = ["not"]
            if rest:
                sentence = " ".join([*subject, aux, *negation, *rest])
                return sentence[0].upper() + sentence[1:] + "."
    answer_text = answer_text.rstrip(".")
    return f"{question_text}? {answer_text}." if answer_text else f"{question_text}?"
