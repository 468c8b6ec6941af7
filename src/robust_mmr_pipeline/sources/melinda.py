"""MELINDA (Wu et al., AAAI 2021) as published: experiment-method classification of figures.

Layout read (``root`` is the dataset folder; every name is an option)::

    root/train.csv  root/dev.csv  root/test.csv      one row per (sub)figure
    root/melinda_images/<figure_file>                the figure images

Columns used (as in the release, and as M3AE's preprocessing reads it): ``figure_file``
(image file name), ``caption`` (the (sub)caption text), ``i_meth`` / ``p_meth`` (fine-grained
interaction / participant detection method, 85 / 45 classes) and ``i_meth_label`` /
``p_meth_label`` (their coarse categories, 15 / 7 classes). Any of them can be renamed through
the ``*_column`` options. The split is the file (``dev.csv`` -> val). A single annotation file
can be read instead (``annotation_file``) with the split in ``split_column`` (values train /
val / validation / dev / test / unassigned; anything else is a bad record) or, without
``split_column``, every row ``unassigned``.

Label (``label_column``, default ``p_meth_label``, M3AE's MELINDA task) and domain
(``domain_column``, default ``i_meth_label``: the coarse method category, which tracks the
figure's image type — gel, microscopy, blot, …; our choice, configurable; null gives
``unknown``) must be different columns.

Ids: sample_id ``<name>:<id>`` with ``<id>`` the ``id_column`` value (duplicates are bad
records) or, without ``id_column``, ``<file stem>-<row index>``; image_id
``<name>:<figure_file without extension>``; pair_id ``<sample_id>:caption``.

Tables: ``classification`` (one row per CSV row), ``pairs`` (the caption, text_kind ``caption``,
style ``melinda``) and ``images`` (modality and organ ``unknown``; domain as above), the latter
empty with ``require_images: false``.
"""

from __future__ import annotations

import logging
from dataclasses import field
from pathlib import Path, PurePosixPath
from typing import Any

from robust_mmr_pipeline.schema import SourceTables
from robust_mmr_pipeline.sources.common.bad_records import BadRecords
from robust_mmr_pipeline.sources.common.csv_rows import complete_rows, iter_csv_rows
from robust_mmr_pipeline.sources.common.images import ImageCatalog
from robust_mmr_pipeline.sources.common.reader import SourceReader, SourceYield
from robust_mmr_pipeline.sources.common.records import (
    IdTracker,
    canonical_split,
    make_tables,
)
from robust_mmr_pipeline.typed_config import config

logger = logging.getLogger(__name__)

KIND = "melinda"
STYLE = "melinda"
_FIX_ROW = "give the row its image file, caption and label (and id / split where configured)"


def _default_files() -> dict[str, str]:
    return {"train": "train.csv", "val": "dev.csv", "test": "test.csv"}


@config(frozen=True)
class MelindaOptions:
    """Options of the MELINDA reader (paths relative to the source root)."""

    files: dict[str, str] = field(default_factory=_default_files)
    annotation_file: str | None = None
    split_column: str | None = None
    images_dir: str = "melinda_images"
    image_column: str = "figure_file"
    text_column: str = "caption"
    label_column: str = "p_meth_label"
    domain_column: str | None = "i_meth_label"
    id_column: str | None = None
    require_images: bool = True

    def __post_init__(self) -> None:
        wrong = [s for s in self.files if s not in ("train", "val", "test")]
        if wrong:
            raise ValueError(f"files keys must be train, val or test; got {wrong}")
        if self.annotation_file is None and not self.files:
            raise ValueError("give `files` (split -> csv) or `annotation_file`")
        if self.split_column is not None and self.annotation_file is None:
            raise ValueError("split_column applies to annotation_file; set annotation_file too")
        if self.domain_column is not None and self.domain_column == self.label_column:
            raise ValueError(
                f"label_column and domain_column are both {self.label_column!r}; a domain split "
                "on the label itself leaves nothing to predict"
            )


def _declare(opts: MelindaOptions) -> SourceYield:
    """Classification rows and their caption pairs; domain from ``domain_column`` (data)."""
    return SourceYield(
        tables=frozenset({"classification", "pairs"}),
        text_kinds=frozenset({"caption"}),
        images=opts.require_images,
        domains=None if opts.domain_column else ("unknown",),
    )


def _read(root: Path, name: str, opts: MelindaOptions, bad: BadRecords) -> SourceTables:
    """Read a MELINDA copy as unified tables (see the module docstring)."""
    if opts.annotation_file is not None:
        sources: list[tuple[str | None, str]] = [(None, opts.annotation_file)]
    else:
        sources = [(s, opts.files[s]) for s in ("train", "val", "test") if s in opts.files]
    columns = [opts.image_column, opts.text_column, opts.label_column]
    columns += [c for c in (opts.domain_column, opts.id_column, opts.split_column) if c]
    catalog = ImageCatalog(root, bad)
    ids = IdTracker(bad, "sample id")
    domain_conflicts: set[str] = set()
    classification: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for file_split, file_name in sources:
        path = root / file_name
        rows = iter_csv_rows(path, name, columns, "use the MELINDA CSV files as released")
        stem = PurePosixPath(file_name).stem
        required = [c for c in columns if c != opts.domain_column]
        usable = complete_rows(rows, path, columns, required, opts.id_column, stem, bad, _FIX_ROW)
        for values, local_id, label in usable:
            sample_id = f"{name}:{local_id}"
            if opts.id_column and not ids.first(sample_id, path, label):
                continue
            if file_split is not None:
                split = file_split
            elif opts.split_column is not None:
                split = canonical_split(values[opts.split_column])
                if split is None:
                    bad.report(
                        path,
                        label,
                        f"unknown split value {values[opts.split_column]!r}",
                        "use train, val (validation, dev), test or unassigned",
                    )
                    continue
            else:
                split = "unassigned"
            figure = values[opts.image_column]
            image_id = f"{name}:{PurePosixPath(figure).with_suffix('').as_posix()}"
            domain = (values[opts.domain_column].lower() if opts.domain_column else "") or (
                "unknown"
            )
            if opts.require_images:
                known = image_id in catalog
                rel_path = PurePosixPath(opts.images_dir) / figure
                if not catalog.add(image_id, rel_path, label, domain=domain, annotation=path):
                    continue
                if known and catalog.get(image_id, "domain") != domain:
                    domain_conflicts.add(image_id)
            text = values[opts.text_column]
            classification.append(
                {
                    "sample_id": sample_id,
                    "image_id": image_id,
                    "text": text,
                    "label": values[opts.label_column],
                    "split": split,
                }
            )
            pairs.append(
                {
                    "pair_id": f"{sample_id}:caption",
                    "image_id": image_id,
                    "text": text,
                    "text_kind": "caption",
                    "style": STYLE,
                }
            )
    if domain_conflicts:
        logger.warning(
            "%s: %d image(s) have rows with different %s values; the first row's value is the "
            "image's domain (e.g. %s).",
            name,
            len(domain_conflicts),
            opts.domain_column,
            sorted(domain_conflicts)[:5],
        )
    return make_tables(bad, images=catalog.frame(), pairs=pairs, classification=classification)


READER = SourceReader(KIND, MelindaOptions, _declare, _read)
read = READER.read
yields = READER.yields
