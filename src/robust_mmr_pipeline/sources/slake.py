"""SLAKE 1.0 (Liu et al., ISBI 2021) as published.

Layout read (``root`` is the folder of the release)::

    root/train.json  root/validate.json  root/test.json     JSON lists of QA records
    root/imgs/xmlabN/source.jpg                              one folder per image

The Hugging Face mirror renamed ``validate.json`` to ``validation.json``; with the default
``val_file`` the reader falls back to that name when ``validate.json`` is absent.

Fields used: ``img_id``, ``img_name`` (``xmlab0/source.jpg``, relative to ``imgs/``),
``question``, ``answer``, ``q_lang`` (``en`` / ``zh``), ``answer_type`` (OPEN / CLOSED),
``content_type`` (kept as question_type), ``modality`` (CT / MRI / X-Ray), ``location``
(organ), ``qid``. ``base_type`` and ``triple`` are not needed by the unified tables.

English only by default (``q_lang: en``, as M3AE and most published numbers); ``zh`` or
``all`` select the Chinese set or both. The split is the file: train, validate -> val, test.
SLAKE's English and Chinese question sets divide the images differently between the three
files, so with ``q_lang: all`` one image can sit in train for one language and in test for the
other; the reader logs a warning about this on every read.

Ids: image_id ``<name>:<image folder>`` (``slake:xmlab0``), qid ``<name>:<qid>``. A qid that
occurs twice (in any of the files) is a duplicate bad record.

Tables: ``images`` (modality and domain = the lower-cased record ``modality``: ``ct``, ``mri``,
``x-ray``; organ = lower-cased ``location``) and ``vqa`` (answers normalised with
:func:`~robust_mmr_pipeline.sources.answers.normalize_answer`).
"""

from __future__ import annotations

import logging
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
from robust_mmr_pipeline.sources.common.records import (
    IdTracker,
    clean_text,
    make_tables,
    value_text,
)
from robust_mmr_pipeline.typed_config import config

logger = logging.getLogger(__name__)

KIND = "slake"
LANGUAGES: tuple[str, ...] = ("en", "zh")
_HF_VAL_FILE = "validation.json"

_REQUIRED: dict[str, tuple[type, ...]] = {
    "img_name": (str,),
    "question": (str,),
    "answer": (str, int, float),
    "q_lang": (str,),
    "answer_type": (str,),
    "modality": (str,),
    "location": (str,),
    "qid": (int, str),
}
_OPTIONAL: dict[str, tuple[type, ...]] = {"img_id": (int, str), "content_type": (str,)}

_FIX_RECORD = (
    "give the record the published SLAKE fields (img_name, question, answer, q_lang, "
    "answer_type, modality, location, qid)"
)


@config(frozen=True)
class SlakeOptions:
    """Options of the SLAKE reader (paths relative to the source root)."""

    q_lang: Literal["en", "zh", "all"] = "en"
    train_file: str = "train.json"
    val_file: str = "validate.json"
    test_file: str = "test.json"
    images_dir: str = "imgs"


def _modality(value: str) -> str:
    """``CT`` -> ``ct``, ``MRI`` -> ``mri``, ``X-Ray`` -> ``x-ray`` (others lower-cased)."""
    return clean_text(value).lower()


def _split_files(root: Path, opts: SlakeOptions, name: str) -> list[tuple[str, Path]]:
    val_path = root / opts.val_file
    if not val_path.is_file() and opts.val_file == SlakeOptions.val_file:
        alternative = root / _HF_VAL_FILE
        if alternative.is_file():
            logger.info("%s: %s is absent, reading %s instead.", name, val_path, alternative)
            val_path = alternative
    return [("train", root / opts.train_file), ("val", val_path), ("test", root / opts.test_file)]


def _declare(opts: SlakeOptions) -> SourceYield:
    """VQA records; domain = the modality (CT / MRI / X-Ray, lower-cased)."""
    return SourceYield(tables=frozenset({"vqa"}), domains=("ct", "mri", "x-ray"))


def _read(root: Path, name: str, opts: SlakeOptions, bad: BadRecords) -> SourceTables:
    """Read a SLAKE 1.0 copy as unified tables (see the module docstring)."""
    logger.warning(
        "%s: SLAKE's English and Chinese question sets divide the images differently between "
        "train/validate/test%s.",
        name,
        (
            "; with q_lang: all an image may be in train for one language and in test for the "
            "other (leakage across splits)"
            if opts.q_lang == "all"
            else f"; only q_lang={opts.q_lang!r} records are read, so its own split is used"
        ),
    )
    languages = LANGUAGES if opts.q_lang == "all" else (opts.q_lang,)
    catalog = ImageCatalog(root, bad)
    qids = IdTracker(bad, "qid")
    vqa: list[dict[str, Any]] = []
    for split, path in _split_files(root, opts, name):
        data = load_json(path, name)
        if not isinstance(data, list):
            raise IngestionError(
                f"{name}: {path} holds a JSON {type(data).__name__}; SLAKE files are a JSON "
                "list of QA records. Fix: point the option at the published file."
            )
        for index, record in enumerate(data):
            raw_qid = record.get("qid") if isinstance(record, dict) else None
            label = f"qid={raw_qid} (record #{index})"
            problem = record_problem(record, _REQUIRED, _OPTIONAL)
            if problem:
                bad.report(path, label, f"malformed record: {problem}", _FIX_RECORD)
                continue
            lang = record["q_lang"].strip().lower()
            if lang not in LANGUAGES:
                bad.report(
                    path,
                    label,
                    f"malformed record: q_lang {record['q_lang']!r} is neither 'en' nor 'zh'",
                    "set q_lang to en or zh",
                )
                continue
            if lang not in languages:
                continue
            qid = f"{name}:{value_text(raw_qid).strip()}"
            if not qids.first(qid, path, label):
                continue
            answer_type = normalize_answer_type(record["answer_type"])
            if answer_type is None:
                bad.report(
                    path,
                    label,
                    f"answer_type {record['answer_type']!r} is neither CLOSED nor OPEN",
                    "set answer_type to CLOSED or OPEN",
                )
                continue
            answer = normalize_answer(record["answer"])
            if not answer:
                bad.report(path, label, "malformed record: answer is blank", _FIX_RECORD)
                continue
            img_name = PurePosixPath(record["img_name"].strip().replace("\\", "/"))
            folder = img_name.parent.as_posix()
            image_key = folder if folder not in ("", ".") else img_name.stem
            image_id = f"{name}:{image_key}"
            modality = _modality(record["modality"])
            organ = clean_text(record["location"]).lower()
            rel_path = PurePosixPath(opts.images_dir) / img_name
            if not catalog.add(
                image_id,
                rel_path,
                label,
                modality=modality,
                organ=organ,
                domain=modality,
                annotation=path,
            ):
                continue
            vqa.append(
                {
                    "qid": qid,
                    "image_id": image_id,
                    "question": clean_text(record["question"]),
                    "answer": answer,
                    "answer_type": answer_type,
                    "question_type": clean_text(record.get("content_type") or ""),
                    "split": split,
                }
            )
    return make_tables(bad, images=catalog.frame(), vqa=vqa)


READER = SourceReader(KIND, SlakeOptions, _declare, _read)
read = READER.read
yields = READER.yields
