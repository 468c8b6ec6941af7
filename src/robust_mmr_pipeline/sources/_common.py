"""Shared helpers for source adapters: bad-record policy, image probing, id hygiene.

Besides the bad-record policy (:class:`BadRecords`) and image probing (:func:`probe_or_report`),
this module holds what every reader of a published format needs: typed reader options with a
clear error for unknown keys (:func:`parse_options`), annotation loading that names the file and
the line on a decode error (:func:`load_json`, :func:`read_text_lines`), record field checks
(:func:`record_problem`), an image catalogue that decodes each file once
(:class:`ImageCatalog`) and a few text helpers shared by several adapters.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Literal, TypeVar

import pandas as pd
import pyarrow as pa
from PIL import UnidentifiedImageError

from robust_mmr_pipeline.schema import SPLITS, TABLES, SourceTables, conform, empty
from robust_mmr_pipeline.textnorm import (
    BIDI_FIX,
    bidi_controls,
    is_blank,
    normalize_text,
    text_problem,
)
from robust_mmr_pipeline.validation.images import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    open_image,
    outside_root,
    pixel_problem,
    side_problem,
)

# raise: stop at the first bad record; drop: move every bad record to the rejects table;
# tolerate: drop like ``drop``, but ingestion raises when a source's rejected fraction exceeds
# its ``max_bad_fraction`` (ingest.py), so a published release with a few broken records runs
# while a wrong folder or format still stops the run.
OnBadRecord = Literal["raise", "drop", "tolerate"]
BAD_RECORD_POLICIES: tuple[str, ...] = ("raise", "drop", "tolerate")

T = TypeVar("T")


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


def find_duplicates(frame: pd.DataFrame, key: str) -> list[str]:
    """The values of ``key`` that occur more than once."""
    counts = frame[key].value_counts()
    return sorted(counts[counts > 1].index.astype(str).tolist())


# --------------------------------------------------------------------------------------------
# Reader arguments: policy, source name, root folder, typed options
# --------------------------------------------------------------------------------------------

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_policy(on_bad_record: str) -> OnBadRecord:
    """Return ``on_bad_record`` if it is a known policy; raise IngestionError otherwise."""
    if on_bad_record not in BAD_RECORD_POLICIES:
        raise IngestionError(
            f"on_bad_record must be one of {list(BAD_RECORD_POLICIES)}, got {on_bad_record!r}."
        )
    return typing.cast(OnBadRecord, on_bad_record)


def check_name(name: str) -> str:
    """Validate a source name (it prefixes every id the source produces)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise IngestionError(
            f"source name {name!r} is not usable as an id prefix: use letters, digits, '_', '-' "
            "or '.', starting with a letter or digit (set `name` in ingestion.sources)."
        )
    return name


def check_root(root: Path | str, kind: str) -> Path:
    """Return ``root`` as a Path, raising IngestionError when the folder does not exist."""
    path = Path(root)
    if not path.is_dir():
        raise IngestionError(
            f"{kind}: dataset folder {path} does not exist. Point the source's `root` at your "
            f"copy of {kind} as published."
        )
    return path


def _type_label(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_label(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is tuple:
        return f"list of {_type_label(typing.get_args(annotation)[0])}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping of {_type_label(key)} to {_type_label(value)}"
    return getattr(annotation, "__name__", str(annotation))


_NO_MATCH = object()


def _coerce(value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation`` (lists become tuples), or ``_NO_MATCH``."""
    origin = typing.get_origin(annotation)
    result: Any = _NO_MATCH
    if annotation is Any:
        result = value
    elif annotation is type(None):
        result = None if value is None else _NO_MATCH
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            result = _coerce(value, arg)
            if result is not _NO_MATCH:
                break
    elif origin is Literal:
        result = value if value in typing.get_args(annotation) else _NO_MATCH
    elif annotation is bool:
        result = value if isinstance(value, bool) else _NO_MATCH
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        result = value if ok else _NO_MATCH
    elif annotation is str:
        result = value if isinstance(value, str) else _NO_MATCH
    elif origin is tuple:
        (item_type, *_rest) = typing.get_args(annotation)
        if isinstance(value, list | tuple):
            items = [_coerce(item, item_type) for item in value]
            result = _NO_MATCH if any(i is _NO_MATCH for i in items) else tuple(items)
    elif origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if isinstance(value, Mapping):
            pairs = [(_coerce(k, key_type), _coerce(v, value_type)) for k, v in value.items()]
            bad = any(k is _NO_MATCH or v is _NO_MATCH for k, v in pairs)
            result = _NO_MATCH if bad else dict(pairs)
    return result


def parse_options(cls: type[T], options: Mapping[str, Any] | T | None, kind: str) -> T:
    """Build the adapter's frozen options dataclass ``cls`` from a mapping.

    Unknown keys and values of the wrong type raise IngestionError naming the key and the
    allowed keys (or the expected type). YAML lists become tuples. An instance of ``cls`` is
    returned unchanged.
    """
    if isinstance(options, cls):
        return options
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise IngestionError(
            f"{kind}: options must be a mapping of option name to value, got "
            f"{type(options).__name__}."
        )
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise IngestionError(
            f"{kind}: unknown option(s) {sorted(map(str, unknown))}; allowed options for "
            f"{kind}: {allowed}. Check the spelling under the source's `options`."
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in options.items():
        converted = _coerce(value, hints[key])
        if converted is _NO_MATCH:
            raise IngestionError(
                f"{kind}: option {key!r} must be {_type_label(hints[key])}, got {value!r}."
            )
        values[key] = converted
    try:
        return cls(**values)
    except ValueError as exc:
        raise IngestionError(f"{kind}: invalid options: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Annotation files
# --------------------------------------------------------------------------------------------


def require_file(path: Path, source: str, what: str, fix: str) -> Path:
    """Return ``path`` if it is a file; raise IngestionError naming it and the fix otherwise."""
    if not path.is_file():
        raise IngestionError(f"{source}: {what} {path} does not exist. Fix: {fix}")
    return path


def load_json(path: Path, source: str) -> Any:
    """Parse a JSON annotation file; a decode error names the file, line and column."""
    require_file(path, source, "annotation file", "point the source's root at the published copy")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestionError(
            f"{source}: {path} is not UTF-8 text (byte {exc.start}): re-download the file."
        ) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestionError(
            f"{source}: {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}. Fix: repair or re-download the file."
        ) from exc


def read_text_lines(path: Path, source: str) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a UTF-8 text file (1-based, newline stripped).

    Blank lines are skipped; a trailing carriage return (Windows line end) is removed.
    """
    require_file(path, source, "annotation file", "point the source's root at the published copy")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestionError(
            f"{source}: {path} is not UTF-8 text (byte {exc.start}): re-download the file."
        ) from exc
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if line.strip():
            yield number, line


FieldSpec = Mapping[str, tuple[type, ...]]


def record_problem(record: Any, required: FieldSpec, optional: FieldSpec | None = None) -> str:
    """Describe what is wrong with a JSON record (``""`` when it is well formed).

    ``required`` / ``optional`` map a field to its allowed Python types; booleans never count
    as numbers, required strings must show something (zero-width characters alone are blank)
    and no string may hold bidirectional controls (:mod:`robust_mmr_pipeline.textnorm`).
    """
    if not isinstance(record, dict):
        return f"record is a JSON {type(record).__name__}, expected an object"
    for name in required:
        if name not in record or record[name] is None:
            return f"field {name!r} is missing"
    for name, kinds in {**required, **(optional or {})}.items():
        if name not in record or (name not in required and record[name] is None):
            continue
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            expected = " or ".join(k.__name__ for k in kinds)
            return f"field {name!r} is a {type(value).__name__}, expected {expected}"
        if isinstance(value, str) and bidi_controls(value):
            return text_problem(value, f"field {name!r}")
        if name in required and isinstance(value, str) and is_blank(value):
            return text_problem(value, f"field {name!r}") or f"field {name!r} is empty"
    return ""


def safe_relative(path: str) -> PurePosixPath | None:
    """``path`` as a relative POSIX path inside the source root, or None if it escapes it."""
    rel = PurePosixPath(path.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None
    return rel


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Tables, ids, text
# --------------------------------------------------------------------------------------------


def make_tables(
    bad: BadRecords,
    *,
    images: pd.DataFrame | None = None,
    pairs: list[dict[str, Any]] | None = None,
    vqa: list[dict[str, Any]] | None = None,
    classification: list[dict[str, Any]] | None = None,
) -> SourceTables:
    """Conform the collected rows into :class:`SourceTables` (absent tables are empty)."""

    def table(rows: list[dict[str, Any]] | None, name: str) -> pd.DataFrame:
        if not rows:
            return empty(name)
        return conform(pd.DataFrame(rows), name, origin=bad.source)

    return SourceTables(
        images=images if images is not None else empty("images"),
        pairs=table(pairs, "pairs"),
        vqa=table(vqa, "vqa"),
        classification=table(classification, "classification"),
        rejects=bad.frame(),
    )


SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "unassigned": "unassigned",
}


def canonical_split(value: Any) -> str | None:
    """Map a split value (``train``, ``validation``, ``dev``, …) to the schema's splits."""
    if not isinstance(value, str):
        return None
    split = SPLIT_ALIASES.get(value.strip().lower())
    return split if split in SPLITS else None


# Spellings of "no value" that spreadsheets and pandas write into CSV cells (case-insensitive).
MISSING_VALUE_MARKERS: frozenset[str] = frozenset(
    {"", "nan", "-nan", "na", "n/a", "#n/a", "<na>", "nat", "null", "none"}
)


def missing_value(value: Any) -> bool:
    """Whether a cell means "no value": None, a float NaN, a blank string or a marker such as
    ``NaN``, ``NA``, ``N/A``, ``null`` or ``None`` (any case)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in MISSING_VALUE_MARKERS


def label_problem(value: Any, column: str) -> str:
    """Why ``value`` cannot be a class label ("" when it can): a missing label must not become
    a class called "NaN"."""
    if missing_value(value):
        return f"label column {column!r} holds {value!r}, a missing value, not a class name"
    return ""


def clean_text(text: str) -> str:
    """NFC, invisible format characters removed, runs of white space (tabs, newlines) collapsed
    to single spaces (:func:`robust_mmr_pipeline.textnorm.normalize_text`): a text made only of
    zero-width characters comes out empty."""
    return normalize_text(text)


def blank_columns_problem(raw: Mapping[str, str], blank: list[str]) -> str:
    """The bad-record reason of required columns that show nothing once cleaned, saying which
    invisible characters a non-empty one was made of."""
    details = [text_problem(raw[c], f"column {c!r}") for c in blank if raw[c].strip()]
    details = [d for d in details if d]
    return f"malformed record: column(s) {blank} are empty" + (
        f" ({'; '.join(details)})" if details else ""
    )


def value_text(value: Any) -> str:
    """A JSON scalar (string or number) as text; numbers keep their published digits."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class IdTracker:
    """Reports the second and later records that reuse an id as duplicates (first one kept)."""

    def __init__(self, bad: BadRecords, what: str = "id") -> None:
        self.bad = bad
        self.what = what
        self._seen: dict[str, str] = {}

    def first(self, key: str, file: str | Path, record: str) -> bool:
        """True the first time ``key`` is seen; report a duplicate bad record otherwise."""
        if key in self._seen:
            self.bad.report(
                file,
                record,
                f"duplicate {self.what} {key!r} (first seen at {self._seen[key]})",
                "remove the duplicated record or give it a distinct id",
            )
            return False
        self._seen[key] = record
        return True


# Modality keywords, checked in this order (the acquisition device wins over the technique:
# "CT angiography" is ct, "MR angiography" is mri, "PET/CT" is nuclear, a catheter angiogram is
# angiography).
_MODALITY_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "mri",
        re.compile(
            r"\b(mri|mra|mrcp|mr|magnetic resonance|t1[- ]?weighted|t2[- ]?weighted|t1w|t2w|"
            r"flair|diffusion[- ]weighted|dwi)\b"
        ),
    ),
    (
        "nuclear",
        re.compile(
            r"\b(pet|spect|scintigraphy|scintigram|scintigraphic|nuclear medicine|"
            r"bone scan|fdg)\b"
        ),
    ),
    (
        "ct",
        re.compile(r"\b(ct|cta|cect|hrct|mdct|cbct|computed tomography|computed tomographic)\b"),
    ),
    (
        "ultrasound",
        re.compile(
            r"\b(ultrasound|ultrasonography|ultrasonographic|sonography|sonographic|sonogram|"
            r"echocardiography|echocardiogram|echocardiographic|transthoracic|transesophageal|"
            r"doppler|usg)\b"
        ),
    ),
    ("mammography", re.compile(r"\b(mammography|mammogram|mammograph|mammographic)\b")),
    (
        "angiography",
        re.compile(
            r"\b(angiography|angiogram|angiographic|arteriography|arteriogram|venography|"
            r"venogram|dsa)\b"
        ),
    ),
    (
        "fluoroscopy",
        re.compile(
            r"\b(fluoroscopy|fluoroscopic|barium|esophagram|oesophagram|cystography|"
            r"cystogram|urethrography|urethrogram|hysterosalpingography|arthrogram|"
            r"arthrography|cholangiogram|cholangiography|urogram|urography|pyelogram|"
            r"pyelography|myelogram|myelography|fistulogram|sialogram)\b"
        ),
    ),
    (
        "x-ray",
        re.compile(
            r"\b(x-ray|x-rays|xray|x ray|radiograph|radiographs|radiography|radiographic|"
            r"plain film|roentgenogram|orthopantomogram|panoramic|cephalogram)\b"
        ),
    ),
)

MODALITIES: tuple[str, ...] = (*(name for name, _ in _MODALITY_RULES), "other")


def infer_modality(*texts: str) -> str | None:
    """The imaging modality named in ``texts`` (searched in order), or None if none is named.

    Returns one of ``mri, nuclear, ct, ultrasound, mammography, angiography, fluoroscopy,
    x-ray``; the rules are checked in that order within each text, and the first text that
    names a modality decides (so callers pass the most reliable text first).
    """
    for text in texts:
        lowered = text.lower()
        for name, pattern in _MODALITY_RULES:
            if pattern.search(lowered):
                return name
    return None


@dataclass(frozen=True)
class CsvRow:
    """One data row of a CSV annotation file (``problem``: why it is unusable, ``fix``: what to
    do about it, both empty for a good row)."""

    line: int
    values: dict[str, str]
    problem: str
    fix: str = ""


_SURROGATE = re.compile("[\udc80-\udcff]")
_FIX_ENCODING = (
    "re-save the file as UTF-8 (e.g. `iconv -f cp1252 -t utf-8 in.csv > out.csv`) or correct "
    "the byte"
)


def undecodable_bytes(raw: bytes) -> list[int]:
    """Byte offsets in ``raw`` where UTF-8 decoding fails (the first byte of each bad run)."""
    offsets: list[int] = []
    start = 0
    while start < len(raw):
        try:
            raw[start:].decode("utf-8")
        except UnicodeDecodeError as exc:
            offsets.append(start + exc.start)
            start += exc.end
        else:
            break
    return offsets


def _byte_problem(raw: bytes, offset: int) -> str:
    """What a non-UTF-8 byte is: its value, line, byte offset and what cp1252 reads in it."""
    byte = raw[offset]
    line = raw.count(b"\n", 0, offset) + 1
    guess = bytes([byte]).decode("cp1252", errors="replace")
    hint = f" (in cp1252 / Latin-1 it reads {guess!r})" if guess != "\ufffd" else ""
    return f"byte 0x{byte:02X} at line {line}, byte offset {offset} is not UTF-8{hint}"


def iter_csv_rows(
    path: Path, source: str, columns: list[str], fix: str, delimiter: str = ","
) -> Iterator[CsvRow]:
    """The data rows of a CSV file with a header row, as strings (no NA guessing), one at a
    time: a file of a million rows is never held as a million row objects.

    The header is checked at once: a header without one of ``columns`` (or not UTF-8) raises
    IngestionError naming the columns present. A row whose field count differs from the
    header's, that holds bytes that are not UTF-8 or a bidirectional control character, is
    yielded with ``problem`` (and ``fix``) set, for the adapter to report as a bad record: one
    bad byte costs its row, not the file. Blank rows are skipped; ``line`` is the row's last
    line in the file (quoted fields may span lines).
    """
    require_file(path, source, "annotation file", "point the source's root at the published copy")
    raw = path.read_bytes()
    bad_offsets = undecodable_bytes(raw)
    bad_lines = {raw.count(b"\n", 0, offset) + 1: offset for offset in reversed(bad_offsets)}
    # Undecodable bytes become lone surrogates, so the rest of the file still parses; the file
    # is decoded as it is read (no second copy of it as one string).
    handle = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")  # noqa: SIM115
    reader = csv.reader(handle, delimiter=delimiter)

    def not_csv(exc: csv.Error) -> IngestionError:
        return IngestionError(
            f"{source}: {path} is not valid CSV near line {reader.line_num}: {exc}. Fix: {fix}"
        )

    try:
        try:
            header = [cell.strip() for cell in next(reader, [])]
        except csv.Error as exc:
            raise not_csv(exc) from exc
        if not header:
            raise IngestionError(f"{source}: {path} is empty; expected a header row. Fix: {fix}")
        if any(_SURROGATE.search(cell) for cell in header):
            offset = next(o for line, o in sorted(bad_lines.items()) if line <= reader.line_num)
            raise IngestionError(
                f"{source}: the header row of {path} is not UTF-8: "
                f"{_byte_problem(raw, offset)}. Fix: {_FIX_ENCODING}."
            )
        missing = [c for c in columns if c not in header]
        if missing:
            raise IngestionError(
                f"{source}: {path} lacks column(s) {missing}; its header has {header}. "
                f"Fix: {fix}, or name the right columns in the reader's *_column options."
            )
    except BaseException:
        handle.close()
        raise

    def rows() -> Iterator[CsvRow]:
        first_line = reader.line_num + 1
        try:
            for parsed in reader:
                cells, problem, row_fix = parsed, "", ""
                if any(_SURROGATE.search(cell) for cell in parsed):
                    offset = next(o for line, o in sorted(bad_lines.items()) if first_line <= line)
                    problem, row_fix = _byte_problem(raw, offset), _FIX_ENCODING
                    cells = [_SURROGATE.sub("\ufffd", cell) for cell in parsed]
                if not any(cell.strip() for cell in cells):
                    first_line = reader.line_num + 1
                    continue
                if not problem and len(cells) != len(header):
                    problem = f"the row has {len(cells)} fields, the header {len(header)}"
                if not problem:
                    problem = next(
                        (
                            text_problem(cell, f"column {column!r}")
                            for column, cell in zip(header, cells, strict=False)
                            if bidi_controls(cell)
                        ),
                        "",
                    )
                    row_fix = BIDI_FIX if problem else row_fix
                values = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=False))
                yield CsvRow(reader.line_num, values, problem, row_fix)
                first_line = reader.line_num + 1
        except csv.Error as exc:
            raise not_csv(exc) from exc
        finally:
            handle.close()

    return rows()


def read_csv_rows(
    path: Path, source: str, columns: list[str], fix: str, delimiter: str = ","
) -> list[CsvRow]:
    """Every data row of :func:`iter_csv_rows` as a list (small files; readers stream)."""
    return list(iter_csv_rows(path, source, columns, fix, delimiter))


# --------------------------------------------------------------------------------------------
# What a reader yields, known before reading (the data requirements check reads it)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceYield:
    """What a configured source gives the pipeline, declared by its reader from the options.

    ``tables``: the record tables it fills (``vqa``, ``classification``, ``pairs``);
    ``text_kinds``: the text kinds of its pairs (QA statements are added by the registry);
    ``images``: whether its images table is filled (False for text-only copies);
    ``domains``: the domain values it writes when fixed by the format, None when they come from
    the data (then only the ingested tables tell).
    """

    tables: frozenset[str]
    text_kinds: frozenset[str] = frozenset()
    images: bool = True
    domains: tuple[str, ...] | None = None
