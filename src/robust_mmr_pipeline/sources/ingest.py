"""Ingest several sources into one set of unified tables."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from robust_mmr_pipeline.schema import PRIMARY_KEYS, TABLES, SourceTables, concat
from robust_mmr_pipeline.sources._common import (
    IngestionError,
    OnBadRecord,
    find_duplicates,
    image_pixel_limit,
)
from robust_mmr_pipeline.validation.images import DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)


class SourceLike(Protocol):
    kind: str
    root: str
    options: dict[str, Any]
    enabled: bool

    @property
    def source_name(self) -> str: ...


def read_one(spec: SourceLike, on_bad_record: OnBadRecord) -> SourceTables:
    """Read (or, for SynthRad, generate) one source as unified tables."""
    root = Path(spec.root)
    if spec.kind == "synthrad":
        from robust_mmr_pipeline.params import parse
        from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad

        config = parse(SynthRadConfig, spec.options, "ingestion.sources[synthrad].options")
        return write_synthrad(config, root, source_name=spec.source_name)
    from robust_mmr_pipeline.sources.registry import read_source

    if not root.is_dir():
        raise IngestionError(
            f"{spec.source_name}: dataset folder {root} does not exist. Point "
            f"ingestion.sources[].root at your copy of {spec.kind} (see README, 'Real datasets')."
        )
    return read_source(spec.kind, root, spec.source_name, spec.options, on_bad_record)


def ingest_all(
    specs: Iterable[SourceLike],
    on_bad_record: OnBadRecord,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> tuple[SourceTables, dict[str, str]]:
    """Read every enabled source; return the merged tables and each source's image root.

    Ids must be unique across sources (adapters prefix them with the source name); a clash
    stops the run naming both the id and the fix. An image with more than ``max_pixels``
    pixels (validation.images.max_pixels) is a bad record, found from its header alone.
    """
    per_table: dict[str, list] = {name: [] for name in TABLES}
    roots: dict[str, str] = {}
    for spec in specs:
        if not spec.enabled:
            continue
        with image_pixel_limit(max_pixels):
            tables = read_one(spec, on_bad_record)
        roots[spec.source_name] = str(Path(spec.root).resolve())
        for name, frame in tables.as_dict().items():
            per_table[name].append(frame)
        logger.info(
            "Ingested %s (%s): %s",
            spec.source_name,
            spec.kind,
            ", ".join(f"{len(f)} {n}" for n, f in tables.as_dict().items()),
        )
    merged = {name: concat(frames, name) for name, frames in per_table.items()}
    for table, key in PRIMARY_KEYS.items():
        clashes = find_duplicates(merged[table], key)
        if clashes:
            raise IngestionError(
                f"table '{table}': {len(clashes)} {key}(s) occur in more than one record across "
                f"sources, e.g. {clashes[:5]}. Give each source a distinct `name` so its ids are "
                "prefixed, or remove the duplicated copy."
            )
    if len(merged["rejects"]):
        logger.warning(
            "%d bad record(s) were dropped into the rejects table (on_bad_record=drop).",
            len(merged["rejects"]),
        )
    return SourceTables(**merged), roots
