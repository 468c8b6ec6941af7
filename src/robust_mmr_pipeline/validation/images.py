"""The per-image file check: does each file of the images table exist, decode, and how big is it.

One row per image: ``image_id, path, exists, decodes, width, height, mode, bytes, error``,
which Great Expectations then validates (:mod:`robust_mmr_pipeline.validation.suites`).

Speed: opening an image reads only its header. PNG files are then ``verify()``\\ -ed (every
chunk's CRC and the final IEND chunk are checked, so truncation and byte corruption are caught
without inflating the pixels); JPEG files, for which ``verify()`` checks nothing, are decoded
in draft mode at 1/8 scale (the entropy-coded data is read in full, so a truncated or corrupt
stream still fails, at a fraction of a full decode's cost); any other format is decoded fully.
Files are checked in a process pool (the platform's default start method) once there are
enough of them to pay for it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

IMAGE_CHECK_COLUMNS: tuple[str, ...] = (
    "image_id",
    "path",
    "exists",
    "decodes",
    "width",
    "height",
    "mode",
    "bytes",
    "error",
)

# exists, decodes, width, height, mode, bytes, error
FileCheck = tuple[bool, bool | None, int | None, int | None, str | None, int | None, str | None]


def check_file(path: str, full_decode: bool = False) -> FileCheck:
    """Check one image file; never raises (a failure is described in the ``error`` field).

    ``decodes`` is None when the file does not exist (so a missing file counts once, as
    missing, not also as undecodable); ``width``, ``height`` and ``mode`` are the header's
    whenever the header could be read.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (False, None, None, None, None, None, "file not found")
    except OSError as exc:
        return (False, None, None, None, None, None, f"cannot stat file: {exc}")
    if not stat.S_ISREG(info.st_mode):
        return (False, None, None, None, None, None, "not a regular file")
    size = int(info.st_size)
    if size == 0:
        return (True, False, None, None, None, 0, "zero-byte file")
    width = height = None
    mode = None
    try:
        with Image.open(path) as img:
            width, height = (int(v) for v in img.size)
            mode = img.mode
            if full_decode:
                img.load()
            elif img.format == "JPEG":
                img.draft(mode, (max(1, width // 8), max(1, height // 8)))
                img.load()
            elif img.format == "PNG":
                img.verify()
            else:
                img.load()
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, struct.error, ...)
        return (True, False, width, height, mode, size, f"{type(exc).__name__}: {exc}")
    return (True, True, width, height, mode, size, None)


def check_files(
    paths: Sequence[str],
    workers: int = 2,
    chunksize: int = 64,
    min_parallel: int = 256,
    full_decode: bool = False,
) -> list[FileCheck]:
    """:func:`check_file` over ``paths``, in ``workers`` processes (0: one per CPU core)."""
    n_workers = workers or os.cpu_count() or 1
    check = partial(check_file, full_decode=full_decode)
    if n_workers <= 1 or len(paths) < max(min_parallel, 2):
        return [check(p) for p in paths]
    n_workers = min(n_workers, len(paths))
    chunk = max(1, min(chunksize, len(paths) // (n_workers * 4) or 1))
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(check, paths, chunksize=chunk))


def resolve_paths(images: pd.DataFrame, roots: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Absolute-or-as-given file paths of the images table, plus a per-row problem ('' if none).

    ``images.path`` is relative to ``roots[images.source]``; a source without a root or a null
    path yields an empty path and the problem text.
    """
    paths: list[str] = []
    problems: list[str] = []
    lacking = [c for c in ("source", "path") if c not in images.columns]
    if lacking:
        problem = f"the images table lacks column(s) {lacking}"
        return [""] * len(images), [problem] * len(images)
    for source, rel in zip(images["source"].tolist(), images["path"].tolist(), strict=True):
        root = roots.get(source) if isinstance(source, str) else None
        if root is None:
            paths.append("")
            problems.append(
                f"no image root for source {source!r} in image_roots (known: {sorted(roots)})"
            )
        elif not isinstance(rel, str) or not rel:
            paths.append("")
            problems.append("path is null or empty in the images table")
        else:
            paths.append(str(Path(root) / rel))
            problems.append("")
    return paths, problems


def check_images(
    images: pd.DataFrame,
    roots: Mapping[str, str],
    workers: int = 2,
    chunksize: int = 64,
    min_parallel: int = 256,
    full_decode: bool = False,
) -> pd.DataFrame:
    """The per-image table (see :data:`IMAGE_CHECK_COLUMNS`) for every row of ``images``."""
    paths, problems = resolve_paths(images, roots)
    to_check = [i for i, problem in enumerate(problems) if not problem]
    checked = check_files(
        [paths[i] for i in to_check],
        workers=workers,
        chunksize=chunksize,
        min_parallel=min_parallel,
        full_decode=full_decode,
    )
    rows: list[FileCheck] = [(False, None, None, None, None, None, p) for p in problems]
    for i, result in zip(to_check, checked, strict=True):
        rows[i] = result
    columns = list(zip(*rows, strict=True)) if rows else [()] * 7
    ids = images["image_id"].tolist() if "image_id" in images.columns else [None] * len(images)
    data: dict[str, Any] = {
        "image_id": pd.Series(ids, dtype=object),
        "path": pd.Series(paths, dtype=object),
        "exists": pd.Series(columns[0], dtype=bool),
        "decodes": pd.Series(columns[1], dtype="boolean"),
        "width": pd.Series(columns[2], dtype="Int32"),
        "height": pd.Series(columns[3], dtype="Int32"),
        "mode": pd.Series(columns[4], dtype=object),
        "bytes": pd.Series(columns[5], dtype="Int64"),
        "error": pd.Series(columns[6], dtype=object),
    }
    return pd.DataFrame(data, columns=list(IMAGE_CHECK_COLUMNS))
