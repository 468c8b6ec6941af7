"""PHI guard: vectorised regexes that flag obvious de-identification leaks in text columns.

The patterns are deliberately narrow (a warning table a person reads, not a de-identifier):
dates written with digits or month names, North-American phone numbers, labelled or long
record numbers, e-mail addresses, and capitalised names after ``Dr.`` or ``Patient:`` /
``Name:``. De-identification masks such as IU X-ray's ``XXXX`` never match: every pattern needs
digits, an ``@``, or a capitalised word with lower-case letters.

Each pattern is valid both in Python's ``re`` and in RE2 (pandas' pyarrow-backed strings use
RE2), so it has no look-arounds and no back-references, and only non-capturing groups.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

_MONTH = (
    "(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    "Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_YEAR = "(?:19|20)[0-9]{2}"

_NUMERIC_DATES = "|".join(
    # one separator throughout, so ratios such as 16.2/24.7 do not match
    rf"[0-9]{{1,2}}{sep}[0-9]{{1,2}}{sep}(?:{_YEAR}|[0-9]{{2}})"
    rf"|{_YEAR}{sep}[0-9]{{1,2}}{sep}[0-9]{{1,2}}"
    for sep in ("/", "-", r"\.")
)

PHI_PATTERNS: dict[str, str] = {
    # 03/14/2012, 3-14-12, 2012-03-14, March 14, 2012, 14 Mar 2012
    "date": (
        rf"\b(?:{_NUMERIC_DATES}"
        rf"|{_MONTH}\.? [0-9]{{1,2}}(?:st|nd|rd|th)?,? {_YEAR}"
        rf"|[0-9]{{1,2}} {_MONTH}\.? {_YEAR})\b"
    ),
    # (555) 123-4567, 555-123-4567, 555.123.4567, +1 555 123 4567
    "phone": (r"(?:\+?1[ .-])?(?:\([0-9]{3}\) ?|\b[0-9]{3}[ .-])[0-9]{3}[.-][0-9]{4}\b"),
    # MRN: 1234567, medical record no. 12345, accession #A12345, or a bare run of 7+ digits
    "mrn": (
        r"(?i:\b(?:mrn|mr#|medical record(?: number| no\.?)?|accession(?: number| no\.?)?|"
        r"patient id)\s*[:#]?\s*[a-z]?[0-9]{4,})|\b[0-9]{7,}\b"
    ),
    "email": r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    # Dr. Smith, Dr Jane Doe (not "Dr. XXXX")
    "doctor_name": r"\bDr\.? ?[A-Z][a-z]+(?: [A-Z][a-z]+)?",
    # Patient: John Smith, Name: Jane (not "Patient: XXXX")
    "patient_name": r"(?i:\b(?:patient(?: name)?|name)\s*:)\s*[A-Z][a-z]+(?: [A-Z][a-z]+)?",
}

PHI_COLUMNS: tuple[str, ...] = ("table", "id", "column", "kind", "match")


def empty_phi_table() -> pd.DataFrame:
    """An empty PHI warnings table."""
    return pd.DataFrame({name: pd.Series([], dtype=object) for name in PHI_COLUMNS})


def scan_text(values: pd.Series, ids: pd.Series, patterns: Mapping[str, str]) -> list[pd.DataFrame]:
    """Rows ``(id, kind, match)`` for every value matching a pattern (first match per kind).

    ``str.contains`` picks the rows first (fast, vectorised, usually none); ``str.extract``
    then takes the matched text of the few that hit.
    """
    frames = []
    text = values.dropna()
    if text.empty:
        return frames
    for kind, pattern in patterns.items():
        hit = text.str.contains(pattern, regex=True)
        if not hit.any():
            continue
        matched = text[hit].str.extract(f"({pattern})", expand=False)
        frames.append(
            pd.DataFrame(
                {
                    "id": ids.loc[matched.index].astype(str).to_numpy(),
                    "kind": kind,
                    "match": matched.astype(str).to_numpy(),
                }
            )
        )
    return frames


def scan_tables(
    tables: Mapping[str, pd.DataFrame],
    columns: Mapping[str, list[str]],
    id_columns: Mapping[str, str],
    patterns: Mapping[str, str],
) -> pd.DataFrame:
    """The PHI warnings table (table, id, column, kind, match) over the named text columns.

    ``columns`` maps a table name to its text columns to scan, ``id_columns`` a table name to
    its primary key (reported as ``id``). Columns a table lacks are skipped (the ``columns``
    check reports them).
    """
    frames = []
    for table, names in columns.items():
        frame = tables.get(table)
        key = id_columns[table]
        if frame is None or frame.empty or key not in frame.columns:
            continue
        for column in names:
            if column not in frame.columns:
                continue
            for found in scan_text(frame[column], frame[key], patterns):
                found.insert(0, "table", table)
                found.insert(2, "column", column)
                frames.append(found)
    if not frames:
        return empty_phi_table()
    result = pd.concat(frames, ignore_index=True)[list(PHI_COLUMNS)]
    return (
        result.astype(object)
        .sort_values(["table", "id", "column", "kind"], kind="stable")
        .reset_index(drop=True)
    )
