"""CSV annotation files, row by row, with the problem and the fix of every unusable row."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from robust_mmr_pipeline.sources.common.annotations import require_file
from robust_mmr_pipeline.sources.common.bad_records import BadRecords, IngestionError
from robust_mmr_pipeline.sources.common.records import blank_columns_problem, clean_text
from robust_mmr_pipeline.textnorm import (
    BIDI_FIX,
    bidi_controls,
    text_problem,
)


@dataclass(frozen=True)
class CsvRow:
    """One data row of a CSV annotation file (``problem``: why it is unusable, ``fix``: what to
    do about it, both empty for a good row)."""

    line: int
    values: dict[str, str]
    problem: str
    fix: str = ""


_SURROGATE = re.compile("[\udc80-\udcff]")
_FIX_ENCODING = (
    "re-save the file as UTF-8 (e.g. `iconv -f cp1252 -t utf-8 in.csv > out.csv`) or correct "
    "the byte"
)


def undecodable_bytes(raw: bytes) -> list[int]:
    """Byte offsets in ``raw`` where UTF-8 decoding fails (the first byte of each bad run)."""
    offsets: list[int] = []
    start = 0
    while start < len(raw):
        try:
            raw[start:].decode("utf-8")
        except UnicodeDecodeError as exc:
            offsets.append(start + exc.start)
            start += exc.end
        else:
            break
    return offsets


def _byte_problem(raw: bytes, offset: int) -> str:
    """What a non-UTF-8 byte is: its value, line, byte offset and what cp1252 reads in it."""
    byte = raw[offset]
    line = raw.count(b"\n", 0, offset) + 1
    guess = bytes([byte]).decode("cp1252", errors="replace")
    hint = f" (in cp1252 / Latin-1 it reads {guess!r})" if guess != "\ufffd" else ""
    return f"byte 0x{byte:02X} at line {line}, byte offset {offset} is not UTF-8{hint}"


def iter_csv_rows(
    path: Path, source: str, columns: list[str], fix: str, delimiter: str = ","
) -> Iterator[CsvRow]:
    """The data rows of a CSV file with a header row, as strings (no NA guessing), one at a
    time: a file of a million rows is never held as a million row objects.

    The header is checked at once: a header without one of ``columns`` (or not UTF-8) raises
    IngestionError naming the columns present. A row whose field count differs from the
    header's, that holds bytes that are not UTF-8 or a bidirectional control character, is
    yielded with ``problem`` (and ``fix``) set, for the adapter to report as a bad record: one
    bad byte costs its row, not the file. Blank rows are skipped; ``line`` is the row's last
    line in the file (quoted fields may span lines).
    """
    require_file(path, source, "annotation file", "point the source's root at the published copy")
    raw = path.read_bytes()
    bad_offsets = undecodable_bytes(raw)
    bad_lines = {raw.count(b"\n", 0, offset) + 1: offset for offset in reversed(bad_offsets)}
    # Undecodable bytes become lone surrogates, so the rest of the file still parses; the file
    # is decoded as it is read (no second copy of it as one string).
    handle = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    reader = csv.reader(handle, delimiter=delimiter)

    def not_csv(exc: csv.Error) -> IngestionError:
        return IngestionError(
            f"{source}: {path} is not valid CSV near line {reader.line_num}: {exc}. Fix: {fix}"
        )

    try:
        try:
            header = [cell.strip() for cell in next(reader, [])]
        except csv.Error as exc:
            raise not_csv(exc) from exc
        if not header:
            raise IngestionError(f"{source}: {path} is empty; expected a header row. Fix: {fix}")
        if any(_SURROGATE.search(cell) for cell in header):
            offset = next(o for line, o in sorted(bad_lines.items()) if line <= reader.line_num)
            raise IngestionError(
                f"{source}: the header row of {path} is not UTF-8: "
                f"{_byte_problem(raw, offset)}. Fix: {_FIX_ENCODING}."
            )
        missing = [c for c in columns if c not in header]
        if missing:
            raise IngestionError(
                f"{source}: {path} lacks column(s) {missing}; its header has {header}. "
                f"Fix: {fix}, or name the right columns in the reader's *_column options."
            )
    except BaseException:
        handle.close()
        raise

    def rows() -> Iterator[CsvRow]:
        first_line = reader.line_num + 1
        try:
            for parsed in reader:
                cells, problem, row_fix = parsed, "", ""
                if any(_SURROGATE.search(cell) for cell in parsed):
                    offset = next(o for line, o in sorted(bad_lines.items()) if first_line <= line)
                    problem, row_fix = _byte_problem(raw, offset), _FIX_ENCODING
                    cells = [_SURROGATE.sub("\ufffd", cell) for cell in parsed]
                if not any(cell.strip() for cell in cells):
                    first_line = reader.line_num + 1
                    continue
                if not problem and len(cells) != len(header):
                    problem = f"the row has {len(cells)} fields, the header {len(header)}"
                if not problem:
                    problem = next(
                        (
                            text_problem(cell, f"column {column!r}")
                            for column, cell in zip(header, cells, strict=False)
                            if bidi_controls(cell)
                        ),
                        "",
                    )
                    row_fix = BIDI_FIX if problem else row_fix
                values = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False))
                yield CsvRow(reader.line_num, values, problem, row_fix)
                first_line = reader.line_num + 1
        except csv.Error as exc:
            raise not_csv(exc) from exc
        finally:
            handle.close()

    return rows()


def read_csv_rows(
    path: Path, source: str, columns: list[str], fix: str, delimiter: str = ","
) -> list[CsvRow]:
    """Every data row of :func:`iter_csv_rows` as a list (small files; readers stream)."""
    return list(iter_csv_rows(path, source, columns, fix, delimiter))


def complete_rows(
    rows: Iterable[CsvRow],
    path: Path,
    columns: Sequence[str],
    required: Sequence[str],
    id_column: str | None,
    stem: str,
    bad: BadRecords,
    fix: str,
) -> Iterator[tuple[dict[str, str], str, str]]:
    """``(values, local_id, label)`` of every well-formed row whose ``required`` columns are
    filled; the others are reported to ``bad`` (``fix``: what to do about a bad row).

    ``values``: the cleaned text of ``columns``; ``local_id``: the ``id_column`` value, else
    ``<stem>-<row index>``; ``label``: how a bad-record message names the row.
    """
    for index, row in enumerate(rows):
        values = {c: clean_text(row.values[c]) for c in columns}
        local_id = values[id_column] if id_column else f"{stem}-{index}"
        label = f"{local_id or '?'} (row {index + 1}, line {row.line})"
        if row.problem:
            bad.report(path, label, f"malformed record: {row.problem}", row.fix or fix)
            continue
        blank = [c for c in required if not values[c]]
        if blank:
            bad.report(path, label, blank_columns_problem(row.values, blank), fix)
            continue
        yield values, local_id, label
