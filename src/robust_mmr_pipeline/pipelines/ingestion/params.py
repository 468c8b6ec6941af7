"""Typed parameters of the ingestion pipeline (``params:ingestion``)."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.typed_config import config


@config
class SourceSpec:
    """One dataset to ingest.

    ``kind`` picks the reader (``synthrad`` or a published format: vqa_rad, slake,
    vqa_med_2019, roco, melinda, iu_xray, csv); ``root`` is the folder of the copy as published
    (for synthrad, the folder the generator writes into; ``ingestion.roots`` can override it by
    source name); ``options`` are the reader's own options (for synthrad, the fields of
    SynthRadConfig). ``qa_statements``: add the QA statements of the source's training VQA
    records to its pairs (sources/qa_statements.py; SynthRad has reports and captions and gets
    none). ``max_bad_fraction``: this source's bound under ``on_bad_record: tolerate`` (null:
    ``ingestion.max_bad_fraction``).
    """

    kind: str
    root: str
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    qa_statements: bool = True
    max_bad_fraction: float | None = None
    role: Literal["labeled", "corpus"] = "labeled"

    @property
    def source_name(self) -> str:
        return self.name or self.kind

    def __post_init__(self) -> None:
        from robust_mmr_pipeline.sources.registry import options_type  # imports the readers
        from robust_mmr_pipeline.typed_config import parse

        typed = options_type(self.kind)
        if typed is not None:  # the reader's options config names a typo before the run
            parse(typed, self.options, f"ingestion.sources[{self.source_name}].options")
        if self.max_bad_fraction is not None and not 0.0 <= self.max_bad_fraction < 1.0:
            raise ValueError(
                f"ingestion.sources[{self.source_name}].max_bad_fraction must lie in [0, 1), "
                f"got {self.max_bad_fraction}."
            )


@config
class IngestionParams:
    sources: list[SourceSpec]
    # raise: a bad record stops the run with a message naming file, record and fix;
    # drop: bad records go to the rejects table, which is saved and counted;
    # tolerate: like drop, but a source whose rejected fraction exceeds max_bad_fraction stops
    # the run (a published release with a few broken records runs; a wrong folder does not).
    on_bad_record: Literal["raise", "drop", "tolerate"] = "tolerate"
    max_bad_fraction: float = 0.01
    # Source name -> dataset folder, overriding that source's `root` (one key per source, so
    # `--params "ingestion.roots.slake=/data/Slake1.0"` points an env at a local copy).
    roots: dict[str, str] = field(default_factory=dict)

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
        if not 0.0 <= self.max_bad_fraction < 1.0:
            raise ValueError(
                f"ingestion.max_bad_fraction must lie in [0, 1), got {self.max_bad_fraction}."
            )
        unknown = sorted(set(self.roots) - {s.source_name for s in self.sources})
        if unknown:
            raise ValueError(
                f"ingestion.roots names source(s) {unknown} that ingestion.sources does not "
                f"have; the sources are {[s.source_name for s in self.sources]}."
            )
        for spec in self.sources:
            if spec.source_name in self.roots:
                spec.root = str(self.roots[spec.source_name])

    @property
    def corpus_sources(self) -> list[str]:
        """Names of the enabled sources that are unlabeled pre-training corpora."""
        return [s.source_name for s in self.sources if s.enabled and s.role == "corpus"]

    def bad_fraction_of(self, spec: SourceSpec) -> float:
        """The tolerated fraction of rejected records of ``spec``."""
        return self.max_bad_fraction if spec.max_bad_fraction is None else spec.max_bad_fraction


__all__ = ["IngestionParams", "SourceSpec", "SourceTables"]
