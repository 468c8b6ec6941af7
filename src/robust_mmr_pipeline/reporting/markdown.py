"""GitHub-flavoured Markdown tables: the one builder of every Markdown report (the report
template calls it as ``markdown_table``; the validation report calls it directly)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def markdown_cell(value: Any) -> str:
    """``value`` as one table cell: ``|`` escaped, line breaks as spaces."""
    text = value if isinstance(value, str) else str(value)
    return text.replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def markdown_table(
    header: Sequence[Any],
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    *,
    empty: str | None = "_none_",
) -> str:
    """A Markdown table, one line per row and a newline at the end.

    A row is its cells, or a mapping with ``cells`` (the report template's headline rows).
    Without rows: ``empty`` and a newline, or, when ``empty`` is None, the header alone.
    """
    body = [row["cells"] if isinstance(row, Mapping) else row for row in rows]
    if not body and empty is not None:
        return f"{empty}\n"
    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(c) for c in cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"
