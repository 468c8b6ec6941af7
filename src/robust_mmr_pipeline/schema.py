"""The unified schema: every source (SynthRad or a published dataset) lands in these tables.

One row per record, stored as parquet. Images stay on disk; the ``images`` table holds their
path relative to the source root recorded in ``root`` of the ingestion parameters, so a table
plus its image folder is self-contained and relocatable.

Tables
------
images          image_id, source, path, modality, organ, domain, width, height, sha256
pairs           pair_id, image_id, text, text_kind (report | caption | qa_statement), style
vqa             qid, image_id, question, answer (normalised), answer_type (closed | open),
                question_type, split
classification  sample_id, image_id, text, label, split
rejects         source, file, record, reason  (records dropped on user request, never silently)

``domain`` is the key a domain split groups by: the acquisition site for SynthRad, the organ or
modality for real sets. ``split`` values are the source's official ones mapped to
``train | val | test``; ``unassigned`` marks records whose source has no official split (the
domain_split pipeline assigns them).

Retrieval reads ``pairs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa

SPLITS: tuple[str, ...] = ("train", "val", "test", "unassigned")
TEXT_KINDS: tuple[str, ...] = ("report", "caption", "qa_statement")
ANSWER_TYPES: tuple[str, ...] = ("closed", "open")

TABLES: dict[str, pa.Schema] = {
    "images": pa.schema(
        [
            ("image_id", pa.string()),
            ("source", pa.string()),
            ("path", pa.string()),
            ("modality", pa.string()),
            ("organ", pa.string()),
            ("domain", pa.string()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("sha256", pa.string()),
        ]
    ),
    "pairs": pa.schema(
        [
            ("pair_id", pa.string()),
            ("image_id", pa.string()),
            ("text", pa.string()),
            ("text_kind", pa.string()),
            ("style", pa.string()),
        ]
    ),
    "vqa": pa.schema(
        [
            ("qid", pa.string()),
            ("image_id", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("answer_type", pa.string()),
            ("question_type", pa.string()),
            ("split", pa.string()),
        ]
    ),
    "classification": pa.schema(
        [
            ("sample_id", pa.string()),
            ("image_id", pa.string()),
            ("text", pa.string()),
            ("label", pa.string()),
            ("split", pa.string()),
        ]
    ),
    "rejects": pa.schema(
        [
            ("source", pa.string()),
            ("file", pa.string()),
            ("record", pa.string()),
            ("reason", pa.string()),
        ]
    ),
}

PRIMARY_KEYS: dict[str, str] = {
    "images": "image_id",
    "pairs": "pair_id",
    "vqa": "qid",
    "classification": "sample_id",
}


class SchemaError(ValueError):
    """A table does not match the unified schema; the message names where and how to fix it."""


@dataclass(frozen=True)
class SourceTables:
    """What one source adapter returns: the unified tables (any may be empty) plus rejects."""

    images: pd.DataFrame
    pairs: pd.DataFrame
    vqa: pd.DataFrame
    classification: pd.DataFrame
    rejects: pd.DataFrame

    def as_dict(self) -> dict[str, pd.DataFrame]:
        return {name: getattr(self, name) for name in TABLES}


def empty(table: str) -> pd.DataFrame:
    """An empty frame with the table's columns and dtypes."""
    return TABLES[table].empty_table().to_pandas()


def conform(frame: pd.DataFrame, table: str, origin: str = "<memory>") -> pd.DataFrame:
    """Return ``frame`` with exactly the table's columns, in order, with the schema's dtypes.

    Raises SchemaError naming ``origin`` (the file or adapter the frame came from) when a
    column is missing or a value cannot be cast.
    """
    schema = TABLES[table]
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise SchemaError(
            f"{origin}: table '{table}' lacks column(s) {missing}; "
            f"expected columns {schema.names} (see robust_mmr_pipeline/schema.py)."
        )
    ordered = frame[schema.names].reset_index(drop=True)
    try:
        arrow = pa.Table.from_pandas(ordered, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SchemaError(
            f"{origin}: table '{table}' has a value that does not fit the unified schema: {exc}"
        ) from exc
    return arrow.to_pandas()


def concat(frames: list[pd.DataFrame], table: str) -> pd.DataFrame:
    """Concatenate conformed frames of one table (an empty list gives an empty table)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty(table)
    return conform(pd.concat(frames, ignore_index=True), table, origin=f"concat({table})")
