"""Readers of published formats by kind name, with one uniform signature.

Every reader is ``read(root, name, options, on_bad_record) -> SourceTables``:

- ``root``: the folder of the dataset copy as published (image paths in the images table are
  relative to it);
- ``name``: the source name, which prefixes every id the source produces;
- ``options``: the reader's options as a mapping (from ``conf/``); each reader declares them
  as a frozen dataclass (its ``options_type``, :data:`SOURCE_OPTIONS`), and unknown keys or
  wrong types raise :class:`~robust_mmr_pipeline.sources.common.bad_records.IngestionError`
  naming the key and the allowed keys;
- ``on_bad_record``: ``raise`` (stop at the first bad record with a message naming the file,
  the record and the fix), ``drop`` or ``tolerate`` (move bad records to the rejects table;
  ingestion bounds the tolerated fraction).

:func:`read_source` adds the QA-statement pairs of every source's training VQA records
(:mod:`robust_mmr_pipeline.sources.qa_statements`), so readers never build them.
:func:`declared_yield` says what a configured source gives before it is read (every reader
declares it through its :class:`~robust_mmr_pipeline.sources.common.reader.SourceReader`), for
the data requirements check.

SynthRad is not read here: it is generated, not read, and the ingestion pipeline handles it
(:func:`declared_yield` knows it too).
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
from robust_mmr_pipeline.sources.common.bad_records import IngestionError, OnBadRecord, check_policy
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.qa_statements import TEXT_KIND as QA_STATEMENT
from robust_mmr_pipeline.sources.qa_statements import with_qa_statements

# The registry is built from the readers: one record per format (kind, options, yields, read).
READERS: dict[str, SourceReader[Any]] = {
    reader.kind: reader
    for reader in (
        vqa_rad.READER,
        slake.READER,
        vqa_med_2019.READER,
        roco.READER,
        melinda.READER,
        iu_xray.READER,
        csv_pairs.READER,
    )
}
# Views of READERS by what they give.
SOURCE_READERS: dict[str, Callable[..., SourceTables]] = {k: r.read for k, r in READERS.items()}
SOURCE_OPTIONS: dict[str, type] = {kind: reader.options_type for kind, reader in READERS.items()}
SOURCE_YIELDS: dict[str, Callable[[Any], SourceYield]] = {
    kind: reader.yields for kind, reader in READERS.items()
}


def options_type(kind: str) -> type | None:
    """The options config of a source ``kind`` (SynthRad's is its generator config)."""
    if kind == "synthrad":
        from robust_mmr_pipeline.sources.synthrad import SynthRadConfig

        return SynthRadConfig
    return SOURCE_OPTIONS.get(kind)


def known_kinds() -> list[str]:
    """The kind names :func:`read_source` accepts."""
    return sorted(SOURCE_READERS)


def read_source(
    kind: str,
    root: Path | str,
    name: str,
    options: Mapping[str, Any] | None = None,
    on_bad_record: OnBadRecord = "raise",
    *,
    qa_statements: bool = True,
) -> SourceTables:
    """Read one dataset copy of format ``kind`` into the unified tables.

    With ``qa_statements`` the QA statements of the training VQA records are added to
    ``pairs`` (text_kind ``qa_statement``, style = ``name``).

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
    tables = reader(Path(root), name, options, check_policy(on_bad_record))
    return with_qa_statements(tables, name) if qa_statements else tables


def declared_yield(
    kind: str, options: Mapping[str, Any] | None = None, *, qa_statements: bool = True
) -> SourceYield:
    """What a source of ``kind`` with ``options`` gives, before reading it.

    The reader's declaration plus the QA statements the registry adds to a VQA source. SynthRad
    gives every table (report and caption pairs) with its sites as domains; a SynthRad corpus
    (``corpus: true``) pairs only, of its training sites.
    """
    if kind == "synthrad":
        from robust_mmr_pipeline.params import parse
        from robust_mmr_pipeline.sources.synthrad import SynthRadConfig

        config = parse(SynthRadConfig, dict(options or {}), "ingestion.sources[synthrad].options")
        if config.corpus:
            held = set(config.held_out_sites or ())
            return SourceYield(
                tables=frozenset({"pairs"}),
                text_kinds=frozenset({"report", "caption"}),
                domains=tuple(s for s in config.site_names if s not in held),
            )
        return SourceYield(
            tables=frozenset({"vqa", "classification", "pairs"}),
            text_kinds=frozenset({"report", "caption"}),
            domains=tuple(config.site_names),
        )
    declare = SOURCE_YIELDS.get(kind)
    if declare is None:
        raise IngestionError(
            f"unknown source kind {kind!r}; known kinds: {['synthrad', *known_kinds()]}."
        )
    declared = declare(dict(options or {}))
    if qa_statements and "vqa" in declared.tables:
        declared = SourceYield(
            tables=declared.tables | {"pairs"},
            text_kinds=declared.text_kinds | {QA_STATEMENT},
            images=declared.images,
            domains=declared.domains,
        )
    return declared
