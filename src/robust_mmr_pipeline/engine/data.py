"""Images from manifests: decoding and the decode-once image cache.

Image cache
-----------
:class:`ImageCache` decodes every image once, resizes it to ``image_size`` x ``image_size`` and
stores it in one uint8 ``.npy`` file opened as a memory map: ``[N, H, W]`` for grayscale
(``channels=1``, the default) or ``[N, H, W, 3]`` for RGB. Later epochs read bytes from the map
and never decode JPEG/PNG again. The JSON sidecar ``index.json`` maps ``image_id`` -> row, source
path and sha256, plus the image size, channels and resize mode. Rebuilding is incremental: rows
whose sha256 (and settings) are unchanged are copied, only new or changed images are decoded; a
build with nothing new writes nothing. The sha256 comes from the manifest's ``sha256`` column
when present (ingestion computed it), else from the file's bytes (``hash_files=True`` always
hashes). A build writes a new data file and swaps the sidecar atomically, so readers of the old
sidecar never see a half-written cache. Build from one process (a pipeline node before training,
or the main process of a multi-process run); any number of processes may read.

Resize modes (``resize_mode``):

* ``pad``    (default) scale the longer side to ``image_size`` keeping the aspect ratio, centre
  the image on a black square. Nothing is cut off: safe for findings near borders.
* ``crop``   scale the shorter side to ``image_size``, centre-crop the square. No padding, but
  the borders of non-square images are lost.
* ``stretch`` resize to the square ignoring the aspect ratio.

Images of 16-bit or float modes (common for radiology PNG/TIFF) are min-max scaled to 0..255
before conversion, instead of being clipped by PIL.

Pair datasets and collation are in :mod:`.pairs`, sharding in :mod:`.sharding`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image

from robust_mmr_pipeline.io_utils import atomic_write_text, fsync_file, unique_suffix

LOGGER = logging.getLogger(__name__)

ResizeMode = Literal["pad", "crop", "stretch"]
RESIZE_MODES: tuple[str, ...] = ("pad", "crop", "stretch")
SIDECAR_NAME = "index.json"
CACHE_FORMAT_VERSION = 1
_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


# --------------------------------------------------------------------------- decoding


def _to_8bit(image: Image.Image) -> Image.Image:
    """Min-max scale 16-bit / int / float images to 8-bit grayscale."""
    array = np.asarray(image, dtype=np.float64)
    low, high = float(np.min(array)), float(np.max(array))
    scaled = np.zeros_like(array) if high <= low else (array - low) * (255.0 / (high - low))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def load_image(
    path: str | os.PathLike[str],
    image_size: int,
    channels: int = 1,
    resize_mode: ResizeMode = "pad",
) -> np.ndarray:
    """Decode, convert and resize one image: uint8 ``[H, W]`` (channels 1) or ``[H, W, 3]``."""
    with Image.open(path) as opened:
        opened.load()
        image = opened
        if image.mode in _HIGH_DEPTH_MODES:
            image = _to_8bit(image)
        image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    if resize_mode == "stretch":
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    elif resize_mode == "pad":
        scale = image_size / max(width, height)
        new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = image.resize(new_size, Image.Resampling.BICUBIC)
        canvas = Image.new(image.mode, (image_size, image_size), 0)
        canvas.paste(resized, ((image_size - new_size[0]) // 2, (image_size - new_size[1]) // 2))
        image = canvas
    elif resize_mode == "crop":
        scale = image_size / min(width, height)
        new_size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
        resized = image.resize(new_size, Image.Resampling.BICUBIC)
        left = (new_size[0] - image_size) // 2
        top = (new_size[1] - image_size) // 2
        image = resized.crop((left, top, left + image_size, top + image_size))
    else:
        raise ValueError(f"resize_mode must be one of {list(RESIZE_MODES)}, got {resize_mode!r}")
    return np.asarray(image, dtype=np.uint8)


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _decode_job(job: tuple[str, int, int, str]) -> np.ndarray:
    path, image_size, channels, resize_mode = job
    return load_image(path, image_size, channels, resize_mode)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- image cache


@dataclass(frozen=True)
class ImageSource:
    """One image to cache: its id, resolved path and content hash."""

    image_id: str
    path: str
    sha256: str


@dataclass(frozen=True)
class CacheBuildStats:
    """What a build did: images decoded, rows reused, and whether files were written."""

    decoded: int
    reused: int
    written: bool


def image_sources(
    images: pd.DataFrame | Mapping[str, str | os.PathLike[str]],
    root: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    hash_files: bool = False,
) -> list[ImageSource]:
    """Resolve an images manifest into :class:`ImageSource` rows (deduplicated by image_id).

    ``images``: a frame with ``image_id`` and ``path`` (optional ``sha256``, ``source``), or a
    mapping image_id -> path. Relative paths are joined to ``root``: one folder, or a mapping
    source -> folder (then the frame needs a ``source`` column).
    """
    if isinstance(images, Mapping):
        frame = pd.DataFrame({"image_id": list(images), "path": [str(p) for p in images.values()]})
    else:
        frame = images
    missing = [c for c in ("image_id", "path") if c not in frame.columns]
    if missing:
        raise ValueError(f"images manifest lacks column(s) {missing}; needs image_id and path.")
    sources: dict[str, ImageSource] = {}
    has_sha = "sha256" in frame.columns and not hash_files
    for row in frame.itertuples(index=False):
        image_id = str(row.image_id)
        path = Path(str(row.path))
        if not path.is_absolute() and root is not None:
            if isinstance(root, Mapping):
                source = getattr(row, "source", None)
                if source not in root:
                    raise ValueError(
                        f"image {image_id!r}: no root folder for source {source!r}; "
                        f"roots given for {sorted(root)}."
                    )
                path = Path(root[source]) / path
            else:
                path = Path(root) / path
        if not path.is_file():
            raise FileNotFoundError(f"image {image_id!r}: file {path} does not exist.")
        sha = str(row.sha256) if has_sha and isinstance(row.sha256, str) and row.sha256 else ""
        if not sha:
            sha = file_sha256(path)
        previous = sources.get(image_id)
        if previous is not None and previous.sha256 != sha:
            raise ValueError(
                f"image_id {image_id!r} appears twice with different content "
                f"({previous.path} vs {path}); image ids must be unique."
            )
        sources[image_id] = ImageSource(image_id=image_id, path=str(path), sha256=sha)
    return list(sources.values())


class ImageCache:
    """Memory-mapped uint8 cache of resized images, keyed by image_id (see module docstring).

    Open an existing cache with ``ImageCache(cache_dir)``; build or refresh one with
    :meth:`ImageCache.build`. The memory map is opened lazily in each process (DataLoader
    workers included) and never pickled.
    """

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.cache_dir = Path(cache_dir)
        sidecar = self.cache_dir / SIDECAR_NAME
        if not sidecar.is_file():
            raise FileNotFoundError(
                f"No image cache at {self.cache_dir} ({SIDECAR_NAME} missing); "
                "build it with ImageCache.build(images, cache_dir, ...)."
            )
        self.meta: dict[str, Any] = json.loads(sidecar.read_text(encoding="utf-8"))
        self.image_size = int(self.meta["image_size"])
        self.channels = int(self.meta["channels"])
        self.resize_mode = str(self.meta["resize_mode"])
        self.data_path = self.cache_dir / self.meta["data_file"]
        self._rows = {key: int(entry["row"]) for key, entry in self.meta["entries"].items()}
        self._array: np.ndarray | None = None
        self.stats = CacheBuildStats(decoded=0, reused=len(self._rows), written=False)

    # -- reading -----------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    @property
    def array(self) -> np.ndarray:
        """The memory map ``[N, H, W]`` or ``[N, H, W, 3]`` (copy-on-write: writes stay local)."""
        if self._array is None:
            self._array = np.load(self.data_path, mmap_mode="c")
        return self._array

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._rows

    @property
    def image_ids(self) -> list[str]:
        """Image ids in row order."""
        return sorted(self._rows, key=self._rows.__getitem__)

    def row(self, image_id: str) -> int:
        """Row index of ``image_id``."""
        try:
            return self._rows[image_id]
        except KeyError:
            raise KeyError(
                f"image_id {image_id!r} is not in the image cache {self.cache_dir}; rebuild the "
                "cache from an images manifest that contains it."
            ) from None

    def get(self, image_id: str) -> np.ndarray:
        """uint8 ``[H, W]`` or ``[H, W, 3]`` view of one cached image."""
        return self.array[self.row(image_id)]

    def tensor(self, image_id: str) -> torch.Tensor:
        """uint8 ``[C, H, W]`` tensor sharing memory with the cache."""
        view = torch.from_numpy(self.get(image_id))
        return view.unsqueeze(0) if view.ndim == 2 else view.permute(2, 0, 1)

    # -- building ----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        images: pd.DataFrame | Mapping[str, str | os.PathLike[str]],
        cache_dir: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
        image_size: int = 224,
        channels: int = 1,
        resize_mode: ResizeMode = "pad",
        workers: int = 0,
        hash_files: bool = False,
        chunk_size: int = 16,
    ) -> ImageCache:
        """Build or refresh the cache at ``cache_dir`` for ``images``; returns it opened.

        ``workers`` > 1 decodes with a process pool of that size. ``stats`` on the returned
        cache tells how many images were decoded and reused.
        """
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"resize_mode must be one of {list(RESIZE_MODES)}, got {resize_mode!r}"
            )
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        sources = image_sources(images, root=root, hash_files=hash_files)
        settings = {"image_size": image_size, "channels": channels, "resize_mode": resize_mode}

        old: ImageCache | None = None
        try:
            candidate = cls(cache_dir)
            same_settings = all(candidate.meta.get(k) == v for k, v in settings.items())
            if same_settings and candidate.data_path.is_file():
                old = candidate
        except (FileNotFoundError, KeyError, ValueError):
            old = None

        reuse: dict[int, int] = {}
        to_decode: list[int] = []
        for row, source in enumerate(sources):
            entry = old.meta["entries"].get(source.image_id) if old is not None else None
            if entry is not None and entry.get("sha256") == source.sha256:
                reuse[row] = int(entry["row"])
            else:
                to_decode.append(row)

        if old is not None and not to_decode:
            unchanged = len(sources) == len(old) and all(
                reuse[row] == row and old.meta["entries"][s.image_id]["path"] == s.path
                for row, s in enumerate(sources)
            )
            if unchanged:
                old.stats = CacheBuildStats(decoded=0, reused=len(sources), written=False)
                return old

        shape: tuple[int, ...] = (len(sources), image_size, image_size)
        if channels == 3:
            shape = (*shape, 3)
        data_name = f"images-{unique_suffix()}.npy"
        data_path = cache_dir / data_name
        array = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.uint8, shape=shape)
        try:
            if reuse and old is not None:
                source_array = old.array
                for row, old_row in reuse.items():
                    array[row] = source_array[old_row]
            jobs = [(sources[row].path, image_size, channels, resize_mode) for row in to_decode]
            for row, decoded in zip(to_decode, _decode_all(jobs, workers, chunk_size), strict=True):
                array[row] = decoded
            array.flush()
            del array
            fsync_file(data_path)
            meta = {
                "format_version": CACHE_FORMAT_VERSION,
                **settings,
                "dtype": "uint8",
                "shape": list(shape),
                "data_file": data_name,
                "entries": {
                    s.image_id: {"row": row, "path": s.path, "sha256": s.sha256}
                    for row, s in enumerate(sources)
                },
            }
            sidecar = json.dumps(meta, indent=1, sort_keys=True)
            atomic_write_text(cache_dir / SIDECAR_NAME, sidecar, durable=True)
        except BaseException:
            data_path.unlink(missing_ok=True)
            raise
        for stale in cache_dir.glob("images-*.npy"):
            if stale.name != data_name:
                stale.unlink(missing_ok=True)
        for stale in cache_dir.glob(f".{SIDECAR_NAME}.*.tmp"):
            stale.unlink(missing_ok=True)
        LOGGER.info(
            "Image cache %s: %d images (%d decoded, %d reused)",
            cache_dir,
            len(sources),
            len(to_decode),
            len(reuse),
        )
        cache = cls(cache_dir)
        cache.stats = CacheBuildStats(decoded=len(to_decode), reused=len(reuse), written=True)
        return cache


def _decode_all(
    jobs: list[tuple[str, int, int, str]], workers: int, chunk_size: int
) -> Iterator[np.ndarray]:
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(_decode_job, jobs, chunksize=max(1, chunk_size))
    else:
        for job in jobs:
            yield _decode_job(job)
