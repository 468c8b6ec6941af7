"""The reader base: a published format's kind, typed options, what it yields and how it reads.

Every reader of :mod:`robust_mmr_pipeline.sources` is one :class:`SourceReader`: the format's
module gives its options dataclass, ``declare(options) -> SourceYield`` and
``read_tables(root, name, options, bad) -> SourceTables`` (the format-specific part); the base
does the shared preamble (typed options: a config, so an unknown key is named, the source name,
the bad-record policy, the root folder) in one place. The registry is built from the readers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.common.bad_records import BadRecords, OnBadRecord, check_policy
from robust_mmr_pipeline.sources.common.options import check_name, check_root
from robust_mmr_pipeline.typed_config import parse

OptionsT = TypeVar("OptionsT")


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


@dataclass(frozen=True)
class SourceReader(Generic[OptionsT]):
    """A reader of one published format (see the module docstring).

    ``kind``: the format name in ``conf/`` (``sources[].kind``); ``options_type``: the frozen
    dataclass of its options; ``declare``: what a source with these options gives;
    ``read_tables``: reads a checked root folder into the unified tables, reporting bad
    records to ``bad``.
    """

    kind: str
    options_type: type[OptionsT]
    declare: Callable[[OptionsT], SourceYield]
    read_tables: Callable[[Path, str, OptionsT, BadRecords], SourceTables]

    def options(self, options: Mapping[str, Any] | OptionsT | None = None) -> OptionsT:
        """The typed options (ParameterError naming an unknown or ill-typed key)."""
        return parse(self.options_type, options, f"ingestion.sources[{self.kind}].options")

    def yields(self, options: Mapping[str, Any] | OptionsT | None = None) -> SourceYield:
        """What a source of this kind with ``options`` gives, before reading it."""
        return self.declare(self.options(options))

    def read(
        self,
        root: Path | str,
        name: str,
        options: Mapping[str, Any] | OptionsT | None = None,
        on_bad_record: OnBadRecord = "raise",
    ) -> SourceTables:
        """Read the copy in ``root`` as unified tables; ids are prefixed with ``name``."""
        opts = self.options(options)
        bad = BadRecords(check_name(name), check_policy(on_bad_record))
        return self.read_tables(check_root(root, self.kind), name, opts, bad)
