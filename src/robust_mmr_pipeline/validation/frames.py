"""The frames Great Expectations validates, with derived columns computed by vectorised pandas.

Cross-table facts (does ``image_id`` exist in images, is a val/test answer among the train
answers, is an image in both train and test) are turned into per-row boolean columns here,
so each becomes a plain column expectation (``expect_column_values_to_be_in_set [True]``).
That is both clearer in the report and far faster than handing GX a value set of every
image id. Derived columns start with ``_`` and are left out of the example records.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from robust_mmr_pipeline.schema import PRIMARY_KEYS, TABLES

UNKNOWN_SOURCE = "<unknown>"
TRAINABLE_SPLITS: tuple[str, ...] = ("train", "unassigned")
EVAL_SPLITS: tuple[str, ...] = ("val", "test")

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Frame:
    """One frame to validate: the data, the columns shown in example records, its primary key."""

    data: pd.DataFrame
    display: tuple[str, ...]
    key: str | None = None


def _display(frame: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(c) for c in frame.columns if not str(c).startswith("_"))


def without_surrogates(values: pd.Series) -> pd.Series:
    """Replace lone surrogates (text that was never valid UTF-8) by U+FFFD.

    Only object columns can hold them (Arrow-backed strings are valid UTF-8 by construction);
    pandas and GX convert text to Arrow strings on the way, which fails on a surrogate, so they
    are replaced before validation and then flagged by the ``text_encoding`` check.
    """
    if values.dtype != object or values.empty:
        return values
    bad = values.map(lambda v: isinstance(v, str) and _SURROGATE.search(v) is not None)
    if not bad.any():
        return values
    fixed = values.copy()
    fixed[bad] = values[bad].map(lambda v: _SURROGATE.sub("\ufffd", v))
    return fixed


def image_sources(images: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    """The source of the image each row of ``frame`` references, aligned with ``frame``
    (``<unknown>`` for ids not in the images table)."""
    if not {"image_id", "source"} <= set(images.columns) or "image_id" not in frame.columns:
        return pd.Series(UNKNOWN_SOURCE, index=frame.index, dtype=object)
    lookup = images.drop_duplicates("image_id").set_index("image_id")["source"]
    return frame["image_id"].map(lookup).fillna(UNKNOWN_SOURCE).astype(object)


def _known_images(images: pd.DataFrame, frame: pd.DataFrame) -> pd.Series:
    if "image_id" not in frame.columns or "image_id" not in images.columns:
        return pd.Series(True, index=frame.index)
    return frame["image_id"].isin(images["image_id"].dropna()).astype(bool)


def answer_in_train_vocab(vqa: pd.DataFrame, sources: pd.Series, scope: str) -> pd.Series:
    """Per vqa row: for val/test rows, is the answer among the train answers (of the same
    source when ``scope == 'source'``); <NA> for other rows (not subject to the check)."""
    result = pd.Series(pd.NA, index=vqa.index, dtype="boolean")
    if vqa.empty or not {"answer", "split"} <= set(vqa.columns):
        return result
    group = sources if scope == "source" else pd.Series("all", index=vqa.index)
    keys = group.astype(str) + "\x1f" + vqa["answer"].astype(str)
    train = vqa["split"].eq("train").fillna(False).to_numpy(dtype=bool)
    # a null answer is the text_not_empty check's failure, not an out-of-vocabulary one
    evaluated = (vqa["split"].isin(EVAL_SPLITS) & vqa["answer"].notna()).to_numpy(dtype=bool)
    known = keys.isin(set(keys[train])).to_numpy(dtype=bool)
    result[evaluated] = known[evaluated]
    return result


def split_membership(
    images: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    between: list[tuple[str, str]],
    disjoint_sources: list[str],
) -> pd.DataFrame:
    """One row per (source, image) that some split-carrying table references.

    Columns: ``source, image_id, splits`` (sorted, comma-joined), ``promised`` (the source is in
    ``disjoint_sources``), ``leaked`` (the image is in both splits of some pair in
    ``between``), and the nullable ``_leak_promised`` / ``_leak_by_design`` (``leaked`` for
    promising / other sources, <NA> otherwise).
    """
    parts = [
        frame[["image_id", "split"]]
        for frame in tables.values()
        if {"image_id", "split"} <= set(frame.columns) and not frame.empty
    ]
    columns = ["source", "image_id", "splits", "promised", "leaked"]
    if not parts:
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
        empty["promised"] = empty["promised"].astype(bool)
        empty["leaked"] = empty["leaked"].astype(bool)
        empty["_leak_promised"] = pd.Series([], dtype="boolean")
        empty["_leak_by_design"] = pd.Series([], dtype="boolean")
        return empty
    rows = pd.concat(parts, ignore_index=True).dropna().drop_duplicates()
    rows["source"] = image_sources(images, rows)
    present = pd.crosstab([rows["source"], rows["image_id"]], rows["split"]).gt(0)
    membership = present.index.to_frame(index=False)
    splits = np.full(len(present), "", dtype=object)
    for name in sorted(present.columns):
        splits = splits + np.where(present[name].to_numpy(dtype=bool), f"{name},", "")
    membership["splits"] = [s.rstrip(",") for s in splits]
    leaked = np.zeros(len(membership), dtype=bool)
    for first, second in between:
        if first in present.columns and second in present.columns:
            leaked |= (present[first] & present[second]).to_numpy(dtype=bool)
    membership["source"] = membership["source"].astype(object)
    membership["image_id"] = membership["image_id"].astype(object)
    membership["splits"] = membership["splits"].astype(object)
    membership["promised"] = membership["source"].isin(disjoint_sources).to_numpy(dtype=bool)
    membership["leaked"] = leaked
    promised = membership["promised"].to_numpy(dtype=bool)
    leak_promised = pd.Series(leaked, index=membership.index, dtype="boolean")
    leak_promised[~promised] = pd.NA
    leak_by_design = pd.Series(leaked, index=membership.index, dtype="boolean")
    leak_by_design[promised] = pd.NA
    membership["_leak_promised"] = leak_promised
    membership["_leak_by_design"] = leak_by_design
    return membership


def class_counts(classification: pd.DataFrame, sources: pd.Series) -> pd.DataFrame:
    """Per (source, label): rows in total and rows available for training (train/unassigned)."""
    columns = ["source", "label", "rows", "trainable"]
    if classification.empty or not {"label", "split"} <= set(classification.columns):
        return pd.DataFrame(
            {c: pd.Series([], dtype=object if c in columns[:2] else "int64") for c in columns}
        )
    frame = pd.DataFrame(
        {
            "source": sources.to_numpy(),
            "label": classification["label"].to_numpy(),
            "trainable": classification["split"].isin(TRAINABLE_SPLITS).to_numpy(dtype=bool),
        }
    ).dropna(subset=["label"])
    counts = (
        frame.groupby(["source", "label"], sort=True)["trainable"]
        .agg(rows="size", trainable="sum")
        .reset_index()
    )
    counts["source"] = counts["source"].astype(object)
    counts["label"] = counts["label"].astype(object)
    counts["rows"] = counts["rows"].astype("int64")
    counts["trainable"] = counts["trainable"].astype("int64")
    return counts


def image_file_frame(image_checks: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """The per-image table plus ``_dims_match`` (decoded size equals the images table's; <NA>
    where either is unknown) and ``_pixels`` (width x height from the header)."""
    frame = image_checks.reset_index(drop=True).copy()
    if {"width", "height"} <= set(frame.columns):
        width = pd.to_numeric(frame["width"], errors="coerce").astype("Int64")
        frame["_pixels"] = width * pd.to_numeric(frame["height"], errors="coerce").astype("Int64")
    dims = pd.Series(pd.NA, index=frame.index, dtype="boolean")
    if {"image_id", "width", "height"} <= set(images.columns) and not frame.empty:
        declared = images.drop_duplicates("image_id").set_index("image_id")[["width", "height"]]
        want_w = frame["image_id"].map(declared["width"])
        want_h = frame["image_id"].map(declared["height"])
        got_w = pd.to_numeric(frame["width"], errors="coerce")
        got_h = pd.to_numeric(frame["height"], errors="coerce")
        want_w = pd.to_numeric(want_w, errors="coerce")
        want_h = pd.to_numeric(want_h, errors="coerce")
        known = (got_w.notna() & got_h.notna() & want_w.notna() & want_h.notna()).to_numpy(
            dtype=bool
        )
        same = (got_w.eq(want_w) & got_h.eq(want_h)).fillna(False).to_numpy(dtype=bool)
        dims[known] = same[known]
    frame["_dims_match"] = dims
    return frame


def split_phi(
    phi_warnings: pd.DataFrame, allowed_sources: Collection[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The PHI findings of sources that must carry none, and those of the opted-out sources."""
    phi = phi_warnings.reset_index(drop=True)
    if "source" not in phi.columns:
        return phi, phi.iloc[0:0]
    opted_out = phi["source"].isin(list(allowed_sources)).to_numpy(dtype=bool)
    return phi[~opted_out].reset_index(drop=True), phi[opted_out].reset_index(drop=True)


def build_frames(
    tables: Mapping[str, pd.DataFrame],
    image_checks: pd.DataFrame,
    phi_warnings: pd.DataFrame,
    text_columns: Mapping[str, list[str]],
    answer_vocab_scope: str,
    between: list[tuple[str, str]],
    disjoint_sources: list[str],
    phi_allowed_sources: Collection[str] = (),
) -> dict[str, Frame]:
    """Every frame to validate, keyed by name: the five unified tables (with derived columns),
    ``image_files``, ``phi_warnings`` (sources that must carry no identifiers),
    ``phi_opted_out`` (the others), ``split_overlap`` and ``class_counts``."""
    images = tables["images"].reset_index(drop=True)
    frames: dict[str, Frame] = {}
    for name in TABLES:
        frame = tables[name].reset_index(drop=True).copy()
        for column in text_columns.get(name, []):
            if column in frame.columns:
                frame[column] = without_surrogates(frame[column])
        display = _display(frame)
        if name in ("pairs", "vqa", "classification"):
            frame["_image_known"] = _known_images(images, frame)
        if name == "vqa":
            frame["_in_train_vocab"] = answer_in_train_vocab(
                frame, image_sources(images, frame), answer_vocab_scope
            )
        frames[name] = Frame(frame, display, PRIMARY_KEYS.get(name))
    frames["image_files"] = Frame(
        image_file_frame(image_checks, images), _display(image_checks), "image_id"
    )
    phi, opted_out = split_phi(phi_warnings, phi_allowed_sources)
    frames["phi_warnings"] = Frame(phi, _display(phi), None)
    frames["phi_opted_out"] = Frame(opted_out, _display(opted_out), None)
    split_tables = {n: frames[n].data for n in ("vqa", "classification")}
    overlap = split_membership(images, split_tables, between, disjoint_sources)
    frames["split_overlap"] = Frame(overlap, _display(overlap), "image_id")
    classification = frames["classification"].data
    counts = class_counts(classification, image_sources(images, classification))
    frames["class_counts"] = Frame(counts, _display(counts), "label")
    return frames
