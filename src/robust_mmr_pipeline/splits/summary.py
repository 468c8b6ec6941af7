"""Counts per protocol x split x source x domain, and a grouped-bar figure of them.

The table has one row for every protocol, split (train, val, test) and (source, domain) of the
images table, zeros included.

Columns of the summary table
----------------------------
protocol, split, source, domain   the group
images, pairs, vqa, classification
    rows of each manifest in the group
leaked_images
    images of the group whose records carried more than one official split and lost the
    records of the other split(s) (counted at the split the image went to)
overlap_images
    images of the group that also sit in another split of the same protocol: 0 in every
    image-disjoint protocol; in ``as_released``, the source's own overlap kept as published
    (e.g. the test images that also carry training questions)
vqa_excluded, classification_excluded
    records excluded for that reason (counted at the official split they carried)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from robust_mmr_pipeline.splits.assign import SPLIT_ORDER
from robust_mmr_pipeline.splits.disjoint_protocols import PRETRAIN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

GROUP = ["protocol", "split", "source", "domain"]
SPLIT_COLOURS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}
COUNTS = [
    "images",
    "pairs",
    "vqa",
    "classification",
    "leaked_images",
    "overlap_images",
    "vqa_excluded",
    "classification_excluded",
]


def _count(frame: pd.DataFrame, column: str, distinct: str | None = None) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=[*GROUP, column])
    grouped = frame.groupby(GROUP, sort=False)
    counts = grouped[distinct].nunique() if distinct else grouped.size()
    return counts.rename(column).reset_index()


def _excluded(
    split_images: pd.DataFrame, records: pd.DataFrame, manifest: pd.DataFrame, key: str
) -> pd.DataFrame:
    """Records of images in a protocol that the protocol's manifest left out (the ``pretrain``
    protocol holds no labeled records by design: not counted).

    Columns: protocol, image_id, image_split (where the image went), split (the record's
    official split), the record key.
    """
    split_images = split_images[split_images["protocol"] != PRETRAIN]
    if records.empty:
        return pd.DataFrame(columns=["protocol", "image_id", "image_split", "split", key])
    expected = records[[key, "image_id", "split"]].merge(
        split_images[["protocol", "image_id", "split"]].rename(columns={"split": "image_split"}),
        on="image_id",
    )
    present = manifest[["protocol", key]].assign(_present=True)
    merged = expected.merge(present, on=["protocol", key], how="left")
    return merged[merged["_present"].isna()].drop(columns="_present")


def split_counts(
    *,
    images: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    split_images: pd.DataFrame,
    split_pairs: pd.DataFrame,
    split_vqa: pd.DataFrame,
    split_classification: pd.DataFrame,
) -> pd.DataFrame:
    """The summary table (module docstring), sorted by protocol, split order, source, domain."""
    source_of = images.set_index("image_id")["source"]

    def with_source(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(source=frame["image_id"].map(source_of))

    domain_of = images.set_index("image_id")["domain"]
    parts = [
        _count(with_source(split_images), "images"),
        _count(with_source(split_pairs), "pairs"),
        _count(with_source(split_vqa), "vqa"),
        _count(with_source(split_classification), "classification"),
    ]
    leaked_ids: list[pd.DataFrame] = []
    for name, records, manifest, key in (
        ("vqa_excluded", vqa, split_vqa, "qid"),
        ("classification_excluded", classification, split_classification, "sample_id"),
    ):
        excluded = _excluded(split_images, records, manifest, key)
        excluded = excluded.assign(domain=excluded["image_id"].map(domain_of))
        parts.append(_count(with_source(excluded), name))
        leaked_ids.append(excluded[["protocol", "image_id", "image_split", "domain"]])
    leaked = pd.concat(leaked_ids, ignore_index=True).drop_duplicates()
    leaked = leaked.rename(columns={"image_split": "split"})
    parts.append(_count(with_source(leaked), "leaked_images", distinct="image_id"))
    splits_per_image = split_images.groupby(["protocol", "image_id"])["split"].transform("nunique")
    parts.append(_count(with_source(split_images[splits_per_image > 1]), "overlap_images"))

    long = pd.concat(
        [part.astype({column: object for column in GROUP}) for part in parts], ignore_index=True
    )
    counted = long.groupby(GROUP, sort=False)[COUNTS].sum()
    # Every protocol x split x (source, domain), zeros included, so empty cells stay visible.
    domains = images[["source", "domain"]].drop_duplicates().astype(object)
    grid = (
        pd.DataFrame({"protocol": sorted(split_images["protocol"].unique().tolist())})
        .merge(pd.DataFrame({"split": list(SPLIT_ORDER)}), how="cross")
        .merge(domains, how="cross")
    )
    table = grid.merge(counted.reset_index(), on=GROUP, how="left")
    table[COUNTS] = table[COUNTS].fillna(0).astype("int64")
    order = {split: position for position, split in enumerate(SPLIT_ORDER)}
    table = (
        table.assign(_order=table["split"].map(order))
        .sort_values(["protocol", "_order", "source", "domain"], kind="mergesort")
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    return table[[*GROUP, *COUNTS]].astype({column: str for column in GROUP})


def plot_split_counts(summary: pd.DataFrame) -> Figure:
    """Grouped bars: image counts per domain (x) and split (bars), one panel per protocol.

    Domains are labelled ``source/domain`` when the table holds several sources. matplotlib is
    imported here so that importing this module stays light.
    """
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    protocols = sorted(summary["protocol"].unique().tolist())
    several_sources = summary["source"].nunique() > 1
    labels = summary["source"] + "/" + summary["domain"] if several_sources else summary["domain"]
    frame = summary.assign(label=labels)
    all_labels = sorted(frame["label"].unique().tolist())
    width = 0.8 / len(SPLIT_ORDER)
    panels = max(len(protocols), 1)
    # Fixed margins (inches) instead of tight_layout, which draws the figure twice more.
    panel_h, top, bottom, left, right = 2.2, 1.0, 0.9, 0.8, 0.2
    fig_w = max(6.0, 1.1 * len(all_labels) + 1.5)
    fig_h = top + bottom + panel_h * panels + 0.55 * (panels - 1)
    figure = Figure(figsize=(fig_w, fig_h))
    figure.subplots_adjust(
        left=left / fig_w,
        right=1 - right / fig_w,
        top=1 - top / fig_h,
        bottom=bottom / fig_h,
        hspace=0.55 / panel_h,
    )
    axes = figure.subplots(panels, 1, squeeze=False, sharex=True)[:, 0]
    positions = np.arange(len(all_labels))
    for axis, protocol in zip(axes, protocols, strict=False):
        rows = frame[frame["protocol"] == protocol]
        pivot = rows.pivot_table(
            index="label", columns="split", values="images", aggfunc="sum", fill_value=0
        ).reindex(index=all_labels, columns=list(SPLIT_ORDER), fill_value=0)
        for offset, split in enumerate(SPLIT_ORDER):
            bars = axis.bar(
                positions + (offset - 1) * width,
                pivot[split].to_numpy(),
                width=width,
                label=split,
                color=SPLIT_COLOURS[split],
            )
            axis.bar_label(bars, fontsize=7, padding=1)
        axis.set_title(f"protocol: {protocol}", fontsize=9, loc="left")
        axis.set_ylabel("images", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        axis.margins(y=0.2)
    axes[-1].set_xticks(positions, all_labels, rotation=30, ha="right", fontsize=8)
    if not protocols:
        axes[0].text(0.5, 0.5, "no protocol", ha="center", va="center")
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(
            handles,
            names,
            loc="upper right",
            bbox_to_anchor=(1 - right / fig_w, 1 - 0.1 / fig_h),
            ncols=len(SPLIT_ORDER),
            fontsize=8,
        )
    figure.suptitle(
        "Images per domain and split, by protocol",
        x=left / fig_w,
        y=1 - 0.2 / fig_h,
        ha="left",
        va="top",
        fontsize=11,
    )
    return figure
