"""IU X-ray (Open-I chest radiographs with reports) in R2Gen's ``annotation.json`` format.

Layout read (``root`` is the dataset folder)::

    root/annotation.json     {"train": [...], "val": [...], "test": [...]}
    root/images/<image_path>  the PNG files (optional: see ``require_images``)

Each record is ``{"id", "report", "image_path": [PNG names]}``, plus ``"split"`` in R2Gen's
own copy (when present it must agree with the list the record is in). The R2Gen split has
3062 / 382 / 382 studies; a study usually has two images (frontal and lateral) but the
published copies also hold studies with one and with three to five. Image paths are read as
given, relative to ``images_dir`` (R2Gen's copy nests them as ``CXR2384_IM-0942/0.png``, the
copy in ``shared/data`` names them flat, ``CXR3321_IM-1588-1001.png``). Top-level keys other
than train / val / test (``validation``, ``dev`` are accepted as val) make each of their
records an unknown-split bad record. Report text has its whitespace collapsed; the
de-identification masks (``XXXX``) are kept.

Pairs (choice): with ``pair_per: image`` (default) every image of a study is paired with the
study's report, since pre-training and retrieval see one image at a time; ``pair_per: study``
pairs the report with the study's first image only (one text per study, useful for
retrieval evaluation without repeated texts). text_kind ``report``, style ``iu_xray``. A
missing or unreadable image is a bad record that drops that image's pair only.

Ids: image_id ``<name>:<image path without extension>``; pair_id
``<name>:<split>:<study id>:<image index>`` (``…:<study id>`` with ``pair_per: study``) — the
unified pairs table has no split column, so the official split stays recoverable in the pair
id. A study id that occurs twice (in any split) is a duplicate bad record.

``require_images: false`` (the copy in ``shared/data`` has no images) leaves the images table
empty while pairs still carry their image ids: such a source serves text-only uses and cannot
feed image training. With images, modality is ``x-ray``, organ ``chest``, domain
``chest_xray``.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.common.annotations import load_json, record_problem, safe_relative
from robust_mmr_pipeline.sources.common.bad_records import (
    BadRecords,
    IngestionError,
)
from robust_mmr_pipeline.sources.common.images import ImageCatalog
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.common.records import (
    IdTracker,
    canonical_split,
    clean_text,
    make_tables,
    value_text,
)
from robust_mmr_pipeline.typed_config import config

logger = logging.getLogger(__name__)

KIND = "iu_xray"
STYLE = "iu_xray"
DOMAIN = "chest_xray"

_REQUIRED: dict[str, tuple[type, ...]] = {
    "id": (str, int),
    "report": (str,),
    "image_path": (list,),
}
_FIX_RECORD = (
    'give the record the R2Gen fields: "id", "report" (text) and "image_path" (a non-empty '
    "list of image file names)"
)


@config(frozen=True)
class IuXrayOptions:
    """Options of the IU X-ray reader (paths relative to the source root)."""

    annotation_file: str = "annotation.json"
    images_dir: str = "images"
    require_images: bool = True
    pair_per: Literal["image", "study"] = "image"


def _image_problem(paths: list[Any]) -> str:
    if not paths:
        return "image_path is an empty list"
    for path in paths:
        if not isinstance(path, str) or not path.strip():
            return f"image_path holds {path!r}, expected image file names"
        if safe_relative(path.strip()) is None:
            return f"image path {path!r} is absolute or leaves the dataset folder"
    return ""


def _declare(opts: IuXrayOptions) -> SourceYield:
    """Report pairs of chest radiographs (domain ``chest_xray``)."""
    return SourceYield(
        tables=frozenset({"pairs"}),
        text_kinds=frozenset({"report"}),
        images=opts.require_images,
        domains=(DOMAIN,) if opts.require_images else (),
    )


def _read(root: Path, name: str, opts: IuXrayOptions, bad: BadRecords) -> SourceTables:
    """Read an IU X-ray (R2Gen) copy as unified tables (see the module docstring)."""
    path = root / opts.annotation_file
    data = load_json(path, name)
    if not isinstance(data, dict):
        raise IngestionError(
            f"{name}: {path} holds a JSON {type(data).__name__}; R2Gen's annotation.json is an "
            'object {"train": [...], "val": [...], "test": [...]}. Fix: use that file.'
        )
    if opts.require_images and not (root / opts.images_dir).is_dir():
        raise IngestionError(
            f"{name}: image folder {root / opts.images_dir} does not exist. Fix: set the "
            "`images_dir` option, or set require_images: false for text-only use."
        )
    catalog = ImageCatalog(root, bad)
    ids = IdTracker(bad, "study id")
    pairs: list[dict[str, Any]] = []
    for key, records in data.items():
        split = canonical_split(key)
        if not isinstance(records, list):
            raise IngestionError(
                f"{name}: {path}: the value of {key!r} is a JSON {type(records).__name__}, "
                "expected a list of study records. Fix: use R2Gen's annotation.json."
            )
        for index, record in enumerate(records):
            raw_id = record.get("id") if isinstance(record, dict) else None
            label = f"{key}[{index}] (id={raw_id})"
            if split is None or split == "unassigned":
                bad.report(
                    path,
                    label,
                    f"unknown split value {key!r}",
                    "put the study under train, val or test",
                )
                continue
            problem = record_problem(record, _REQUIRED) or _image_problem(record["image_path"])
            if problem:
                bad.report(path, label, f"malformed record: {problem}", _FIX_RECORD)
                continue
            if "split" in record and canonical_split(record["split"]) != split:
                bad.report(
                    path,
                    label,
                    f"unknown split value: the record says split {record['split']!r} but is "
                    f"listed under {key!r}",
                    "make the record's split agree with the list it is in",
                )
                continue
            study = value_text(record["id"]).strip()
            if not ids.first(study, path, label):
                continue
            report = clean_text(record["report"])
            image_paths = [PurePosixPath(p.strip()) for p in record["image_path"]]
            if opts.pair_per == "study":
                image_paths = image_paths[:1]
            image_ids = [f"{name}:{p.with_suffix('').as_posix()}" for p in image_paths]
            for number, (image_id, image_path) in enumerate(
                zip(image_ids, image_paths, strict=True)
            ):
                if opts.require_images and not catalog.add(
                    image_id,
                    PurePosixPath(opts.images_dir) / image_path,
                    label,
                    modality="x-ray",
                    organ="chest",
                    domain=DOMAIN,
                    annotation=path,
                ):
                    continue
                suffix = "" if opts.pair_per == "study" else f":{number}"
                pairs.append(
                    {
                        "pair_id": f"{name}:{split}:{study}{suffix}",
                        "image_id": image_id,
                        "text": report,
                        "text_kind": "report",
                        "style": STYLE,
                    }
                )
    if not opts.require_images:
        logger.info(
            "%s: require_images is false, so the images table is empty: these %d reports can "
            "feed text-only uses (tokenizers, text perturbation), not image training.",
            name,
            len(pairs),
        )
    return make_tables(bad, images=catalog.frame(), pairs=pairs)


READER = SourceReader(KIND, IuXrayOptions, _declare, _read)
read = READER.read
yields = READER.yields
