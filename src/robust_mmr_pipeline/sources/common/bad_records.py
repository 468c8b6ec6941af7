"""The bad-record policy of a reader and the rejects table it fills."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import pandas as pd
import pyarrow as pa

from robust_mmr_pipeline.schema import TABLES, empty

# raise: stop at the first bad record; drop: move every bad record to the rejects table;
# tolerate: drop like ``drop``, but ingestion raises when a source's rejected fraction exceeds
# its ``max_bad_fraction`` (ingest.py), so a published release with a few broken records runs
# while a wrong folder or format still stops the run.
OnBadRecord = Literal["raise", "drop", "tolerate"]
BAD_RECORD_POLICIES: tuple[str, ...] = ("raise", "drop", "tolerate")


class IngestionError(ValueError):
    """A source record cannot be ingested. The message names the file, the record and the fix."""


@dataclass
class BadRecords:
    """Collects bad records: raises at once under ``raise``, keeps them as rejects under
    ``drop`` and ``tolerate`` (ingestion bounds the tolerated fraction).

    Dropping never loses data silently: every dropped record is a row of the rejects table,
    which ingestion saves and counts and the validation report lists. The rejects are kept as
    Arrow record batches of :data:`BATCH_ROWS` rows (file and reason dictionary-encoded: a
    million bad rows of one file repeat the same few strings), not one Python dict per record,
    so a file of nothing but bad rows costs a small multiple of its size.
    """

    source: str
    policy: OnBadRecord = "raise"
    _batches: list[pa.RecordBatch] = field(default_factory=list, repr=False)
    _pending: tuple[list[str], list[str], list[str]] = field(
        default_factory=lambda: ([], [], []), repr=False
    )
    _count: int = 0

    BATCH_ROWS: ClassVar[int] = 16384

    def report(self, file: str | Path, record: str, reason: str, fix: str) -> None:
        if self.policy == "raise":
            raise IngestionError(
                f"{self.source}: bad record {record!r} in {file}: {reason}. Fix: {fix} "
                "(or set ingestion.on_bad_record: tolerate / drop to move bad records to the "
                "rejects table)."
            )
        files, records, reasons = self._pending
        files.append(str(file))
        records.append(str(record))
        reasons.append(reason)
        self._count += 1
        if len(files) >= self.BATCH_ROWS:
            self._flush()

    def __len__(self) -> int:
        return self._count

    def _flush(self) -> None:
        files, records, reasons = self._pending
        if not files:
            return
        self._batches.append(
            pa.record_batch(
                {
                    "file": pa.array(files, pa.string()).dictionary_encode(),
                    "record": pa.array(records, pa.string()),
                    "reason": pa.array(reasons, pa.string()).dictionary_encode(),
                }
            )
        )
        for values in self._pending:
            values.clear()

    def frame(self) -> pd.DataFrame:
        """The rejects table (source, file, record, reason)."""
        self._flush()
        if not self._batches:
            return empty("rejects")
        table = pa.Table.from_batches(self._batches)
        columns = {name: table.column(name).cast(pa.string()) for name in table.column_names}
        source = pa.repeat(pa.scalar(self.source, pa.string()), len(table))
        # built in the table's own schema: one conversion to pandas, no second pass
        return pa.table({"source": source, **columns}, schema=TABLES["rejects"]).to_pandas()


def check_policy(on_bad_record: str) -> OnBadRecord:
    """Return ``on_bad_record`` if it is a known policy; raise IngestionError otherwise."""
    if on_bad_record not in BAD_RECORD_POLICIES:
        raise IngestionError(
            f"on_bad_record must be one of {list(BAD_RECORD_POLICIES)}, got {on_bad_record!r}."
        )
    return typing.cast(OnBadRecord, on_bad_record)
