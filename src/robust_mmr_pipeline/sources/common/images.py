"""Source images: probing each file once (size limits, unreadable files) and the image catalogue."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from PIL import UnidentifiedImageError

from robust_mmr_pipeline.schema import conform, empty
from robust_mmr_pipeline.sources.common.annotations import safe_relative
from robust_mmr_pipeline.sources.common.bad_records import BadRecords
from robust_mmr_pipeline.validation.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    open_image,
    outside_root,
    pixel_problem,
    side_problem,
)


@dataclass(frozen=True)
class ImageProbe:
    width: int
    height: int
    sha256: str


class ImageSizeError(ValueError):
    """The image header declares a size outside the limits; nothing was decoded. ``fix`` says
    what to do about it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


@dataclass(frozen=True)
class ImageLimits:
    """The sizes an ingested image may have (validation.images.max_pixels / min_side)."""

    max_pixels: int | None = DEFAULT_MAX_PIXELS
    min_side: int | None = DEFAULT_MIN_SIDE


# Ingestion sets them for the readers it calls (:func:`image_pixel_limit`), so the readers'
# signatures stay as published.
_LIMITS: ContextVar[ImageLimits | None] = ContextVar("image_limits", default=None)


@contextmanager
def image_pixel_limit(
    max_pixels: int | None, min_side: int | None = DEFAULT_MIN_SIDE
) -> Iterator[None]:
    """Within the block, :func:`probe_image` rejects images above ``max_pixels`` pixels or with
    a side below ``min_side``."""
    token = _LIMITS.set(ImageLimits(max_pixels, min_side))
    try:
        yield
    finally:
        _LIMITS.reset(token)


def probe_image(path: Path) -> ImageProbe:
    """Decode ``path`` fully (catching truncated files) and return its size and content hash.

    The header's width x height is checked against the limits (:func:`image_pixel_limit`)
    before anything is decoded. Raises ImageSizeError outside them, OSError /
    UnidentifiedImageError / ValueError for unreadable images.
    """
    data = path.read_bytes()
    if not data:
        raise ValueError("zero-byte file")
    limits = _LIMITS.get() or ImageLimits()
    with open_image(path) as img:
        width, height = img.size
        too_large = pixel_problem(width, height, limits.max_pixels)
        if too_large is not None:
            raise ImageSizeError(
                f"image is too large: {too_large}", "downscale the image, or raise the limit"
            )
        too_small = side_problem(width, height, limits.min_side)
        if too_small is not None:
            raise ImageSizeError(
                f"image is too small: {too_small}",
                "replace it with the full image, or lower validation.images.min_side",
            )
        img.load()
    return ImageProbe(width=width, height=height, sha256=hashlib.sha256(data).hexdigest())


_MISSING_IMAGE = (
    "image file is missing",
    "restore the file or correct the image name in the annotation",
)


def _probe_with_reason(path: Path) -> ImageProbe | tuple[str, str]:
    """Probe ``path``; on failure return ``(reason, fix)`` instead of raising."""
    if not path.is_file():
        return _MISSING_IMAGE
    try:
        return probe_image(path)
    except ImageSizeError as exc:
        return (str(exc), exc.fix)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return (f"image cannot be decoded ({exc})", "re-download or re-export the image")


def probe_or_report(path: Path, record: str, bad: BadRecords) -> ImageProbe | None:
    """Probe an image, reporting a missing or unreadable file as a bad record."""
    result = _probe_with_reason(path)
    if isinstance(result, ImageProbe):
        return result
    bad.report(path, record, *result)
    return None


class ImageCatalog:
    """The images of one source: each file is decoded once, each image id gets one row.

    ``add`` probes the file (fully decoding it) the first time its path is seen and caches the
    result, so an image referenced by many records is decoded once; a missing or unreadable
    image is reported as a bad record for every record that references it. Paths in the table
    are relative to the source root, in POSIX form. The first record to name an image fixes its
    modality, organ and domain.
    """

    def __init__(self, root: Path, bad: BadRecords) -> None:
        self.root = root
        self.bad = bad
        self._results: dict[str, ImageProbe | tuple[str, str]] = {}
        self._rows: dict[str, dict[str, Any]] = {}
        self._paths: dict[str, str] = {}

    def add(
        self,
        image_id: str,
        rel_path: str | PurePosixPath,
        record: str,
        *,
        modality: str = "unknown",
        organ: str = "unknown",
        domain: str = "unknown",
        annotation: Path | None = None,
    ) -> bool:
        """Register ``rel_path`` as ``image_id``; return False (after reporting) if unusable.

        ``annotation``: the file holding ``record``, named by a report about the record's image
        path itself (a report about the image names the image file)."""
        rel = safe_relative(str(rel_path))
        if rel is None:
            self.bad.report(
                annotation or self.root,
                record,
                f"image path {str(rel_path)!r} is absolute or leaves the dataset folder "
                f"{self.root}",
                "write image paths relative to the dataset folder (img/a.png for "
                f"{self.root / 'img' / 'a.png'})",
            )
            return False
        escape = outside_root(self.root / rel, self.root)
        if escape is not None:  # the text is inside; a symbolic link on the way leads out
            self.bad.report(
                self.root / rel,
                record,
                f"image path {rel.as_posix()!r} leaves the dataset folder: {escape}",
                "copy the image into the dataset folder instead of linking to it",
            )
            return False
        key = rel.as_posix()
        known = self._paths.get(image_id)
        if known is not None and known != key:
            self.bad.report(
                self.root / key,
                record,
                f"image id {image_id!r} already names {known}",
                "give each image file a distinct name",
            )
            return False
        if key not in self._results:
            self._results[key] = _probe_with_reason(self.root / rel)
        result = self._results[key]
        if not isinstance(result, ImageProbe):
            self.bad.report(self.root / key, record, *result)
            return False
        if image_id not in self._rows:
            self._paths[image_id] = key
            self._rows[image_id] = {
                "image_id": image_id,
                "source": self.bad.source,
                "path": key,
                "modality": modality,
                "organ": organ,
                "domain": domain,
                "width": result.width,
                "height": result.height,
                "sha256": result.sha256,
            }
        return True

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def update(self, image_id: str, **values: str) -> None:
        """Set metadata (modality, organ, domain) of an image already in the catalogue."""
        row = self._rows[image_id]
        for key, value in values.items():
            if key not in ("modality", "organ", "domain"):
                raise KeyError(f"only modality, organ and domain can be updated, not {key!r}")
            row[key] = value

    def get(self, image_id: str, column: str) -> Any:
        """One column of an image's row."""
        return self._rows[image_id][column]

    def frame(self) -> pd.DataFrame:
        """The images table, conformed to the unified schema."""
        if not self._rows:
            return empty("images")
        return conform(pd.DataFrame(list(self._rows.values())), "images", origin=self.bad.source)
