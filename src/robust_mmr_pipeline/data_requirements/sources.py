"""The enabled sources of ``params:ingestion`` and what each reader declares it gives."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfiguredSource:
    """An enabled entry of ``ingestion.sources`` with what its reader declares it gives."""

    name: str
    kind: str
    root: str
    tables: frozenset[str]
    text_kinds: frozenset[str]
    images: bool
    domains: tuple[str, ...] | None

    def label(self) -> str:
        gives = sorted(self.tables - {"pairs"}) + [f"{k} pairs" for k in sorted(self.text_kinds)]
        images = "" if self.images else ", no images"
        return f"{self.name} (kind {self.kind}, root {self.root}: {', '.join(gives)}{images})"


def configured_sources(ingestion: Mapping[str, Any] | None) -> list[ConfiguredSource]:
    """The enabled sources of ``params:ingestion`` and what each gives (declared, not read).

    Sources whose options do not parse are left out: ingestion reports those itself.
    """
    from robust_mmr_pipeline.params import parse
    from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
    from robust_mmr_pipeline.sources.common.bad_records import IngestionError
    from robust_mmr_pipeline.sources.registry import declared_yield

    params = parse(IngestionParams, ingestion, "ingestion")
    found = []
    for spec in params.sources:
        if not spec.enabled:
            continue
        try:
            declared = declared_yield(spec.kind, spec.options, qa_statements=spec.qa_statements)
        except (IngestionError, ValueError) as exc:
            logger.debug("requirements: %s not declared (%s)", spec.source_name, exc)
            continue
        # a pre-training corpus feeds pre-training only, whatever its reader could give
        tables = declared.tables & {"pairs"} if spec.role == "corpus" else declared.tables
        found.append(
            ConfiguredSource(
                name=spec.source_name,
                kind=spec.kind,
                root=spec.root,
                tables=tables,
                text_kinds=declared.text_kinds,
                images=declared.images,
                domains=declared.domains,
            )
        )
    return found


def sources_line(sources: Iterable[ConfiguredSource]) -> str:
    """The sources for a message, one label each (``none enabled`` when there are none)."""
    listed = [source.label() for source in sources]
    return "; ".join(listed) if listed else "none enabled"
