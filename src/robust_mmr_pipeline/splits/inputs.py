"""What the domain split accepts: a passed validation report, consistent tables, unlabeled
corpora. Each refusal is a :class:`SplitError` whose message names the fix."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd

from robust_mmr_pipeline.splits.assign import SPLIT_ORDER

# Split values a record may carry in the unified tables (schema.SPLITS).
_RECORD_SPLITS = (*SPLIT_ORDER, "unassigned")


class SplitError(ValueError):
    """The tables or parameters cannot be split as asked; the message names the fix."""


def check_validation_summary(summary: Mapping[str, Any] | None) -> None:
    """Refuse to split unless the validation pipeline reported ``success: true``."""
    if not isinstance(summary, Mapping) or "success" not in summary:
        raise SplitError(
            "domain_split needs the validation report (catalog entry `validation_summary`, "
            "data/08_reporting/validation_summary.json) with a top-level 'success' field; got "
            f"{type(summary).__name__} without it. Run `kedro run --pipelines validation` first."
        )
    if summary["success"] is not True:
        raise SplitError(
            "domain_split refuses to split: the validation report "
            "(data/08_reporting/validation_summary.json) says success = "
            f"{summary['success']!r}. Fix the data problems it lists (or set "
            "ingestion.on_bad_record: tolerate / drop), re-run `kedro run --pipelines "
            "validation`, then run domain_split again."
        )


def examples(values: pd.Series, limit: int = 5) -> list[str]:
    """Up to ``limit`` distinct values, sorted (for messages)."""
    return sorted(values.astype(str).unique().tolist())[:limit]


def check_inputs(
    images: pd.DataFrame, records: Mapping[str, pd.DataFrame], key_of: Mapping[str, str]
) -> None:
    """Unique ids, records pointing at listed images, known split values."""
    if images.empty:
        raise SplitError("the images table is empty: there is nothing to split.")
    duplicated = images["image_id"][images["image_id"].duplicated()]
    if len(duplicated):
        raise SplitError(
            f"images: image_id(s) {examples(duplicated)} occur more than once; run the "
            "validation pipeline, which rejects duplicate ids."
        )
    known = set(images["image_id"])
    for table, frame in records.items():
        key = key_of[table]
        repeated = frame[key][frame[key].duplicated()]
        if len(repeated):
            raise SplitError(f"{table}: {key}(s) {examples(repeated)} occur more than once.")
        orphans = frame["image_id"][~frame["image_id"].isin(known)]
        if len(orphans):
            raise SplitError(
                f"{table}: {len(orphans)} record(s) reference image_id(s) missing from the "
                f"images table, e.g. {examples(orphans)}; the validation pipeline should have "
                "caught this: re-run ingestion and validation."
            )
        if "split" in frame.columns:
            bad = frame["split"][~frame["split"].isin(_RECORD_SPLITS)]
            if len(bad):
                raise SplitError(
                    f"{table}: split value(s) {examples(bad)} are not one of {_RECORD_SPLITS}."
                )


def check_corpus(
    base: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    corpus_sources: Collection[str],
) -> None:
    """A corpus source is unlabeled: refuse one that has VQA or classification records."""
    if not corpus_sources:
        return
    corpus_ids = set(base.loc[base["source"].isin(list(corpus_sources)), "image_id"])
    for name, frame in (("vqa", vqa), ("classification", classification)):
        labeled = frame["image_id"][frame["image_id"].isin(corpus_ids)]
        if len(labeled):
            raise SplitError(
                f"{name}: {len(labeled)} record(s) belong to pre-training corpus source(s) "
                f"{sorted(corpus_sources)} (e.g. image {examples(labeled, 1)}); a corpus is "
                "unlabeled and pre-training-only. Set `role: labeled` on that source in "
                "ingestion.sources, or ingest its labels as a separate source."
            )
