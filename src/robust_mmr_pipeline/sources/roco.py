"""ROCO (Pelka et al., 2018) as published, per split folder.

Layout read (``root`` holds one folder per split; the ``splits`` option maps our split names
to those folders, e.g. ``{val: validation, test: test}`` or, for the full release,
``{train: train/radiology, val: validation/radiology, test: test/radiology}``)::

    <split folder>/captions.txt    ROCO_ID<TAB>caption          (the caption starts with a space)
    <split folder>/keywords.txt    ROCO_ID<TAB><TAB>kw<TAB>kw…   (a record may have no keyword)
    <split folder>/licences.txt    CSV with header ROCO_ID,PMC_ID,CC (PMC_ID is the image file)
    <split folder>/images/         the downloaded figures

The image file of a record is the ``PMC_ID`` of its licence row (``PMC4608653_cro-…-g01.jpg``,
``image_naming: pmc``) or ``<ROCO_ID>.jpg`` (``image_naming: roco_id``, as some mirrors and
M3AE's preprocessing name them).

``require_images: false`` reads captions without images (the text-only copy in
``shared/data`` has none): the images table is then empty while pairs still carry their
image_id. Such a source serves tokenizers, text perturbation and text-domain tests; it cannot
feed image training or retrieval, because no row of the images table backs its image ids.

Ids: image_id ``<name>:<ROCO_ID>``; pair_id ``<name>:<split>:<ROCO_ID>`` — the unified pairs
table has no split column, so the official split is kept recoverable in the pair id. A
ROCO_ID that occurs twice (in any split) is a duplicate bad record.

Domain and modality (our choice): the modality named by the caption, else by the keywords —
``mri``, ``nuclear``, ``ct``, ``ultrasound``, ``mammography``, ``angiography``,
``fluoroscopy``, ``x-ray`` (checked in that order, so "CT angiography" is ct and "PET/CT"
nuclear), else ``other``
(see :func:`~robust_mmr_pipeline.sources.common.records.infer_modality`). Captions keep their words;
whitespace is collapsed and the leading space dropped.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.common.annotations import read_text_lines, require_file
from robust_mmr_pipeline.sources.common.bad_records import (
    BadRecords,
    IngestionError,
)
from robust_mmr_pipeline.sources.common.images import ImageCatalog
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.common.records import (
    MODALITIES,
    IdTracker,
    clean_text,
    infer_modality,
    make_tables,
)
from robust_mmr_pipeline.textnorm import BIDI_FIX, bidi_controls, text_problem
from robust_mmr_pipeline.typed_config import config

logger = logging.getLogger(__name__)

KIND = "roco"
STYLE = "roco"
LICENCE_HEADER: tuple[str, ...] = ("ROCO_ID", "PMC_ID", "CC")
_ROCO_ID = re.compile(r"^ROCO_\d+$")
_FIX_CAPTION = "write the line as ROCO_ID<TAB>caption"


def _default_splits() -> dict[str, str]:
    return {"train": "train", "val": "validation", "test": "test"}


@config(frozen=True)
class RocoOptions:
    """Options of the ROCO reader (folders relative to the source root / the split folder)."""

    splits: dict[str, str] = field(default_factory=_default_splits)
    captions_file: str = "captions.txt"
    keywords_file: str = "keywords.txt"
    licences_file: str = "licences.txt"
    images_dir: str = "images"
    image_naming: Literal["pmc", "roco_id"] = "pmc"
    require_images: bool = True

    def __post_init__(self) -> None:
        wrong = [s for s in self.splits if s not in ("train", "val", "test")]
        if wrong or not self.splits:
            raise ValueError(
                f"splits must map some of train, val, test to folders; got keys {wrong or '{}'}"
            )


def _read_captions(path: Path, name: str, bad: BadRecords) -> list[tuple[int, str, str]]:
    captions: list[tuple[int, str, str]] = []
    for number, line in read_text_lines(path, name):
        roco_id, tab, caption = line.partition("\t")
        roco_id = roco_id.strip()
        label = f"{roco_id or '?'} (line {number})"
        if not tab or not _ROCO_ID.match(roco_id):
            bad.report(path, label, "malformed line: no ROCO_ID<TAB>caption", _FIX_CAPTION)
            continue
        problem = text_problem(caption, "the caption")
        if problem:
            fix = BIDI_FIX if bidi_controls(caption) else _FIX_CAPTION
            bad.report(path, label, f"malformed line: {problem}", fix)
            continue
        caption = clean_text(caption)
        if not caption:
            bad.report(path, label, "malformed line: the caption is empty", _FIX_CAPTION)
            continue
        captions.append((number, roco_id, caption))
    return captions


def _read_keywords(path: Path, name: str, bad: BadRecords) -> dict[str, list[str]]:
    if not path.is_file():
        logger.warning("%s: %s is absent; modality is inferred from captions only.", name, path)
        return {}
    keywords: dict[str, list[str]] = {}
    for number, line in read_text_lines(path, name):
        roco_id, *words = line.split("\t")
        if not words or not _ROCO_ID.match(roco_id.strip()):
            bad.report(
                path,
                f"{roco_id.strip() or '?'} (line {number})",
                "malformed keywords line: no ROCO_ID<TAB><TAB>keywords",
                "write the line as ROCO_ID<TAB><TAB>kw<TAB>kw…",
            )
            continue
        keywords[roco_id.strip()] = [w.strip() for w in words if w.strip()]
    return keywords


def _read_licences(path: Path, name: str, bad: BadRecords) -> dict[str, str]:
    """ROCO_ID -> PMC_ID (the image file name) from licences.txt."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError as exc:
        raise IngestionError(
            f"{name}: {path} is not UTF-8 text (byte {exc.start}): re-download the file."
        ) from exc
    if not rows or tuple(c.strip() for c in rows[0]) != LICENCE_HEADER:
        raise IngestionError(
            f"{name}: {path} does not start with the header {','.join(LICENCE_HEADER)}. Fix: "
            "use the licences.txt of the ROCO release."
        )
    files: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(LICENCE_HEADER) or not _ROCO_ID.match(row[0].strip()):
            bad.report(
                path,
                f"line {number}",
                f"malformed licence row: expected ROCO_ID,PMC_ID,CC, got {row!r}",
                "write the row as ROCO_ID,PMC_ID,CC",
            )
            continue
        files[row[0].strip()] = row[1].strip()
    return files


def _declare(opts: RocoOptions) -> SourceYield:
    """Caption pairs; domain = the modality named by the caption or keywords."""
    return SourceYield(
        tables=frozenset({"pairs"}),
        text_kinds=frozenset({"caption"}),
        images=opts.require_images,
        domains=MODALITIES,
    )


def _read(root: Path, name: str, opts: RocoOptions, bad: BadRecords) -> SourceTables:
    """Read a ROCO copy as unified tables (see the module docstring)."""
    catalog = ImageCatalog(root, bad)
    ids = IdTracker(bad, "ROCO_ID")
    pairs: list[dict[str, Any]] = []
    for split in ("train", "val", "test"):
        if split not in opts.splits:
            continue
        folder = PurePosixPath(opts.splits[split])
        split_dir = root / folder
        if not split_dir.is_dir():
            raise IngestionError(
                f"{name}: folder {split_dir} for split {split!r} does not exist. Fix: correct "
                f"the `splits` option or leave {split!r} out of it."
            )
        captions_path = split_dir / opts.captions_file
        captions = _read_captions(captions_path, name, bad)
        keywords = _read_keywords(split_dir / opts.keywords_file, name, bad)
        licences: dict[str, str] = {}
        if opts.require_images and opts.image_naming == "pmc":
            licences_path = require_file(
                split_dir / opts.licences_file,
                name,
                "licence file",
                "restore licences.txt (it names each image file) or set image_naming: roco_id",
            )
            licences = _read_licences(licences_path, name, bad)
        for number, roco_id, caption in captions:
            label = f"{roco_id} (line {number})"
            if not ids.first(roco_id, captions_path, label):
                continue
            image_id = f"{name}:{roco_id}"
            modality = infer_modality(caption, " ".join(keywords.get(roco_id, []))) or "other"
            if opts.require_images:
                if opts.image_naming == "pmc":
                    file_name = licences.get(roco_id)
                    if not file_name:
                        bad.report(
                            split_dir / opts.licences_file,
                            label,
                            "no licence row names this record's image file",
                            "add the record's ROCO_ID,PMC_ID,CC row or set image_naming: roco_id",
                        )
                        continue
                else:
                    file_name = f"{roco_id}.jpg"
                rel_path = folder / opts.images_dir / file_name
                if not catalog.add(
                    image_id,
                    rel_path,
                    label,
                    modality=modality,
                    domain=modality,
                    annotation=captions_path,
                ):
                    continue
            pairs.append(
                {
                    "pair_id": f"{name}:{split}:{roco_id}",
                    "image_id": image_id,
                    "text": caption,
                    "text_kind": "caption",
                    "style": STYLE,
                }
            )
    if not opts.require_images:
        logger.info(
            "%s: require_images is false, so the images table is empty: these %d captions can "
            "feed text-only uses (tokenizers, text perturbation), not image training.",
            name,
            len(pairs),
        )
    return make_tables(bad, images=catalog.frame(), pairs=pairs)


READER = SourceReader(KIND, RocoOptions, _declare, _read)
read = READER.read
yields = READER.yields
