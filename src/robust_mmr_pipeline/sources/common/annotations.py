"""Annotation files: loading that names the file and line on a decode error; record field checks."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from robust_mmr_pipeline.sources.common.bad_records import IngestionError
from robust_mmr_pipeline.textnorm import (
    bidi_controls,
    is_blank,
    text_problem,
)


def require_file(path: Path, source: str, what: str, fix: str) -> Path:
    """Return ``path`` if it is a file; raise IngestionError naming it and the fix otherwise."""
    if not path.is_file():
        raise IngestionError(f"{source}: {what} {path} does not exist. Fix: {fix}")
    return path


def _annotation_text(path: Path, source: str) -> str:
    """The UTF-8 text of an annotation file (BOM dropped); a missing or non-UTF-8 file raises
    :class:`IngestionError` naming it and the fix."""
    require_file(path, source, "annotation file", "point the source's root at the published copy")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestionError(
            f"{source}: {path} is not UTF-8 text (byte {exc.start}): re-download the file."
        ) from exc


def load_json(path: Path, source: str) -> Any:
    """Parse a JSON annotation file; a decode error names the file, line and column."""
    text = _annotation_text(path, source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestionError(
            f"{source}: {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}. Fix: repair or re-download the file."
        ) from exc


def read_text_lines(path: Path, source: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file (1-based, newline stripped).

    Blank lines are skipped; a trailing carriage return (Windows line end) is removed.
    """
    text = _annotation_text(path, source)
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if line.strip():
            yield number, line


FieldSpec = Mapping[str, tuple[type, ...]]


def record_problem(record: Any, required: FieldSpec, optional: FieldSpec | None = None) -> str:
    """Describe what is wrong with a JSON record (``""`` when it is well formed).

    ``required`` / ``optional`` map a field to its allowed Python types; booleans never count
    as numbers, required strings must show something (zero-width characters alone are blank)
    and no string may hold bidirectional controls (:mod:`robust_mmr_pipeline.textnorm`).
    """
    if not isinstance(record, dict):
        return f"record is a JSON {type(record).__name__}, expected an object"
    for name in required:
        if name not in record or record[name] is None:
            return f"field {name!r} is missing"
    for name, kinds in {**required, **(optional or {})}.items():
        if name not in record or (name not in required and record[name] is None):
            continue
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            return f"field {name!r} is a {type(value).__name__}, expected {expected}"
        if isinstance(value, str) and bidi_controls(value):
            return text_problem(value, f"field {name!r}")
        if name in required and isinstance(value, str) and is_blank(value):
            return text_problem(value, f"field {name!r}") or f"field {name!r} is empty"
    return ""


def safe_relative(path: str) -> PurePosixPath | None:
    """``path`` as a relative POSIX path inside the source root, or None if it escapes it."""
    rel = PurePosixPath(path.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return rel
