"""What a reader yields, known before reading (the data requirements check reads it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceYield:
    """What a configured source gives the pipeline, declared by its reader from the options.

    ``tables``: the record tables it fills (``vqa``, ``classification``, ``pairs``);
    ``text_kinds``: the text kinds of its pairs (QA statements are added by the registry);
    ``images``: whether its images table is filled (False for text-only copies);
    ``domains``: the domain values it writes when fixed by the format, None when they come from
    the data (then only the ingested tables tell).
    """

    tables: frozenset[str]
    text_kinds: frozenset[str] = frozenset()
    images: bool = True
    domains: tuple[str, ...] | None = None
