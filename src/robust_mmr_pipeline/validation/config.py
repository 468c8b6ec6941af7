"""Typed configuration of the validation stage (``params:validation``), plain dataclasses.

Parsed from ``conf/*/parameters_validation.yml`` by :func:`robust_mmr_pipeline.params.parse`
(pydantic coerces and checks the types, unknown keys are rejected, ``__post_init__`` checks the
values), so a typo fails before the run instead of being ignored.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import Literal

from robust_mmr_pipeline.schema import SPLITS, TABLES
from robust_mmr_pipeline.typed_config import config
from robust_mmr_pipeline.validation.checks import (
    DEFAULT_FATAL,
    DEFAULT_WARN,
    Severity,
    resolve_severities,
)
from robust_mmr_pipeline.validation.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE
from robust_mmr_pipeline.validation.phi import PHI_PATTERNS

TEXT_COLUMNS: dict[str, tuple[int, int]] = {
    "pairs.text": (1, 20000),
    "vqa.question": (3, 1000),
    "vqa.answer": (1, 500),
    "classification.text": (1, 20000),
}


@config
class Bounds:
    """An inclusive ``[min, max]`` range."""

    min: int
    max: int

    def __post_init__(self) -> None:
        if self.min < 0 or self.max < self.min:
            raise ValueError(f"bounds need 0 <= min <= max, got min={self.min}, max={self.max}.")


@config
class ImageCheckParams:
    """The per-image file check (``validation.images``).

    ``workers`` processes check the files in parallel (0: one per CPU core; 1: in this process);
    fewer than ``min_parallel`` images are always checked in-process (a pool costs more than it
    saves). ``full_decode`` decodes every image completely instead of verifying PNG structure
    and decoding JPEG at 1/8 scale: slower, and only needed to catch corrupt pixel data behind
    valid PNG checksums. ``max_pixels``: the most pixels (width x height, read from the file
    header) an image may have; a larger one is never decoded, by ingestion (a bad record) or
    here (the ``image_pixels`` check). It replaces Pillow's decompression-bomb limit.
    ``min_side``: the shortest side an image may have; a smaller one (a 1 x 1 placeholder) is a
    bad record at ingestion. ``side`` bounds the sides the ``image_size`` check warns about.
    """

    workers: int = 2
    chunksize: int = 64
    min_parallel: int = 256
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    side: Bounds = field(default_factory=lambda: Bounds(min=32, max=16384))
    bytes: Bounds = field(default_factory=lambda: Bounds(min=64, max=256 * 1024 * 1024))
    modes: list[str] = field(
        default_factory=lambda: ["1", "L", "LA", "I", "I;16", "F", "RGB", "RGBA"]
    )
    full_decode: bool = False

    def __post_init__(self) -> None:
        if self.workers < 0 or self.chunksize < 1 or self.min_parallel < 0:
            raise ValueError(
                "validation.images: workers must be >= 0 (0 = all cores), chunksize >= 1 and "
                f"min_parallel >= 0; got {self.workers}, {self.chunksize}, {self.min_parallel}."
            )
        if not self.modes:
            raise ValueError("validation.images.modes is empty; list the allowed PIL modes.")
        if self.min_side < 1:
            raise ValueError(
                f"validation.images.min_side must be >= 1 (pixels), got {self.min_side}."
            )
        if self.max_pixels < 1:
            raise ValueError(
                "validation.images.max_pixels must be >= 1 (width x height), got "
                f"{self.max_pixels}."
            )


@config
class PhiParams:
    """The de-identification guard (``validation.phi``).

    ``kinds`` lists the built-in kinds to apply (see :mod:`robust_mmr_pipeline.validation.phi`);
    ``extra_patterns`` adds kinds of your own as ``name: regex`` (the regex must work both in
    Python's ``re`` and in RE2, e.g. no look-arounds or back-references). Identifiers found in
    a source fail the ``phi`` check (fatal by default). ``allowed_sources`` is the explicit
    opt-out: ``source name: why its texts may carry identifiers`` (e.g. published, consented
    case reports); their findings are reported under ``phi_opted_out`` (a warning) instead.
    """

    kinds: list[str] = field(default_factory=lambda: list(PHI_PATTERNS))
    extra_patterns: dict[str, str] = field(default_factory=dict)
    allowed_sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unexplained = sorted(name for name, why in self.allowed_sources.items() if not why.strip())
        if unexplained:
            raise ValueError(
                f"validation.phi.allowed_sources: give the reason each source may carry "
                f"identifiers (source: reason); {unexplained} have none."
            )
        unknown = sorted(set(self.kinds) - set(PHI_PATTERNS))
        if unknown:
            raise ValueError(
                f"validation.phi.kinds: unknown kind(s) {unknown}; built-in kinds are "
                f"{sorted(PHI_PATTERNS)} (add your own under validation.phi.extra_patterns)."
            )
        for name, pattern in self.extra_patterns.items():
            if name in PHI_PATTERNS:
                raise ValueError(
                    f"validation.phi.extra_patterns: {name!r} is a built-in kind; pick another "
                    "name."
                )
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"validation.phi.extra_patterns[{name}]: invalid regex {pattern!r} ({exc})."
                ) from exc
            if compiled.groups:
                raise ValueError(
                    f"validation.phi.extra_patterns[{name}]: use non-capturing groups (?:...) "
                    f"only; {pattern!r} has capturing groups."
                )

    def patterns(self) -> dict[str, str]:
        """The enabled patterns, kind -> regex."""
        return {**{k: PHI_PATTERNS[k] for k in self.kinds}, **self.extra_patterns}


@config
class SplitOverlapParams:
    """Train/test image leakage (``validation.split_overlap``).

    ``disjoint_sources`` are the source names whose splits promise that no image is in two of
    the ``between`` splits: a leak there is the check ``split_overlap`` (fatal by default).
    Every other source's overlap is reported as ``split_overlap_by_design`` (a warning by
    default): VQA-RAD asks test questions about training images, and SLAKE's English and
    Chinese splits place one image in different splits.
    """

    disjoint_sources: list[str] = field(
        default_factory=lambda: ["synthrad", "iu_xray", "roco", "vqa_med_2019", "melinda"]
    )
    between: list[tuple[str, str]] = field(default_factory=lambda: [("train", "test")])

    def __post_init__(self) -> None:
        for pair in self.between:
            bad = [s for s in pair if s not in SPLITS]
            if bad or pair[0] == pair[1]:
                raise ValueError(
                    f"validation.split_overlap.between: {list(pair)} must name two different "
                    f"splits of {list(SPLITS)}."
                )


@config
class ValidationParams:
    """Everything the validation pipeline reads from ``params:validation``.

    ``fatal`` / ``warn`` / ``skip`` list check names (see
    :data:`robust_mmr_pipeline.validation.checks.CHECKS`); a check listed nowhere is a warning.
    ``text_length`` names the text columns (``table.column``) that are checked for emptiness,
    length, encoding and PHI, with their length bounds in characters. ``min_rows`` sets the
    fewest rows a table may have. ``report_dir`` is where the node writes the report files
    itself, before stopping the run on a fatal failure (keep it equal to the folder of the
    validation_* entries in conf/base/catalog_validation.yml).
    """

    fatal: list[str] = field(default_factory=lambda: list(DEFAULT_FATAL))
    warn: list[str] = field(default_factory=lambda: list(DEFAULT_WARN))
    skip: list[str] = field(default_factory=list)
    text_length: dict[str, Bounds] = field(
        default_factory=lambda: {k: Bounds(min=lo, max=hi) for k, (lo, hi) in TEXT_COLUMNS.items()}
    )
    min_rows: dict[str, int] = field(default_factory=lambda: {"images": 1})
    min_class_count: int = 5
    answer_vocab_scope: Literal["source", "global"] = "source"
    max_examples: int = 5
    report_dir: str = "data/08_reporting"
    images: ImageCheckParams = field(default_factory=ImageCheckParams)
    phi: PhiParams = field(default_factory=PhiParams)
    split_overlap: SplitOverlapParams = field(default_factory=SplitOverlapParams)

    def __post_init__(self) -> None:
        self.severities()  # raises on unknown names or a check listed twice
        for key in self.text_length:
            table, _, column = key.partition(".")
            schema = TABLES.get(table)
            if schema is None or column not in schema.names:
                raise ValueError(
                    f"validation.text_length: {key!r} is not a 'table.column' of the unified "
                    "schema (e.g. pairs.text, vqa.question)."
                )
        unknown_tables = sorted(set(self.min_rows) - set(TABLES))
        if unknown_tables:
            raise ValueError(
                f"validation.min_rows: unknown table(s) {unknown_tables}; tables: {list(TABLES)}."
            )
        if self.max_examples < 1 or self.min_class_count < 0:
            raise ValueError("validation: max_examples must be >= 1 and min_class_count >= 0.")

    def severities(self) -> dict[str, Severity]:
        """Check name -> fatal | warn | skip."""
        return resolve_severities(self.fatal, self.warn, self.skip)

    def text_columns(self, table: str) -> dict[str, Bounds]:
        """The checked text columns of ``table`` with their length bounds."""
        prefix = f"{table}."
        return {
            key.removeprefix(prefix): bounds
            for key, bounds in self.text_length.items()
            if key.startswith(prefix)
        }
