"""The ``as_released`` protocol (protocols.py's docstring): every record keeps its official
split as published, so an image may sit in several splits; the overlap is counted."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from robust_mmr_pipeline.splits.assign import (
    SPLIT_ORDER,
    SplitFractions,
    hash_splits,
    train_val_splits,
    unit_hashes,
)
from robust_mmr_pipeline.splits.manifests import conform_manifest
from robust_mmr_pipeline.splits.official import carve_sources

AS_RELEASED = "as_released"
# An as_released image's primary split (pairs and records without an official split follow
# it): the first of these among its records' official splits, so training statements stay in
# train.
AS_RELEASED_PRECEDENCE: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Released:
    """The as_released protocol's rows (manifest columns, not yet conformed)."""

    images: pd.DataFrame
    pairs: pd.DataFrame
    vqa: pd.DataFrame
    classification: pd.DataFrame


def as_released_splits(
    base: pd.DataFrame,
    pairs: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    *,
    seed: int,
    fractions: SplitFractions,
    carve_val_from_train: bool,
) -> Released:
    """The ``as_released`` protocol (protocols.py's docstring): records keep their official split.

    ``base`` holds image_id, source and domain of every image.
    """
    labels = pd.concat(
        [vqa[["image_id", "split"]], classification[["image_id", "split"]]], ignore_index=True
    )
    labels = labels[labels["split"].isin(SPLIT_ORDER)]
    rank = {split: position for position, split in enumerate(AS_RELEASED_PRECEDENCE)}
    first = labels.assign(rank=labels["split"].map(rank)).groupby("image_id")["rank"].min()
    official = base["image_id"].map(first.map(dict(enumerate(AS_RELEASED_PRECEDENCE))))
    u = unit_hashes(seed, base["image_id"])
    primary = hash_splits(u, fractions)
    has_official = official.notna().to_numpy()
    primary[has_official] = official[has_official].to_numpy(dtype=object)
    carved = np.zeros(len(base), dtype=bool)
    if carve_val_from_train:
        carve = carve_sources(base, vqa, classification)
        candidates = has_official & (primary == "train") & base["source"].isin(carve).to_numpy()
        primary[candidates] = train_val_splits(u[candidates], fractions)
        carved = candidates & (primary == "val")
    primary_of = pd.Series(primary, index=base["image_id"].to_numpy())
    carved_ids = set(base["image_id"][carved])
    domain_of = base.set_index("image_id")["domain"]

    def placed(records: pd.DataFrame, own_split: bool) -> pd.DataFrame:
        frame = records.copy()
        follow = primary_of.reindex(frame["image_id"]).to_numpy(dtype=object)
        if own_split:
            split = frame["split"].to_numpy(dtype=object)
            official_split = np.isin(split, SPLIT_ORDER)
            moved = (split == "train") & frame["image_id"].isin(carved_ids).to_numpy()
            split = np.where(moved, "val", split)
            follow = np.where(official_split, split, follow)
        return frame.assign(
            protocol=AS_RELEASED, split=follow, domain=frame["image_id"].map(domain_of)
        )

    placed_vqa = placed(vqa, own_split=True)
    placed_classification = placed(classification, own_split=True)
    placed_pairs = placed(pairs, own_split=False)
    image_rows = pd.concat(
        [
            base[["image_id", "domain"]].assign(split=primary),
            *(
                frame[["image_id", "domain", "split"]]
                for frame in (placed_vqa, placed_classification)
            ),
        ],
        ignore_index=True,
    ).drop_duplicates(subset=["image_id", "split"])
    return Released(
        images=image_rows.assign(protocol=AS_RELEASED),
        pairs=placed_pairs,
        vqa=placed_vqa,
        classification=placed_classification,
    )


def with_released(standard: pd.DataFrame, released: pd.DataFrame, name: str) -> pd.DataFrame:
    """A manifest with the as_released protocol's rows added (conformed again)."""
    if released.empty:
        return standard
    return conform_manifest(pd.concat([standard, released], ignore_index=True), name)


def overlap_counts(split_images: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per protocol with images in several splits (``as_released``): how many images sit in
    each pair of splits (``train&test``, ...), and in all three (``train&val&test``)."""
    counts: dict[str, dict[str, int]] = {}
    for protocol, frame in split_images.groupby("protocol"):
        per_image = frame.groupby("image_id")["split"].agg(
            lambda splits: "&".join(s for s in SPLIT_ORDER if s in set(splits))
        )
        shared = per_image[per_image.str.contains("&")]
        if len(shared):
            counts[str(protocol)] = {str(k): int(v) for k, v in shared.value_counts().items()}
    return counts
