"""Typed parameters of the ingestion pipeline (``params:ingestion``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables


@dataclass
class SourceSpec:
    """One dataset to ingest.

    ``kind`` picks the reader (``synthrad`` or a published format: vqa_rad, slake,
    vqa_med_2019, roco, melinda, iu_xray, csv); ``root`` is the folder of the copy as published
    (for synthrad, the folder the generator writes into); ``options`` are the reader's own
    options (for synthrad, the fields of SynthRadConfig).
    """

    kind: str
    root: str
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    @property
    def source_name(self) -> str:
        return self.name or self.kind


@dataclass
class IngestionParams:
    sources: list[SourceSpec]
    # raise: a bad record stops the run with a message naming file, record and fix;
    # drop: bad records go to the rejects table, which is saved and counted.
    on_bad_record: Literal["raise", "drop"] = "raise"

    def __post_init__(self) -> None:
        enabled = [s for s in self.sources if s.enabled]
        if not enabled:
            raise ValueError("ingestion.sources has no enabled source; enable at least one.")
        names = [s.source_name for s in enabled]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(
                f"ingestion.sources: source name(s) {duplicated} used twice; give each copy a "
                "distinct `name`."
            )


__all__ = ["IngestionParams", "SourceSpec", "SourceTables"]
