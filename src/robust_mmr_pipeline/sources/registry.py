"""Readers of published formats by kind name, with one uniform signature.

Every reader is ``read(root, name, options, on_bad_record) -> SourceTables``:

- ``root``: the folder of the dataset copy as published (image paths in the images table are
  relative to it);
- ``name``: the source name, which prefixes every id the source produces;
- ``options``: the reader's options as a mapping (from ``conf/``); each adapter declares them
  as a frozen dataclass (:data:`SOURCE_OPTIONS`), and unknown keys or wrong types raise
  :class:`~robust_mmr_pipeline.sources._common.IngestionError` naming the key and the allowed
  keys;
- ``on_bad_record``: ``raise`` (stop at the first bad record with a message naming the file,
  the record and the fix) or ``drop`` (move bad records to the rejects table).

SynthRad is not listed here: it is generated, not read, and the ingestion pipeline handles it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources import (
    csv_pairs,
    iu_xray,
    melinda,
    roco,
    slake,
    vqa_med_2019,
    vqa_rad,
)
from robust_mmr_pipeline.sources._common import IngestionError, OnBadRecord, check_policy

Reader = Callable[[Path, str, Any, OnBadRecord], SourceTables]

SOURCE_READERS: dict[str, Reader] = {
    "vqa_rad": vqa_rad.read,
    "slake": slake.read,
    "vqa_med_2019": vqa_med_2019.read,
    "roco": roco.read,
    "melinda": melinda.read,
    "iu_xray": iu_xray.read,
    "csv": csv_pairs.read,
}

SOURCE_OPTIONS: dict[str, type] = {
    "vqa_rad": vqa_rad.VqaRadOptions,
    "slake": slake.SlakeOptions,
    "vqa_med_2019": vqa_med_2019.VqaMed2019Options,
    "roco": roco.RocoOptions,
    "melinda": melinda.MelindaOptions,
    "iu_xray": iu_xray.IuXrayOptions,
    "csv": csv_pairs.CsvPairsOptions,
}


def known_kinds() -> list[str]:
    """The kind names :func:`read_source` accepts."""
    return sorted(SOURCE_READERS)


def read_source(
    kind: str,
    root: Path | str,
    name: str,
    options: Mapping[str, Any] | None = None,
    on_bad_record: OnBadRecord = "raise",
) -> SourceTables:
    """Read one dataset copy of format ``kind`` into the unified tables.

    Raises IngestionError for an unknown kind (listing the known kinds), unknown or ill-typed
    options (naming the key and the allowed keys), a missing folder or annotation file, an
    undecodable annotation file, and — under ``on_bad_record: raise`` — the first bad record.
    """
    reader = SOURCE_READERS.get(kind)
    if reader is None:
        raise IngestionError(
            f"unknown source kind {kind!r}; known kinds: {known_kinds()} (synthrad is handled "
            "by the ingestion pipeline itself)."
        )
    return reader(Path(root), name, options, check_policy(on_bad_record))
