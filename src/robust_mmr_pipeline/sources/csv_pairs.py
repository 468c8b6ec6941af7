"""A generic CSV of image path + text, with optional label, split, domain and id columns.

Layout read (``root`` is the dataset folder)::

    root/pairs.csv             header row, then one row per image–text pair
    root/<images_dir>/<image>  the images, named by the image column relative to images_dir

Every column name is an option. Required columns: ``image_column`` and ``text_column``;
optional: ``id_column`` (else ``<file stem>-<row index>``), ``label_column`` (then each row is
also a classification sample), ``split_column`` (train / val / validation / dev / test /
unassigned; anything else is a bad record; without it every row is ``unassigned``),
``domain_column``, ``modality_column``, ``organ_column`` (empty cells and absent columns give
``unknown``). The split reaches the classification rows only: the unified pairs table has no
split column. ``text_kind`` says what the text is (caption, report or qa_statement); the pairs'
style is ``style`` or, when unset, the source name.

Ids: image_id ``<name>:<image path without extension>``, pair_id / sample_id
``<name>:<id>`` (a repeated id is a duplicate bad record). ``require_images: false`` leaves the
images table empty for text-only uses (pairs keep their image ids); such a source cannot feed
image training. Several rows may share an image; the first row fixes its domain, modality
and organ.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources._common import (
    BadRecords,
    IdTracker,
    ImageCatalog,
    OnBadRecord,
    canonical_split,
    check_name,
    check_policy,
    check_root,
    clean_text,
    label_problem,
    make_tables,
    parse_options,
    read_csv_rows,
)

KIND = "csv"
_FIX_ROW = "give the row an image path and a text (and its id / label / split where configured)"


@dataclass(frozen=True)
class CsvPairsOptions:
    """Options of the generic CSV reader (paths relative to the source root)."""

    file: str = "pairs.csv"
    delimiter: str = ","
    images_dir: str = ""
    image_column: str = "image"
    text_column: str = "text"
    id_column: str | None = None
    label_column: str | None = None
    split_column: str | None = None
    domain_column: str | None = None
    modality_column: str | None = None
    organ_column: str | None = None
    text_kind: Literal["caption", "report", "qa_statement"] = "caption"
    style: str | None = None
    require_images: bool = True

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")


def read(
    root: Path,
    name: str,
    options: dict[str, Any] | CsvPairsOptions | None = None,
    on_bad_record: OnBadRecord = "raise",
) -> SourceTables:
    """Read a CSV of image–text pairs as unified tables (see the module docstring)."""
    opts = parse_options(CsvPairsOptions, options, KIND)
    bad = BadRecords(check_name(name), check_policy(on_bad_record))
    root = check_root(root, KIND)
    path = root / opts.file
    optional = (
        opts.id_column,
        opts.label_column,
        opts.split_column,
        opts.domain_column,
        opts.modality_column,
        opts.organ_column,
    )
    columns = [opts.image_column, opts.text_column, *(c for c in optional if c)]
    required = [opts.image_column, opts.text_column]
    required += [c for c in (opts.id_column, opts.label_column, opts.split_column) if c]
    rows = read_csv_rows(path, name, columns, "use a CSV with a header row", opts.delimiter)
    stem = PurePosixPath(opts.file).stem
    catalog = ImageCatalog(root, bad)
    ids = IdTracker(bad, "id")
    style = opts.style or name
    pairs: list[dict[str, Any]] = []
    classification: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        values = {c: clean_text(row.values[c]) for c in columns}
        local_id = values[opts.id_column] if opts.id_column else f"{stem}-{index}"
        label = f"{local_id or '?'} (row {index + 1}, line {row.line})"
        if row.problem:
            bad.report(path, label, f"malformed record: {row.problem}", row.fix or _FIX_ROW)
            continue
        blank = [c for c in required if not values[c]]
        if blank:
            bad.report(path, label, f"malformed record: column(s) {blank} are empty", _FIX_ROW)
            continue
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
        ):
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
    return make_tables(bad, images=catalog.frame(), pairs=pairs, classification=classification)
