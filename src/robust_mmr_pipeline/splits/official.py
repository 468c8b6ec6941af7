"""The splits the sources publish: each image's official split, images whose records
disagree (a leak in the source), and sources that publish no val split."""

from __future__ import annotations

import pandas as pd

from robust_mmr_pipeline.splits.assign import OFFICIAL_PRECEDENCE, SPLIT_ORDER


def official_image_splits(
    images: pd.DataFrame, vqa: pd.DataFrame, classification: pd.DataFrame
) -> pd.Series:
    """Each image's official split (``train | val | test``), or NA where its records give none.

    An image whose records disagree takes the first of test, val, train that occurs.
    Returns a Series aligned with ``images``' rows.
    """
    labels = pd.concat(
        [vqa[["image_id", "split"]], classification[["image_id", "split"]]], ignore_index=True
    )
    labels = labels[labels["split"].isin(SPLIT_ORDER)]
    rank = {split: position for position, split in enumerate(OFFICIAL_PRECEDENCE)}
    best = labels.assign(rank=labels["split"].map(rank)).groupby("image_id")["rank"].min()
    resolved = best.map(dict(enumerate(OFFICIAL_PRECEDENCE)))
    return images["image_id"].map(resolved).astype(object).reset_index(drop=True)


def leaked_images(vqa: pd.DataFrame, classification: pd.DataFrame) -> set[str]:
    """Image ids whose records carry more than one official split (train/val/test)."""
    labels = pd.concat(
        [vqa[["image_id", "split"]], classification[["image_id", "split"]]], ignore_index=True
    )
    labels = labels[labels["split"].isin(SPLIT_ORDER)]
    per_image = labels.groupby("image_id")["split"].nunique()
    return set(per_image[per_image > 1].index.astype(str))


def carve_sources(
    images: pd.DataFrame, vqa: pd.DataFrame, classification: pd.DataFrame
) -> set[str]:
    """Sources whose records have official splits but no val split at all."""
    labels = pd.concat(
        [vqa[["image_id", "split"]], classification[["image_id", "split"]]], ignore_index=True
    )
    labels = labels[labels["split"].isin(SPLIT_ORDER)]
    source_of = images.set_index("image_id")["source"]
    labels = labels.assign(source=labels["image_id"].map(source_of))
    with_official = set(labels["source"])
    with_val = set(labels.loc[labels["split"] == "val", "source"])
    return with_official - with_val
