"""Tables, ids, splits, text and modality helpers shared by the readers."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from robust_mmr_pipeline.schema import SPLITS, SourceTables, conform, empty
from robust_mmr_pipeline.sources.common.bad_records import BadRecords
from robust_mmr_pipeline.textnorm import (
    normalize_text,
    text_problem,
)


def find_duplicates(frame: pd.DataFrame, key: str) -> list[str]:
    """The values of ``key`` that occur more than once."""
    counts = frame[key].value_counts()
    return sorted(counts[counts > 1].index.astype(str).tolist())


def make_tables(
    bad: BadRecords,
    *,
    images: pd.DataFrame | None = None,
    pairs: list[dict[str, Any]] | None = None,
    vqa: list[dict[str, Any]] | None = None,
    classification: list[dict[str, Any]] | None = None,
) -> SourceTables:
    """Conform the collected rows into :class:`SourceTables` (absent tables are empty)."""

    def table(rows: list[dict[str, Any]] | None, name: str) -> pd.DataFrame:
        if not rows:
            return empty(name)
        return conform(pd.DataFrame(rows), name, origin=bad.source)

    return SourceTables(
        images=images if images is not None else empty("images"),
        pairs=table(pairs, "pairs"),
        vqa=table(vqa, "vqa"),
        classification=table(classification, "classification"),
        rejects=bad.frame(),
    )


SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "unassigned": "unassigned",
}


def canonical_split(value: Any) -> str | None:
    """Map a split value (``train``, ``validation``, ``dev``, …) to the schema's splits."""
    if not isinstance(value, str):
        return None
    split = SPLIT_ALIASES.get(value.strip().lower())
    return split if split in SPLITS else None


# Spellings of "no value" that spreadsheets and pandas write into CSV cells (case-insensitive).
MISSING_VALUE_MARKERS: frozenset[str] = frozenset(
    {"", "nan", "-nan", "na", "n/a", "#n/a", "<na>", "nat", "null", "none"}
)


def missing_value(value: Any) -> bool:
    """Whether a cell means "no value": None, a float NaN, a blank string or a marker such as
    ``NaN``, ``NA``, ``N/A``, ``null`` or ``None`` (any case)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING_VALUE_MARKERS


def label_problem(value: Any, column: str) -> str:
    """Why ``value`` cannot be a class label ("" when it can): a missing label must not become
    a class called "NaN"."""
    if missing_value(value):
        return f"label column {column!r} holds {value!r}, a missing value, not a class name"
    return ""


def clean_text(text: str) -> str:
    """NFC, invisible format characters removed, runs of white space (tabs, newlines) collapsed
    to single spaces (:func:`robust_mmr_pipeline.textnorm.normalize_text`): a text made only of
    zero-width characters comes out empty."""
    return normalize_text(text)


def blank_columns_problem(raw: Mapping[str, str], blank: list[str]) -> str:
    """The bad-record reason of required columns that show nothing once cleaned, saying which
    invisible characters a non-empty one was made of."""
    details = [text_problem(raw[c], f"column {c!r}") for c in blank if raw[c].strip()]
    details = [d for d in details if d]
    return f"malformed record: column(s) {blank} are empty" + (
        f" ({'; '.join(details)})" if details else ""
    )


def value_text(value: Any) -> str:
    """A JSON scalar (string or number) as text; numbers keep their published digits."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class IdTracker:
    """Reports the second and later records that reuse an id as duplicates (first one kept)."""

    def __init__(self, bad: BadRecords, what: str = "id") -> None:
        self.bad = bad
        self.what = what
        self._seen: dict[str, str] = {}

    def first(self, key: str, file: str | Path, record: str) -> bool:
        """True the first time ``key`` is seen; report a duplicate bad record otherwise."""
        if key in self._seen:
            self.bad.report(
                file,
                record,
                f"duplicate {self.what} {key!r} (first seen at {self._seen[key]})",
                "remove the duplicated record or give it a distinct id",
            )
            return False
        self._seen[key] = record
        return True


# Modality keywords, checked in this order (the acquisition device wins over the technique:
# "CT angiography" is ct, "MR angiography" is mri, "PET/CT" is nuclear, a catheter angiogram is
# angiography).
_MODALITY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "mri",
        re.compile(
            r"\b(mri|mra|mrcp|mr|magnetic resonance|t1[- ]?weighted|t2[- ]?weighted|t1w|t2w|"
            r"flair|diffusion[- ]weighted|dwi)\b"
        ),
    ),
    (
        "nuclear",
        re.compile(
            r"\b(pet|spect|scintigraphy|scintigram|scintigraphic|nuclear medicine|"
            r"bone scan|fdg)\b"
        ),
    ),
    (
        "ct",
        re.compile(r"\b(ct|cta|cect|hrct|mdct|cbct|computed tomography|computed tomographic)\b"),
    ),
    (
        "ultrasound",
        re.compile(
            r"\b(ultrasound|ultrasonography|ultrasonographic|sonography|sonographic|sonogram|"
            r"echocardiography|echocardiogram|echocardiographic|transthoracic|transesophageal|"
            r"doppler|usg)\b"
        ),
    ),
    ("mammography", re.compile(r"\b(mammography|mammogram|mammograph|mammographic)\b")),
    (
        "angiography",
        re.compile(
            r"\b(angiography|angiogram|angiographic|arteriography|arteriogram|venography|"
            r"venogram|dsa)\b"
        ),
    ),
    (
        "fluoroscopy",
        re.compile(
            r"\b(fluoroscopy|fluoroscopic|barium|esophagram|oesophagram|cystography|"
            r"cystogram|urethrography|urethrogram|hysterosalpingography|arthrogram|"
            r"arthrography|cholangiogram|cholangiography|urogram|urography|pyelogram|"
            r"pyelography|myelogram|myelography|fistulogram|sialogram)\b"
        ),
    ),
    (
        "x-ray",
        re.compile(
            r"\b(x-ray|x-rays|xray|x ray|radiograph|radiographs|radiography|radiographic|"
            r"plain film|roentgenogram|orthopantomogram|panoramic|cephalogram)\b"
        ),
    ),
)

MODALITIES: tuple[str, ...] = (*(name for name, _ in _MODALITY_RULES), "other")


def infer_modality(*texts: str) -> str | None:
    """The imaging modality named in ``texts`` (searched in order), or None if none is named.

    Returns one of ``mri, nuclear, ct, ultrasound, mammography, angiography, fluoroscopy,
    x-ray``; the rules are checked in that order within each text, and the first text that
    names a modality decides (so callers pass the most reliable text first).
    """
    for text in texts:
        lowered = text.lower()
        for name, pattern in _MODALITY_RULES:
            if pattern.search(lowered):
                return name
    return None
