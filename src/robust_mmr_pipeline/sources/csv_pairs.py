"""A generic CSV of image path + text, with optional label, split, domain and id columns.

Layout read (``root`` is the dataset folder)::

    root/pairs.csv             header row, then one row per image–text pair
    root/<images_dir>/<image>  the images, named by the image column relative to images_dir

Every column name is an option. Required columns: ``image_column`` and ``text_column`` (which
may be null for a VQA-only CSV); optional: ``id_column`` (else ``<file stem>-<row index>``),
``label_column`` (then each row is also a classification sample), ``question_column`` with
``answer_column`` (then each row is also a VQA record; ``answer_type_column`` gives CLOSED /
OPEN, else yes/no answers are closed and the rest open; ``question_type_column`` is optional),
``split_column`` (train / val / validation / dev / test / unassigned; anything else is a bad
record; without it every row is ``unassigned``), ``domain_column``, ``modality_column``,
``organ_column`` (empty cells and absent columns give ``unknown``). The split reaches the
classification and VQA rows only: the unified pairs table has no split column. ``text_kind``
says what the text is (caption, report or qa_statement); the pairs' style is ``style`` or, when
unset, the source name. QA statements of the VQA rows are added by the registry, as for every
VQA source.

Ids: image_id ``<name>:<image path without extension>``, pair_id / sample_id / qid
``<name>:<id>`` (a repeated id is a duplicate bad record). ``require_images: false`` leaves the
images table empty for text-only uses (pairs keep their image ids); such a source cannot feed
image training. Several rows may share an image; the first row fixes its domain, modality
and organ.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.answers import is_yes_no, normalize_answer, normalize_answer_type
from robust_mmr_pipeline.sources.common.bad_records import BadRecords
from robust_mmr_pipeline.sources.common.csv_rows import complete_rows, iter_csv_rows
from robust_mmr_pipeline.sources.common.images import ImageCatalog
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.common.records import (
    IdTracker,
    canonical_split,
    label_problem,
    make_tables,
)
from robust_mmr_pipeline.typed_config import config

KIND = "csv"
_FIX_ROW = "give the row an image path and a text (and its id / label / split where configured)"


@config(frozen=True)
class CsvPairsOptions:
    """Options of the generic CSV reader (paths relative to the source root)."""

    file: str = "pairs.csv"
    delimiter: str = ","
    images_dir: str = ""
    image_column: str = "image"
    text_column: str | None = "text"
    id_column: str | None = None
    label_column: str | None = None
    split_column: str | None = None
    domain_column: str | None = None
    modality_column: str | None = None
    organ_column: str | None = None
    question_column: str | None = None
    answer_column: str | None = None
    answer_type_column: str | None = None
    question_type_column: str | None = None
    text_kind: Literal["caption", "report", "qa_statement"] = "caption"
    style: str | None = None
    require_images: bool = True

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        if (self.question_column is None) != (self.answer_column is None):
            raise ValueError("question_column and answer_column go together: set both or neither")
        if self.question_column is None and (self.answer_type_column or self.question_type_column):
            raise ValueError("answer_type_column / question_type_column need question_column")
        if self.text_column is None and self.question_column is None:
            raise ValueError("set text_column (pairs) or question_column + answer_column (VQA)")
        if self.text_column is None and self.label_column is not None:
            raise ValueError("label_column needs text_column (a classification row has a text)")


def _declare(opts: CsvPairsOptions) -> SourceYield:
    """Pairs of ``text_kind`` (with a text column), classification rows (with a label column)
    and VQA records (with question / answer columns); domain from ``domain_column`` (data)."""
    tables = {"pairs"} if opts.text_column else set()
    tables |= {"classification"} if opts.label_column else set()
    tables |= {"vqa"} if opts.question_column else set()
    return SourceYield(
        tables=frozenset(tables),
        text_kinds=frozenset({opts.text_kind} if opts.text_column else ()),
        images=opts.require_images,
        domains=None if opts.domain_column else ("unknown",),
    )


def _read(root: Path, name: str, opts: CsvPairsOptions, bad: BadRecords) -> SourceTables:
    """Read a CSV of image–text pairs as unified tables (see the module docstring)."""
    path = root / opts.file
    optional = (
        opts.text_column,
        opts.id_column,
        opts.label_column,
        opts.split_column,
        opts.domain_column,
        opts.modality_column,
        opts.organ_column,
        opts.question_column,
        opts.answer_column,
        opts.answer_type_column,
        opts.question_type_column,
    )
    columns = [opts.image_column, *(c for c in optional if c)]
    required = [opts.image_column]
    required += [
        c
        for c in (
            opts.text_column,
            opts.id_column,
            opts.label_column,
            opts.split_column,
            opts.question_column,
            opts.answer_column,
        )
        if c
    ]
    rows = iter_csv_rows(path, name, columns, "use a CSV with a header row", opts.delimiter)
    stem = PurePosixPath(opts.file).stem
    catalog = ImageCatalog(root, bad)
    ids = IdTracker(bad, "id")
    style = opts.style or name
    pairs: list[dict[str, Any]] = []
    classification: list[dict[str, Any]] = []
    vqa: list[dict[str, Any]] = []
    usable = complete_rows(rows, path, columns, required, opts.id_column, stem, bad, _FIX_ROW)
    for values, local_id, label in usable:
        if opts.label_column:
            missing_label = label_problem(values[opts.label_column], opts.label_column)
            if missing_label:
                bad.report(
                    path,
                    label,
                    missing_label,
                    "give the row its class label (or remove the row; leave label_column unset "
                    "for an unlabelled CSV)",
                )
                continue
        record_id = f"{name}:{local_id}"
        if not ids.first(record_id, path, label):
            continue
        split = "unassigned"
        if opts.split_column:
            split = canonical_split(values[opts.split_column]) or ""
            if not split:
                bad.report(
                    path,
                    label,
                    f"unknown split value {values[opts.split_column]!r}",
                    "use train, val (validation, dev), test or unassigned",
                )
                continue
        image = values[opts.image_column].replace("\\", "/")
        image_id = f"{name}:{PurePosixPath(image).with_suffix('').as_posix()}"
        meta = {
            key: (values[column] if column else "") or "unknown"
            for key, column in (
                ("modality", opts.modality_column),
                ("organ", opts.organ_column),
                ("domain", opts.domain_column),
            )
        }
        if opts.require_images and not catalog.add(
            image_id,
            PurePosixPath(opts.images_dir) / image,
            label,
            modality=meta["modality"].lower(),
            organ=meta["organ"].lower(),
            domain=meta["domain"],
            annotation=path,
        ):
            continue
        vqa_row = _vqa_row(opts, values, record_id, image_id, split)
        if isinstance(vqa_row, str):
            bad.report(path, label, f"malformed record: {vqa_row}", _FIX_ROW)
            continue
        if vqa_row is not None:
            vqa.append(vqa_row)
        if not opts.text_column:
            continue
        text = values[opts.text_column]
        pairs.append(
            {
                "pair_id": record_id,
                "image_id": image_id,
                "text": text,
                "text_kind": opts.text_kind,
                "style": style,
            }
        )
        if opts.label_column:
            classification.append(
                {
                    "sample_id": record_id,
                    "image_id": image_id,
                    "text": text,
                    "label": values[opts.label_column],
                    "split": split,
                }
            )
    return make_tables(
        bad, images=catalog.frame(), pairs=pairs, classification=classification, vqa=vqa
    )


def _vqa_row(
    opts: CsvPairsOptions, values: dict[str, str], qid: str, image_id: str, split: str
) -> dict[str, Any] | str | None:
    """The VQA record of a row (None without question columns), or what is wrong with it."""
    if not opts.question_column or not opts.answer_column:
        return None
    answer = normalize_answer(values[opts.answer_column])
    if not answer:
        return f"the answer {values[opts.answer_column]!r} is blank once normalised"
    if opts.answer_type_column:
        answer_type = normalize_answer_type(values[opts.answer_type_column])
        if answer_type is None:
            return f"answer type {values[opts.answer_type_column]!r} is neither CLOSED nor OPEN"
    else:
        answer_type = "closed" if is_yes_no(answer) else "open"
    return {
        "qid": qid,
        "image_id": image_id,
        "question": values[opts.question_column],
        "answer": answer,
        "answer_type": answer_type,
        "question_type": values[opts.question_type_column] if opts.question_type_column else "",
        "split": split,
    }


READER = SourceReader(KIND, CsvPairsOptions, _declare, _read)
read = READER.read
yields = READER.yields
