"""One home for atomic writes: a file or a folder appears whole under its final name, or not at all.

The content goes to a temporary name next to the target (same file system) and is renamed over
the target with ``os.replace`` (atomic on POSIX and Windows). A crash leaves at most a hidden
temporary, never a half-written target. ``durable=True`` also fsyncs the file and its folder,
so the new content survives a power loss, not only a killed process.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def fsync_file(path: Path) -> None:
    """Flush a written file's content to the disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """:func:`fsync_file` every file and :func:`fsync_dir` every folder under ``path``."""
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in filenames:
            fsync_file(Path(dirpath) / filename)
        fsync_dir(Path(dirpath))


def unique_suffix() -> str:
    """A short random token for temporary names (two writers never share one)."""
    return uuid.uuid4().hex[:12]


@contextmanager
def atomic_text_file(
    path: Path, *, tmp: Path | None = None, durable: bool = False
) -> Iterator[IO[str]]:
    """A UTF-8 text handle on a temporary file next to ``path``; on success the file replaces
    ``path`` atomically, on failure it is removed.

    ``tmp`` names the temporary (default ``.<name>.<pid>-<random>.tmp``, unique per writer, so
    two writers of one file never write into or rename each other's temporary).
    """
    path = Path(path)
    if tmp is None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{unique_suffix()}.tmp")
    try:
        with tmp.open("x", encoding="utf-8") as handle:
            yield handle
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(
    path: Path, text: str, *, tmp: Path | None = None, durable: bool = False
) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_text_file`)."""
    with atomic_text_file(path, tmp=tmp, durable=durable) as handle:
        handle.write(text)


@contextmanager
def atomic_directory(
    target: Path, *, tmp_prefix: str = ".tmp-", old_prefix: str = ".old-"
) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success it atomically becomes ``target``.

    On any exception the temporary folder is removed and ``target`` is left as it was. An
    existing ``target`` is replaced (moved aside, swapped in, then deleted). Everything is
    fsync'ed. Leftovers of a hard kill carry ``tmp_prefix`` / ``old_prefix``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{tmp_prefix}{target.name}-{unique_suffix()}"
    tmp.mkdir()
    try:
        yield tmp
        fsync_tree(tmp)
        if target.exists() or target.is_symlink():
            old = target.parent / f"{old_prefix}{target.name}-{unique_suffix()}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
