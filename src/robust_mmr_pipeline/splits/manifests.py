"""Fixed schemas of the split manifests, and a deterministic conform (columns, dtypes, order).

Manifests carry ids, domains, splits and the record text, never image bytes. Each has a fixed
column order, fixed dtypes and a fixed row order (its sort keys, which are unique), so the same
inputs and seed always give byte-identical parquet files.

split_images          protocol, image_id, domain, split (one row per image and protocol;
                      as_released: one per split the image's records sit in)
split_pairs           protocol, split, pair_id, image_id, domain, text, text_kind, style
split_vqa             protocol, split, qid, image_id, domain, question, answer, answer_type,
                      question_type
split_classification  protocol, split, sample_id, image_id, domain, text, label
perturbation_sets     protocol, base_split, set_name, modality, perturbation, severity, seed
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

MANIFESTS: dict[str, pa.Schema] = {
    "split_images": pa.schema(
        [
            ("protocol", pa.string()),
            ("image_id", pa.string()),
            ("domain", pa.string()),
            ("split", pa.string()),
        ]
    ),
    "split_pairs": pa.schema(
        [
            ("protocol", pa.string()),
            ("split", pa.string()),
            ("pair_id", pa.string()),
            ("image_id", pa.string()),
            ("domain", pa.string()),
            ("text", pa.string()),
            ("text_kind", pa.string()),
            ("style", pa.string()),
        ]
    ),
    "split_vqa": pa.schema(
        [
            ("protocol", pa.string()),
            ("split", pa.string()),
            ("qid", pa.string()),
            ("image_id", pa.string()),
            ("domain", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("answer_type", pa.string()),
            ("question_type", pa.string()),
        ]
    ),
    "split_classification": pa.schema(
        [
            ("protocol", pa.string()),
            ("split", pa.string()),
            ("sample_id", pa.string()),
            ("image_id", pa.string()),
            ("domain", pa.string()),
            ("text", pa.string()),
            ("label", pa.string()),
        ]
    ),
    "perturbation_sets": pa.schema(
        [
            ("protocol", pa.string()),
            ("base_split", pa.string()),
            ("set_name", pa.string()),
            ("modality", pa.string()),
            ("perturbation", pa.string()),
            ("severity", pa.int32()),
            ("seed", pa.int64()),
        ]
    ),
}

# Unique row keys; rows are sorted by them.
SORT_KEYS: dict[str, list[str]] = {
    "split_images": ["protocol", "image_id", "split"],  # as_released: several splits
    "split_pairs": ["protocol", "pair_id"],
    "split_vqa": ["protocol", "qid"],
    "split_classification": ["protocol", "sample_id"],
    "perturbation_sets": ["protocol", "modality", "perturbation", "severity"],
}

# The id column of the unified table each record manifest is built from.
RECORD_TABLES: dict[str, tuple[str, str]] = {
    "split_pairs": ("pairs", "pair_id"),
    "split_vqa": ("vqa", "qid"),
    "split_classification": ("classification", "sample_id"),
}


class ManifestError(ValueError):
    """A manifest breaks its contract (duplicate keys, image in two splits, wrong columns)."""


def conform_manifest(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """``frame`` with exactly the manifest's columns and dtypes, sorted by its unique keys.

    Raises ManifestError when a column is missing or a sort key repeats.
    """
    schema = MANIFESTS[name]
    missing = [column for column in schema.names if column not in frame.columns]
    if missing:
        raise ManifestError(f"manifest '{name}' lacks column(s) {missing}.")
    keys = SORT_KEYS[name]
    duplicated = frame.duplicated(subset=keys, keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, keys].head(3).to_dict("records")
        raise ManifestError(f"manifest '{name}': key {keys} repeats, e.g. {example}.")
    ordered = frame[schema.names].sort_values(keys, kind="mergesort").reset_index(drop=True)
    table = pa.Table.from_pandas(ordered, schema=schema, preserve_index=False)
    return table.to_pandas()


def empty_manifest(name: str) -> pd.DataFrame:
    """An empty frame with the manifest's columns and dtypes."""
    return MANIFESTS[name].empty_table().to_pandas()
