"""The catalogue of validation checks: names, what each one asserts, and its default severity.

A *check* is a named family of expectations (``ids_unique`` covers the primary key of every
table, ``image_size`` covers width and height, ...). Parameters say per check name whether a
failure is ``fatal`` (the run stops after the report is written), a ``warn``\\ ing (reported,
the run goes on) or ``skip`` (not evaluated). A check listed nowhere is a warning: no check is
ever skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Severity = Literal["fatal", "warn", "skip"]

CHECKS: dict[str, str] = {
    "columns": "the table has exactly the unified schema's columns, in order",
    "column_types": "each column has the unified schema's type",
    "row_count": "the table has at least validation.min_rows[table] rows",
    "ids_not_null": "the primary key is never null",
    "ids_unique": "the primary key is unique",
    "required_values": "columns later stages rely on (source, path, domain, split, label) are "
    "never null",
    "enum_values": "text_kind and answer_type take the unified schema's values",
    "image_refs_exist": "every referenced image_id is a row of the images table",
    "split_values": "split is one of the schema's split names",
    "text_not_empty": "text is not null and has at least one visible character (not white space "
    "nor an invisible format character such as a zero-width space)",
    "text_length": "text length lies within validation.text_length bounds",
    "text_encoding": "text holds no U+FFFD replacement characters, lone surrogates, mojibake "
    "(UTF-8 read as Latin-1/cp1252), control characters or bidirectional controls",
    "image_exists": "the image file exists under image_roots[source]",
    "image_decodes": "the image file decodes (PNG structure and CRCs verified, JPEG "
    "entropy-decoded in draft mode, other formats fully decoded)",
    "image_size": "image width and height lie within validation.images.side",
    "image_pixels": "width x height (read from the file header, nothing decoded above the "
    "limit) is at most validation.images.max_pixels",
    "image_in_root": "the image file, with every symbolic link resolved, lies inside "
    "image_roots[source]",
    "image_mode": "the image mode is one of validation.images.modes",
    "image_bytes": "the file size lies within validation.images.bytes",
    "image_dims_match": "the decoded width and height equal those recorded in the images table",
    "answer_vocab": "val/test answers occur among the train answers (out-of-vocabulary rows are "
    "counted)",
    "split_overlap": "no image is in two of validation.split_overlap.between splits, for the "
    "sources in validation.split_overlap.disjoint_sources (which promise it)",
    "split_overlap_by_design": "no image is in two of validation.split_overlap.between splits, "
    "for the other sources (which do not promise it: a leak of the source itself, reported per "
    "source)",
    "class_min_count": "every classification label has at least validation.min_class_count "
    "rows available for training (split train or unassigned)",
    "phi": "no identifier (names after a title, a patient or clinician cue or before an age and "
    "sex, dates, ages over 89, phone, SSN, MRN-like, account and '#' numbers, e-mail and street "
    "addresses) in the text columns of a source not listed in validation.phi.allowed_sources "
    "(ingestion's guard quarantined the rows it found: they are in no table)",
    "phi_opted_out": "no identifier in the text columns of the sources listed in "
    "validation.phi.allowed_sources (reported for the record: those sources are opted out of "
    "the phi check)",
    "rejects": "ingestion dropped no records (on_bad_record: drop / tolerate move them to rejects)",
}

DEFAULT_FATAL: tuple[str, ...] = (
    "columns",
    "column_types",
    "row_count",
    "ids_not_null",
    "ids_unique",
    "required_values",
    "enum_values",
    "image_refs_exist",
    "split_values",
    "text_not_empty",
    "image_exists",
    "image_decodes",
    "image_pixels",
    "image_in_root",
    "split_overlap",
    "phi",
)

DEFAULT_WARN: tuple[str, ...] = tuple(name for name in CHECKS if name not in DEFAULT_FATAL)


def check_names(names: Iterable[str], where: str) -> list[str]:
    """Return ``names`` as a list, raising ValueError naming any that is not a known check."""
    names = list(names)
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        raise ValueError(
            f"{where}: unknown check name(s) {unknown}; known checks: {sorted(CHECKS)}."
        )
    return names


def resolve_severities(
    fatal: Iterable[str], warn: Iterable[str], skip: Iterable[str]
) -> dict[str, Severity]:
    """The severity of every check; a check named in two lists is an error, unlisted is warn."""
    lists = {
        "fatal": check_names(fatal, "validation.fatal"),
        "warn": check_names(warn, "validation.warn"),
        "skip": check_names(skip, "validation.skip"),
    }
    severities: dict[str, Severity] = {}
    for severity, names in lists.items():
        for name in names:
            previous = severities.get(name)
            if previous is not None and previous != severity:
                raise ValueError(
                    f"check {name!r} is listed in both validation.{previous} and "
                    f"validation.{severity}; keep it in one list."
                )
            severities[name] = severity  # type: ignore[assignment]
    return {name: severities.get(name, "warn") for name in CHECKS}
