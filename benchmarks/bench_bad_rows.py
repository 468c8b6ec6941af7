"""Peak memory of ingesting a CSV whose rows are nearly all malformed (``on_bad_record: drop``).

An 8 MB CSV of one million rows with the wrong number of fields goes through the generic CSV
reader; every row becomes a row of the rejects table. The reader runs in a fresh interpreter so
its peak resident set size (``ru_maxrss``) is its own; the result also gives the resident size
right after the imports, so the growth caused by the rejects can be read off.

    python -m benchmarks.bench_bad_rows --out data/08_reporting/bench_bad_rows.json [--rows N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
import pandas  # noqa: F401  (imports first: the baseline is the interpreter with its libraries)
from robust_mmr_pipeline.sources import csv_pairs
from robust_mmr_pipeline.sources.ingest import ingest_all
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()

class Spec:
    kind = "csv"
    root = sys.argv[1]
    options = {"id_column": "id"}
    enabled = True
    qa_statements = False
    source_name = "bad"

tables, _ = ingest_all([Spec()], "drop")
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rejects": len(tables.rejects), "baseline_kib": baseline, "peak_kib": peak,
                  "seconds": seconds}))
"""


def write_bad_csv(root: Path, rows: int) -> Path:
    """``root/pairs.csv``: a header, then ``rows`` rows of two fields instead of three."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "pairs.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,image,text\n")
        for index in range(rows):
            handle.write(f"{index},x\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bad_csv(Path(tmp) / "bad", args.rows)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path.parent)],
            capture_output=True,
            text=True,
            check=True,
        )
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        result = {
            "rows": args.rows,
            "csv_mb": round(path.stat().st_size / 2**20, 2),
            "rejects": measured["rejects"],
            "baseline_rss_mb": round(measured["baseline_kib"] / 1024, 1),
            "peak_rss_mb": round(measured["peak_kib"] / 1024, 1),
            "growth_mb": round((measured["peak_kib"] - measured["baseline_kib"]) / 1024, 1),
            "read_seconds": round(measured["seconds"], 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
