"""VQA-RAD (Lau et al., Scientific Data 2018) as published.

Layout read (``root`` is the folder of the release)::

    root/VQA_RAD Dataset Public.json     official release, 2248 QA records (a JSON list)
    root/mevf_split/trainset.json        MEVF split, 3064 QA records
    root/mevf_split/testset.json         MEVF split, 451 QA records
    root/images/synpicNNNN.jpg           315 images

``split_format: official`` reads the official JSON and takes the split from ``phrase_type``
(``freeform`` / ``para`` -> train, ``test_freeform`` / ``test_para`` -> test; anything else is
a bad record). ``split_format: mevf`` reads the MEVF files and takes the split from the file
(MEVF's ``phrase_type`` also holds ``frame`` and is ignored).

Fields used: ``qid``, ``image_name``, ``image_organ`` (HEAD / CHEST / ABD), ``question``,
``answer`` (a string, or a JSON number for a few counts), ``answer_type`` (CLOSED / OPEN; two
official values carry a trailing space, which is stripped), ``question_type`` (kept as the
published string, which may be a comma list such as ``"POS, PRES"``), ``phrase_type``.

Ids (all prefixed with the source ``name`` so several sources can be merged):

- image_id ``<name>:<image stem>`` (``vqa_rad:synpic54610``);
- qid ``<name>:<format>:<qid>`` (``vqa_rad:official:0``, ``vqa_rad:mevf:1``). In the published
  files every qid is unique (the official file stores qid 0 as the string ``"0"`` and the rest
  as integers; the MEVF files number 1…3515 with no overlap between train and test), but MEVF
  renumbers, so official and MEVF qids of the same question differ. To stay unique on copies
  that repeat or lack qids: a record without a qid gets ``<name>:<format>:<file>-i<index>``; a
  qid that repeats with different content keeps the plain id on its first occurrence and gets
  ``~<file>-i<index>`` appended on later ones (``<file>`` is ``official``, ``train``, ``val``
  or ``test``, ``<index>`` the 0-based position in that file). A record that repeats another
  one exactly is a duplicate bad record.

Tables: ``images`` (modality ``unknown`` — the records do not state it and guessing it from the
question text is unreliable; organ and domain = lower-cased ``image_organ``) and ``vqa``
(answers normalised with :func:`~robust_mmr_pipeline.sources.answers.normalize_answer`). The
QA-statement pairs of the training records are added by the registry, as for every VQA source
(:mod:`robust_mmr_pipeline.sources.qa_statements`). Only images that some record references
are listed unless ``include_unreferenced_images`` (the release has one image, synpic35356.jpg,
that no record uses).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.answers import normalize_answer, normalize_answer_type
from robust_mmr_pipeline.sources.common.annotations import load_json, record_problem
from robust_mmr_pipeline.sources.common.bad_records import (
    BadRecords,
    IngestionError,
)
from robust_mmr_pipeline.sources.common.images import ImageCatalog
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.common.records import clean_text, make_tables
from robust_mmr_pipeline.typed_config import config

logger = logging.getLogger(__name__)

KIND = "vqa_rad"
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")

PHRASE_TYPE_SPLITS: dict[str, str] = {
    "freeform": "train",
    "para": "train",
    "test_freeform": "test",
    "test_para": "test",
}

_REQUIRED: dict[str, tuple[type, ...]] = {
    "image_name": (str,),
    "image_organ": (str,),
    "question": (str,),
    "answer": (str, int, float),
    "answer_type": (str,),
}
_OPTIONAL: dict[str, tuple[type, ...]] = {"qid": (int, str), "question_type": (str,)}


@config(frozen=True)
class VqaRadOptions:
    """Options of the VQA-RAD reader (paths relative to the source root)."""

    split_format: Literal["official", "mevf"] = "official"
    annotation_file: str = "VQA_RAD Dataset Public.json"
    mevf_dir: str = "mevf_split"
    mevf_train_file: str = "trainset.json"
    mevf_test_file: str = "testset.json"
    mevf_val_file: str | None = None
    images_dir: str = "images"
    include_unreferenced_images: bool = False


@dataclass(frozen=True)
class _Loaded:
    path: Path
    tag: str
    index: int
    record: Any
    split: str | None


def _load_records(root: Path, opts: VqaRadOptions, name: str) -> list[_Loaded]:
    if opts.split_format == "official":
        files = [(root / opts.annotation_file, "official", None)]
    else:
        files = [
            (root / opts.mevf_dir / opts.mevf_train_file, "train", "train"),
            (root / opts.mevf_dir / opts.mevf_test_file, "test", "test"),
        ]
        if opts.mevf_val_file is not None:
            files.insert(1, (root / opts.mevf_dir / opts.mevf_val_file, "val", "val"))
    loaded: list[_Loaded] = []
    for path, tag, split in files:
        data = load_json(path, name)
        if not isinstance(data, list):
            raise IngestionError(
                f"{name}: {path} holds a JSON {type(data).__name__}; VQA-RAD annotation files "
                "are a JSON list of QA records. Fix: point the option at the published file."
            )
        loaded += [_Loaded(path, tag, i, record, split) for i, record in enumerate(data)]
    return loaded


def _assign_ids(loaded: list[_Loaded], name: str, fmt: str) -> list[str]:
    """Unique, deterministic qids (see the module docstring)."""
    ids: list[str] = []
    taken: set[str] = set()
    for item in loaded:
        qid = item.record.get("qid") if isinstance(item.record, dict) else None
        if isinstance(qid, bool) or not isinstance(qid, int | str) or not str(qid).strip():
            ids.append(f"{name}:{fmt}:{item.tag}-i{item.index}")
            continue
        base = f"{name}:{fmt}:{str(qid).strip()}"
        ids.append(base if base not in taken else f"{base}~{item.tag}-i{item.index}")
        taken.add(base)
    return ids


def _declare(opts: VqaRadOptions) -> SourceYield:
    """VQA records; domain = the organ (HEAD / CHEST / ABD, lower-cased)."""
    return SourceYield(tables=frozenset({"vqa"}), domains=("abd", "chest", "head"))


def _read(root: Path, name: str, opts: VqaRadOptions, bad: BadRecords) -> SourceTables:
    """Read a VQA-RAD copy as unified tables (see the module docstring)."""
    images_dir = root / opts.images_dir
    if not images_dir.is_dir():
        raise IngestionError(
            f"{name}: image folder {images_dir} does not exist. Fix: set the `images_dir` "
            "option to the folder holding synpicNNNN.jpg."
        )
    loaded = _load_records(root, opts, name)
    ids = _assign_ids(loaded, name, opts.split_format)
    catalog = ImageCatalog(root, bad)
    seen_records: dict[str, str] = {}
    organ_conflicts: set[str] = set()
    vqa: list[dict[str, Any]] = []

    for item, qid in zip(loaded, ids, strict=True):
        record = item.record
        label = f"{qid} (record #{item.index})"
        problem = record_problem(record, _REQUIRED, _OPTIONAL)
        if not problem and opts.split_format == "official":
            problem = record_problem(record, {"phrase_type": (str,)})
        if problem:
            bad.report(item.path, label, f"malformed record: {problem}", _FIX_RECORD)
            continue
        fingerprint = json.dumps(record, sort_keys=True, ensure_ascii=False)
        if fingerprint in seen_records:
            bad.report(
                item.path,
                label,
                f"duplicate record: repeats {seen_records[fingerprint]} exactly",
                "remove the repeated record",
            )
            continue
        seen_records[fingerprint] = label
        answer_type = normalize_answer_type(record["answer_type"])
        if answer_type is None:
            bad.report(
                item.path,
                label,
                f"answer_type {record['answer_type']!r} is neither CLOSED nor OPEN",
                "set answer_type to CLOSED or OPEN",
            )
            continue
        split = item.split
        if split is None:
            split = PHRASE_TYPE_SPLITS.get(record["phrase_type"].strip().lower())
            if split is None:
                bad.report(
                    item.path,
                    label,
                    f"unknown split value: phrase_type {record['phrase_type']!r} is not one of "
                    f"{sorted(PHRASE_TYPE_SPLITS)}",
                    "correct phrase_type (freeform/para are train, test_* are test)",
                )
                continue
        answer = normalize_answer(record["answer"])
        if not answer:
            bad.report(item.path, label, "malformed record: answer is blank", _FIX_RECORD)
            continue
        image_name = record["image_name"].strip()
        image_id = f"{name}:{PurePosixPath(image_name).stem}"
        organ = record["image_organ"].strip().lower()
        rel_path = PurePosixPath(opts.images_dir) / image_name
        known = image_id in catalog
        if not catalog.add(
            image_id, rel_path, label, organ=organ, domain=organ, annotation=item.path
        ):
            continue
        if known and catalog.get(image_id, "organ") != organ:
            organ_conflicts.add(image_id)
        vqa.append(
            {
                "qid": qid,
                "image_id": image_id,
                "question": clean_text(record["question"]),
                "answer": answer,
                "answer_type": answer_type,
                "question_type": clean_text(record.get("question_type") or ""),
                "split": split,
            }
        )

    if organ_conflicts:
        logger.warning(
            "%s: %d image(s) are given different image_organ values by different records; the "
            "first record's organ is used (e.g. %s).",
            name,
            len(organ_conflicts),
            sorted(organ_conflicts)[:5],
        )
    if opts.include_unreferenced_images:
        for path in sorted(images_dir.iterdir()):
            image_id = f"{name}:{path.stem}"
            if path.suffix.lower() in IMAGE_SUFFIXES and image_id not in catalog:
                rel_path = PurePosixPath(opts.images_dir) / path.name
                catalog.add(image_id, rel_path, f"image file {path.name}")
    return make_tables(bad, images=catalog.frame(), vqa=vqa)


_FIX_RECORD = (
    "give the record the published VQA-RAD fields (image_name, image_organ, question, answer, "
    "answer_type, and phrase_type in the official file) with string values"
)


READER = SourceReader(KIND, VqaRadOptions, _declare, _read)
read = READER.read
yields = READER.yields
