"""Ingest several sources into one set of unified tables."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from robust_mmr_pipeline.schema import PRIMARY_KEYS, TABLES, SourceTables, concat
from robust_mmr_pipeline.sources.common.bad_records import IngestionError, OnBadRecord
from robust_mmr_pipeline.sources.common.images import image_pixel_limit
from robust_mmr_pipeline.sources.common.records import find_duplicates
from robust_mmr_pipeline.validation.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE

logger = logging.getLogger(__name__)

DEFAULT_MAX_BAD_FRACTION = 0.01


class SourceLike(Protocol):
    kind: str
    root: str
    options: dict[str, Any]
    enabled: bool
    qa_statements: bool

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
            f"ingestion.sources[].root at your copy of {spec.kind} (or set "
            f"ingestion.roots.{spec.source_name}; see README, 'Real datasets')."
        )
    return read_source(
        spec.kind,
        root,
        spec.source_name,
        spec.options,
        on_bad_record,
        qa_statements=getattr(spec, "qa_statements", True),
    )


def records_read(tables: SourceTables) -> int:
    """Records a source yielded: rows of its largest record table (QA statements excluded,
    they are derived from the VQA records)."""
    pairs = tables.pairs[tables.pairs["text_kind"] != "qa_statement"]
    return max(len(tables.vqa), len(tables.classification), len(pairs))


def check_bad_fraction(
    tables: SourceTables, source: str, on_bad_record: OnBadRecord, max_fraction: float
) -> float:
    """The fraction of records of ``source`` that were rejected; under ``tolerate``, raise
    IngestionError when it exceeds ``max_fraction`` (naming the counts, the commonest reasons
    and the fix)."""
    rejected = len(tables.rejects)
    if not rejected:
        return 0.0
    total = rejected + records_read(tables)
    fraction = rejected / total
    if on_bad_record == "tolerate" and fraction > max_fraction:
        reasons = tables.rejects["reason"].value_counts().head(3)
        listed = "; ".join(f"{count} x {reason}" for reason, count in reasons.items())
        first = "; ".join(
            f"record {row.record!r} in {row.file}"
            for row in tables.rejects.head(3).itertuples(index=False)
        )
        raise IngestionError(
            f"{source}: {rejected} bad record(s), {fraction:.2%} of the {total} read, exceed "
            f"the tolerated max_bad_fraction = {max_fraction:.2%} (on_bad_record: tolerate). "
            f"Commonest reasons: {listed}. First bad: {first}. Fix: "
            "check that the source's root and options point at the release as published and "
            "repair the files; or raise max_bad_fraction for this source "
            "(ingestion.sources[].max_bad_fraction), or set on_bad_record: drop to keep going "
            "whatever the fraction (every bad record goes to data/03_primary/rejects.parquet)."
        )
    return fraction


def ingest_all(
    specs: Iterable[SourceLike],
    on_bad_record: OnBadRecord,
    max_bad_fraction: float | Callable[[Any], float] = DEFAULT_MAX_BAD_FRACTION,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    min_side: int | None = DEFAULT_MIN_SIDE,
) -> tuple[SourceTables, dict[str, str]]:
    """Read every enabled source; return the merged tables and each source's image root.

    ``max_bad_fraction`` (a number, or a function of the spec giving each source's bound)
    limits the rejected fraction per source under ``on_bad_record: tolerate``. An image with
    more than ``max_pixels`` pixels (validation.images.max_pixels) or a side below ``min_side``
    (validation.images.min_side) is a bad record, found from its header alone. Ids must be
    unique across sources (adapters prefix them with the source name); a clash stops the run
    naming both the id and the fix.
    """
    bound = max_bad_fraction if callable(max_bad_fraction) else lambda _spec: max_bad_fraction
    per_table: dict[str, list] = {name: [] for name in TABLES}
    roots: dict[str, str] = {}
    for spec in specs:
        if not spec.enabled:
            continue
        with image_pixel_limit(max_pixels, min_side):
            tables = read_one(spec, on_bad_record)
        fraction = check_bad_fraction(tables, spec.source_name, on_bad_record, bound(spec))
        roots[spec.source_name] = str(Path(spec.root).resolve())
        for name, frame in tables.as_dict().items():
            per_table[name].append(frame)
        logger.info(
            "Ingested %s (%s): %s",
            spec.source_name,
            spec.kind,
            ", ".join(f"{len(f)} {n}" for n, f in tables.as_dict().items()),
        )
        if len(tables.rejects):
            logger.warning(
                "%s: %d bad record(s) (%.2f%% of those read) were dropped into the rejects "
                "table (on_bad_record=%s); the validation report lists them.",
                spec.source_name,
                len(tables.rejects),
                100 * fraction,
                on_bad_record,
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
    return SourceTables(**merged), roots
