"""Shared helpers for source adapters: bad-record policy, image probing, id hygiene."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from PIL import Image, UnidentifiedImageError

from robust_mmr_pipeline.schema import conform

OnBadRecord = Literal["raise", "drop"]


class IngestionError(ValueError):
    """A source record cannot be ingested. The message names the file, the record and the fix."""


@dataclass
class BadRecords:
    """Collects bad records: raises at once under ``raise``, keeps them as rejects under ``drop``.

    ``drop`` never loses data silently: every dropped record is a row of the rejects table,
    which ingestion saves and counts.
    """

    source: str
    policy: OnBadRecord = "raise"
    rows: list[dict[str, str]] = field(default_factory=list)

    def report(self, file: str | Path, record: str, reason: str, fix: str) -> None:
        if self.policy == "raise":
            raise IngestionError(
                f"{self.source}: bad record {record!r} in {file}: {reason}. Fix: {fix} "
                "(or set on_bad_record: drop to move bad records to the rejects table)."
            )
        self.rows.append(
            {"source": self.source, "file": str(file), "record": str(record), "reason": reason}
        )

    def frame(self) -> pd.DataFrame:
        return conform(pd.DataFrame(self.rows, columns=["source", "file", "record", "reason"]),
                       "rejects")


@dataclass(frozen=True)
class ImageProbe:
    width: int
    height: int
    sha256: str


def probe_image(path: Path) -> ImageProbe:
    """Decode ``path`` fully (catching truncated files) and return its size and content hash.

    Raises OSError / UnidentifiedImageError / ValueError for unreadable images.
    """
    data = path.read_bytes()
    if not data:
        raise ValueError("zero-byte file")
    with Image.open(path) as img:
        img.load()
        width, height = img.size
    return ImageProbe(width=width, height=height, sha256=hashlib.sha256(data).hexdigest())


def probe_or_report(path: Path, record: str, bad: BadRecords) -> ImageProbe | None:
    """Probe an image, reporting a missing or unreadable file as a bad record."""
    if not path.is_file():
        bad.report(path, record, "image file is missing",
                   "restore the file or correct the image name in the annotation")
        return None
    try:
        return probe_image(path)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        bad.report(path, record, f"image cannot be decoded ({exc})",
                   "re-download or re-export the image")
        return None


def find_duplicates(frame: pd.DataFrame, key: str) -> list[str]:
    """The values of ``key`` that occur more than once."""
    counts = frame[key].value_counts()
    return sorted(counts[counts > 1].index.astype(str).tolist())
