"""Benchmark of the validation stage: table validation time and per-image check throughput.

Builds synthetic clean unified tables (100k rows across pairs, vqa, classification and images by
default) plus a folder of small PNG/JPEG images in a temporary directory, then measures

- ``tables``: the PHI scan and the Great Expectations validation of every table
  (:func:`robust_mmr_pipeline.validation.run.validate_all`; target < 30 s for 100k rows);
- ``images``: the per-image file check (target >= 500 images/s on 2 cores), in-process and
  with the process pool;
- ``real_images``: the same check over the real VQA-RAD JPEGs (256-2321 px) when the shared
  data copy is present (``$ROBUST_MMR_SHARED_DATA`` or ``../shared/data``), default against
  full decoding.

Usage: ``python benchmarks/bench_validation.py [--out data/08_reporting/bench_validation.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("ROBUST_MMR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
).resolve()


def _bench_real_images(folder: Path, workers: int) -> dict[str, Any] | None:
    """Throughput of the file check on real JPEGs (None when the folder is absent)."""
    from robust_mmr_pipeline.validation.images import FILE_CHECK_FIELDS, check_files

    paths = sorted(str(p) for p in folder.glob("*.jpg")) if folder.is_dir() else []
    if not paths:
        return None
    runs: dict[str, dict[str, float]] = {}
    for label, n_workers, full in (
        ("in_process", 1, False),
        ("pool", workers, False),
        ("in_process_full_decode", 1, True),
    ):
        started = time.perf_counter()
        results = check_files(paths, workers=n_workers, min_parallel=0, full_decode=full)
        seconds = time.perf_counter() - started
        decodes = FILE_CHECK_FIELDS.index("decodes")
        if not all(r[decodes] for r in results):
            raise RuntimeError(f"a real image in {folder} failed the file check")
        runs[label] = {
            "workers": n_workers,
            "seconds": round(seconds, 3),
            "images_per_second": round(len(paths) / seconds, 1),
        }
    return {"folder": str(folder), "count": len(paths), "runs": runs}


def _bench(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    import great_expectations  # noqa: F401 - import time is reported separately

    import_seconds = time.perf_counter() - started

    from robust_mmr_pipeline.schema import PRIMARY_KEYS
    from robust_mmr_pipeline.validation.config import ValidationParams
    from robust_mmr_pipeline.validation.images import check_images
    from robust_mmr_pipeline.validation.phi import scan_tables
    from robust_mmr_pipeline.validation.run import validate_all
    from robust_mmr_pipeline.validation.synthetic import make_synthetic

    params = ValidationParams()
    started = time.perf_counter()
    synthetic = make_synthetic(
        folder / "images",
        n_images=args.images,
        n_pairs=args.pairs,
        n_vqa=args.vqa,
        n_classification=args.classification,
        image_size=args.image_size,
    )
    build_seconds = time.perf_counter() - started
    tables = synthetic.tables
    rows = {name: len(frame) for name, frame in tables.items()}

    image_runs: dict[str, dict[str, float]] = {}
    image_checks = None
    for label, workers in (("in_process", 1), ("pool", args.workers)):
        started = time.perf_counter()
        image_checks = check_images(
            tables["images"], synthetic.roots, workers=workers, min_parallel=0
        )
        seconds = time.perf_counter() - started
        image_runs[label] = {
            "workers": workers,
            "seconds": round(seconds, 3),
            "images_per_second": round(len(image_checks) / seconds, 1),
        }
    assert image_checks is not None
    if not bool(image_checks["decodes"].all()):
        raise RuntimeError("synthetic images failed the file check; the benchmark is invalid")

    text_tables = ("pairs", "vqa", "classification")
    started = time.perf_counter()
    phi = scan_tables(
        tables,
        {t: list(params.text_columns(t)) for t in text_tables},
        {t: PRIMARY_KEYS[t] for t in text_tables},
        params.phi.patterns(),
    )
    phi_seconds = time.perf_counter() - started
    started = time.perf_counter()
    summary = validate_all(tables, image_checks, phi, params)
    validate_seconds = time.perf_counter() - started
    if not summary["success"] or summary["warnings"]:
        raise RuntimeError("synthetic clean tables did not pass validation cleanly")

    table_seconds = phi_seconds + validate_seconds
    best_rate = max(run["images_per_second"] for run in image_runs.values())
    return {
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "total_rows": sum(rows.values()),
        "expectations": summary["expectations"],
        "gx_import_seconds": round(import_seconds, 2),
        "build_seconds": round(build_seconds, 2),
        "tables": {
            "phi_scan_seconds": round(phi_seconds, 3),
            "validate_seconds": round(validate_seconds, 3),
            "total_seconds": round(table_seconds, 3),
            "target_seconds": 30.0,
            "meets_target": table_seconds < 30.0,
        },
        "images": {
            "count": len(image_checks),
            "image_size": args.image_size,
            "runs": image_runs,
            "target_images_per_second": 500.0,
            "meets_target": best_rate >= 500.0,
        },
        "real_images": _bench_real_images(args.real_images, args.workers),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/bench_validation.json"))
    parser.add_argument("--images", type=int, default=3000, help="image files (and images rows)")
    parser.add_argument("--pairs", type=int, default=30000)
    parser.add_argument("--vqa", type=int, default=50000)
    parser.add_argument("--classification", type=int, default=17000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="processes of the image check")
    parser.add_argument(
        "--real-images",
        type=Path,
        default=SHARED_DATA / "vqa_rad" / "images",
        help="a folder of real JPEGs to time as well (skipped when absent)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_validation_") as tmp:
        result = _bench(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
