"""The per-image file check: does each file of the images table exist, decode, and how big is it.

One row per image: ``image_id, path, exists, in_root, decodes, width, height, mode, bytes,
error``, which Great Expectations then validates (:mod:`robust_mmr_pipeline.validation.suites`).

Safety: the path is resolved (every symbolic link followed) and a file outside its source's
image root is never opened (``in_root`` False). The header's width x height is compared with
``validation.images.max_pixels`` before anything is decoded: a larger image is reported, not
decoded (this limit replaces Pillow's own decompression-bomb check, whose warning let a
12000 x 12000 PNG through). Ingestion applies the same two rules (:func:`outside_root`,
:func:`open_image`).

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
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

# 8000 x 8000: the largest radiographs (full-field mammograms, ~4096 x 5625 = 23 M pixels) fit
# with room to spare; a 12000 x 12000 PNG (144 M pixels, ~430 MB decoded as RGB) does not.
DEFAULT_MAX_PIXELS = 64_000_000
# The shortest side an image may have: a 1 x 1 (or 3 x 200) image is a placeholder, a tracking
# pixel or a failed export, not a scan. Small real images are the image_size check's warning.
DEFAULT_MIN_SIDE = 4

IMAGE_CHECK_COLUMNS: tuple[str, ...] = (
    "image_id",
    "path",
    "exists",
    "in_root",
    "decodes",
    "width",
    "height",
    "mode",
    "bytes",
    "error",
)

# What check_file returns, in this order: the per-image columns after image_id and path.
FILE_CHECK_FIELDS: tuple[str, ...] = IMAGE_CHECK_COLUMNS[2:]
FileCheck = tuple[
    bool, bool | None, bool | None, int | None, int | None, str | None, int | None, str | None
]


def outside_root(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not inside ``root`` once every symbolic link is resolved (None if it is).

    The text of a path says nothing about where a symlink in it points: ``images/a.png`` may
    be a link to ``/etc/passwd``. Both paths are resolved with ``os.path.realpath``.
    """
    real = os.path.realpath(path)
    real_root = _real_root(os.fspath(root))
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return None
    return f"the path resolves to {real}, outside the image root {real_root} (a symbolic link?)"


@lru_cache(maxsize=64)
def _real_root(root: str) -> str:  # one source root serves thousands of images
    return os.path.realpath(root)


def pixel_problem(width: int, height: int, max_pixels: int | None) -> str | None:
    """Why a ``width`` x ``height`` image is too large to decode (None if it is not)."""
    if max_pixels is None or width * height <= max_pixels:
        return None
    return (
        f"{width} x {height} = {width * height:,} pixels, above validation.images.max_pixels "
        f"= {max_pixels:,} (not decoded)"
    )


def side_problem(width: int, height: int, min_side: int | None) -> str | None:
    """Why a ``width`` x ``height`` image is too small to be a scan (None if it is not)."""
    if min_side is None or min(width, height) >= min_side:
        return None
    return (
        f"{width} x {height} pixels, a side below validation.images.min_side = {min_side} (a "
        "placeholder or a failed export, not a scan)"
    )


@contextmanager
def open_image(path: str | os.PathLike[str]) -> Iterator[Image.Image]:
    """``Image.open`` (reads the header only) without Pillow's decompression-bomb check.

    Callers apply :func:`pixel_problem` to ``img.size`` before decoding anything: the
    project's ``max_pixels`` replaces Pillow's global ``MAX_IMAGE_PIXELS`` (which only warns up
    to twice its value, and whose error hides the image size). The global is restored after.
    """
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as img:
            yield img
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def check_file(
    path: str,
    full_decode: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    root: str | None = None,
) -> FileCheck:
    """Check one image file; never raises (a failure is described in the ``error`` field).

    ``decodes`` is None when the file does not exist, lies outside ``root`` (never opened) or
    has more than ``max_pixels`` pixels (never decoded): such a file counts once, under its own
    check. ``in_root`` is None when no ``root`` is given. ``width``, ``height`` and ``mode``
    are the header's whenever the header could be read.
    """
    in_root: bool | None = None
    if root is not None:
        escape = outside_root(path, root)
        in_root = escape is None
        if escape is not None:
            exists = os.path.isfile(path)
            return (exists, False, None, None, None, None, None, escape)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return (False, in_root, None, None, None, None, None, "file not found")
    except OSError as exc:
        return (False, in_root, None, None, None, None, None, f"cannot stat file: {exc}")
    if not stat.S_ISREG(info.st_mode):
        return (False, in_root, None, None, None, None, None, "not a regular file")
    size = int(info.st_size)
    if size == 0:
        return (True, in_root, False, None, None, None, 0, "zero-byte file")
    width = height = None
    mode = None
    try:
        with open_image(path) as img:
            width, height = (int(v) for v in img.size)
            mode = img.mode
            too_large = pixel_problem(width, height, max_pixels)
            if too_large is not None:
                return (True, in_root, None, width, height, mode, size, too_large)
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
        error = f"{type(exc).__name__}: {exc}"
        return (True, in_root, False, width, height, mode, size, error)
    return (True, in_root, True, width, height, mode, size, None)


def _check_pair(
    item: tuple[str, str | None], full_decode: bool, max_pixels: int | None
) -> FileCheck:
    path, root = item
    return check_file(path, full_decode=full_decode, max_pixels=max_pixels, root=root)


def check_files(
    paths: Sequence[str],
    workers: int = 2,
    chunksize: int = 64,
    min_parallel: int = 256,
    full_decode: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    roots: Sequence[str | None] | None = None,
) -> list[FileCheck]:
    """:func:`check_file` over ``paths`` (each inside ``roots[i]`` when given), in ``workers``
    processes (0: one per CPU core)."""
    n_workers = workers or os.cpu_count() or 1
    items = list(zip(paths, roots if roots is not None else [None] * len(paths), strict=True))
    check = partial(_check_pair, full_decode=full_decode, max_pixels=max_pixels)
    if n_workers <= 1 or len(items) < max(min_parallel, 2):
        return [check(item) for item in items]
    n_workers = min(n_workers, len(items))
    chunk = max(1, min(chunksize, len(items) // (n_workers * 4) or 1))
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(check, items, chunksize=chunk))


def resolve_paths(
    images: pd.DataFrame, roots: Mapping[str, str]
) -> tuple[list[str], list[str], list[str]]:
    """File paths of the images table, each row's image root, and a per-row problem ('' if
    none).

    ``images.path`` is relative to ``roots[images.source]``; a source without a root or a null
    path yields an empty path and the problem text.
    """
    paths: list[str] = []
    row_roots: list[str] = []
    problems: list[str] = []
    lacking = [c for c in ("source", "path") if c not in images.columns]
    if lacking:
        problem = f"the images table lacks column(s) {lacking}"
        return [""] * len(images), [""] * len(images), [problem] * len(images)
    for source, rel in zip(images["source"].tolist(), images["path"].tolist(), strict=True):
        root = roots.get(source) if isinstance(source, str) else None
        if root is None:
            paths.append("")
            row_roots.append("")
            problems.append(
                f"no image root for source {source!r} in image_roots (known: {sorted(roots)})"
            )
        elif not isinstance(rel, str) or not rel:
            paths.append("")
            row_roots.append(root)
            problems.append("path is null or empty in the images table")
        else:
            paths.append(str(Path(root) / rel))
            row_roots.append(root)
            problems.append("")
    return paths, row_roots, problems


def check_images(
    images: pd.DataFrame,
    roots: Mapping[str, str],
    workers: int = 2,
    chunksize: int = 64,
    min_parallel: int = 256,
    full_decode: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> pd.DataFrame:
    """The per-image table (see :data:`IMAGE_CHECK_COLUMNS`) for every row of ``images``."""
    paths, row_roots, problems = resolve_paths(images, roots)
    to_check = [i for i, problem in enumerate(problems) if not problem]
    checked = check_files(
        [paths[i] for i in to_check],
        workers=workers,
        chunksize=chunksize,
        min_parallel=min_parallel,
        full_decode=full_decode,
        max_pixels=max_pixels,
        roots=[row_roots[i] for i in to_check],
    )
    rows: list[FileCheck] = [(False, None, None, None, None, None, None, p) for p in problems]
    for i, result in zip(to_check, checked, strict=True):
        rows[i] = result
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    ids = images["image_id"].tolist() if "image_id" in images.columns else [None] * len(images)
    data: dict[str, Any] = {
        "image_id": pd.Series(ids, dtype=object),
        "path": pd.Series(paths, dtype=object),
        "exists": pd.Series(columns[0], dtype=bool),
        "in_root": pd.Series(columns[1], dtype="boolean"),
        "decodes": pd.Series(columns[2], dtype="boolean"),
        "width": pd.Series(columns[3], dtype="Int32"),
        "height": pd.Series(columns[4], dtype="Int32"),
        "mode": pd.Series(columns[5], dtype=object),
        "bytes": pd.Series(columns[6], dtype="Int64"),
        "error": pd.Series(columns[7], dtype=object),
    }
    return pd.DataFrame(data, columns=list(IMAGE_CHECK_COLUMNS))
