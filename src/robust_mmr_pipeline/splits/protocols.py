"""Evaluation protocols: which image goes to which split, and the records that follow it.

Protocols (see METHOD.md, "Evaluation protocol")
-------------------------------------------------
``in_domain``
    Every image of the training domains: images of the ``held_out_domains`` are not part of it.
    With ``respect_official_splits`` an image whose records (vqa, classification) carry an
    official split keeps it; images without one (``unassigned`` or no split-bearing
    record, e.g. pairs only) are assigned by hash (assign.py). With ``carve_val_from_train``, a
    source whose records have official train/test but no val gets its val split from its official
    train images, by hash with train/val renormalised (VQA-RAD publishes no val split; selecting
    on test is a known flaw of earlier work).
``cross_domain``
    Leave-one-domain-out with the configured held-out domain(s): every image of a held-out domain
    goes to test (whatever its official split); the other images keep their in-domain train/val
    split and in-domain test images are left out, so train and val are the same as in_domain's
    and one model serves both protocols. Only emitted when ``held_out_domains`` names at least
    one domain.
``lodo:<domain>``
    With ``leave_one_out_all``, one such protocol per domain value (all sources together), built
    like ``cross_domain`` with that domain held out: its images -> test, the other images keep
    their in-domain train/val split (as assigned over every image, whatever ``held_out_domains``
    says) and in-domain test images are left out.

``as_released``
    With ``as_released``, the official split exactly as published, for numbers that stand next
    to published ones: every record keeps its official split, so an image whose records carry
    several splits (VQA-RAD asks test questions about 202 of its 314 training images) sits in
    each of them; the overlap is counted in the split summary (``overlap_images``) and logged.
    Records without an official split, and pairs (which have none), follow the image's primary
    split: the first of train, val, test among its records' official splits (so the QA
    statements of training records stay in train), else by hash. Every domain is in it (none
    is held out). With ``carve_val_from_train`` the val split of a source that publishes none
    is carved from its official train images by hash, as in in_domain (test stays exactly as
    published). Not image-disjoint: never the protocol of a robustness claim.

``pretrain``
    What pre-training (and its tokenizer) may read: the in-domain train / val images of the
    training domains, plus every image of the ``corpus_sources`` (unlabeled pre-training
    corpora: images with reports / captions, no QA, no labels) in train, those of a held-out
    domain excepted. Corpus images belong to no other protocol, so no task ever trains or is
    tested on them. Only its images and pairs are emitted (its labeled records are in_domain's).

An image outside a protocol has no row in that protocol's manifests; in every protocol but
``as_released`` an image has one split.

Images, not records, are assigned, and every record (pairs, vqa, classification) follows its
image, so no image sits in two splits of one protocol. When an image's records carry different
official splits (a leak in the source, e.g. VQA-RAD asks test questions about training images),
the image goes to the first of test, val, train that occurs, and in ``in_domain`` its records of
the other official split(s) are excluded from that protocol (the summary counts them). Records
marked ``unassigned`` follow their image. Cross-domain protocols exclude the same records of
their train/val images (the in-domain ones), so their train/val records equal in_domain's; their
held-out test images ignore official splits and keep every record.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pandas as pd

from robust_mmr_pipeline.splits.as_released import (
    AS_RELEASED,
    AS_RELEASED_PRECEDENCE,
    Released,
    as_released_splits,
    overlap_counts,
    with_released,
)
from robust_mmr_pipeline.splits.assign import SPLIT_ORDER, SplitFractions
from robust_mmr_pipeline.splits.disjoint_protocols import (
    CROSS_DOMAIN,
    EXCLUDED,
    IN_DOMAIN,
    LODO_PREFIX,
    PRETRAIN,
    HeldOutDomains,
    cross_domain_splits,
    held_out_mask,
    in_domain_splits,
    protocol_assignments,
)
from robust_mmr_pipeline.splits.inputs import (
    SplitError,
    check_corpus,
    check_inputs,
    check_validation_summary,
    examples,
)
from robust_mmr_pipeline.splits.manifests import ManifestError, conform_manifest, empty_manifest
from robust_mmr_pipeline.splits.official import leaked_images, official_image_splits

__all__ = [
    "AS_RELEASED",
    "AS_RELEASED_PRECEDENCE",
    "CROSS_DOMAIN",
    "EXCLUDED",
    "IN_DOMAIN",
    "LODO_PREFIX",
    "PRETRAIN",
    "HeldOutDomains",
    "SplitError",
    "SplitManifests",
    "answer_vocabulary",
    "as_released_splits",
    "assert_image_disjoint",
    "build_splits",
    "check_validation_summary",
    "content_duplicates_across_splits",
    "cross_domain_splits",
    "held_out_mask",
    "in_domain_splits",
    "leaked_images",
    "official_image_splits",
    "overlap_counts",
    "protocol_assignments",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitManifests:
    """The split manifests of every protocol (schemas in manifests.py)."""

    images: pd.DataFrame
    pairs: pd.DataFrame
    vqa: pd.DataFrame
    classification: pd.DataFrame

    @property
    def protocols(self) -> list[str]:
        return sorted(self.images["protocol"].unique().tolist())


def _join_records(
    split_images: pd.DataFrame,
    records: pd.DataFrame,
    manifest: str,
    official: pd.Series,
    official_protocols: set[str],
) -> pd.DataFrame:
    """Records joined with their image's split in every protocol, leaked records excluded.

    Leaked records are excluded where the image's split is its in-domain one: every image of
    the ``official_protocols`` (in_domain when official splits are respected), and then also
    the train/val images of the cross-domain protocols, which inherit their in-domain split.
    """
    if records.empty:
        return empty_manifest(manifest)
    frame = records.rename(columns={"split": "official_split"})
    joined = frame.merge(split_images, on="image_id", how="inner")
    if "official_split" in joined.columns and official_protocols:
        resolved = joined["image_id"].map(official)
        in_domain_split = joined["protocol"].isin(official_protocols) | joined["split"].isin(
            ("train", "val")
        )
        leaked = (
            in_domain_split
            & joined["official_split"].isin(SPLIT_ORDER)
            & (joined["official_split"] != resolved)
        )
        joined = joined[~leaked.to_numpy()]
    return conform_manifest(joined, manifest)


def assert_image_disjoint(manifests: SplitManifests) -> None:
    """Raise ManifestError unless each image has one split per protocol (``as_released``
    excepted, whose images may sit in several) and every record sits in a split of its image."""
    images = manifests.images
    single = images[images["protocol"] != AS_RELEASED]
    repeated = single[single.duplicated(subset=["protocol", "image_id"], keep=False)]
    if len(repeated):
        example = repeated.head(4).to_dict("records")
        raise ManifestError(f"split_images: an image is in two splits of one protocol: {example}")
    unknown = images[~images["split"].isin(SPLIT_ORDER)]
    if len(unknown):
        raise ManifestError(f"split_images: unknown split value(s) {examples(unknown['split'])}.")
    placed = pd.MultiIndex.from_frame(images[["protocol", "image_id", "split"]])
    for name, frame in (
        ("split_pairs", manifests.pairs),
        ("split_vqa", manifests.vqa),
        ("split_classification", manifests.classification),
    ):
        if frame.empty:
            continue
        keys = pd.MultiIndex.from_frame(frame[["protocol", "image_id", "split"]])
        mismatch = ~keys.isin(placed)
        if mismatch.any():
            example = frame.loc[mismatch].head(3).to_dict("records")
            raise ManifestError(
                f"{name}: record(s) not in their image's split (or image unassigned): {example}"
            )


def content_duplicates_across_splits(
    split_images: pd.DataFrame, images: pd.DataFrame
) -> dict[str, int]:
    """Per protocol, how many image contents (sha256) occur under ids in different splits."""
    sha = images.set_index("image_id")["sha256"]
    # as_released keeps the source's own overlap by design (counted in the summary instead)
    split_images = split_images[split_images["protocol"] != AS_RELEASED]
    frame = split_images.assign(sha256=split_images["image_id"].map(sha))
    frame = frame[frame["sha256"].notna() & (frame["sha256"] != "")]
    spread = frame.groupby(["protocol", "sha256"])["split"].nunique()
    spread = spread[spread > 1]
    return {str(k): int(v) for k, v in spread.groupby(level="protocol").size().items()}


def build_splits(
    images: pd.DataFrame,
    pairs: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    *,
    seed: int,
    fractions: SplitFractions,
    held_out_domains: HeldOutDomains,
    leave_one_out_all: bool = False,
    respect_official_splits: bool = True,
    carve_val_from_train: bool = True,
    as_released: bool = False,
    corpus_sources: Collection[str] = (),
) -> SplitManifests:
    """Assign every image of every protocol to a split and join the records to it.

    ``corpus_sources``: source names of unlabeled pre-training corpora (``pretrain`` protocol
    only; a corpus source's labeled records, should it have any, are refused).

    Inputs are the validated unified tables (schema.py). Returns the manifests, sorted and
    typed (manifests.py), after asserting that no image sits in two splits of a protocol
    (``as_released``, emitted when asked, excepted).
    """
    check_inputs(
        images,
        {"pairs": pairs, "vqa": vqa, "classification": classification},
        {"pairs": "pair_id", "vqa": "qid", "classification": "sample_id"},
    )
    base = images[["image_id", "source", "domain"]].reset_index(drop=True)
    check_corpus(base, vqa, classification, corpus_sources)
    official = official_image_splits(base, vqa, classification)
    assignments = protocol_assignments(
        base,
        vqa,
        classification,
        official,
        seed=seed,
        fractions=fractions,
        held_out_domains=held_out_domains,
        leave_one_out_all=leave_one_out_all,
        respect_official_splits=respect_official_splits,
        carve_val_from_train=carve_val_from_train,
        corpus_sources=corpus_sources,
    )
    split_images = conform_manifest(
        pd.concat(
            [
                base[["image_id", "domain"]]
                .assign(protocol=name, split=splits)
                .loc[lambda frame: frame["split"].notna()]
                for name, splits in assignments.items()
            ],
            ignore_index=True,
        ),
        "split_images",
    )
    official_by_id = pd.Series(official.to_numpy(dtype=object), index=base["image_id"])
    labeled_images = split_images[split_images["protocol"] != PRETRAIN]
    official_protocols = {IN_DOMAIN} if respect_official_splits else set()
    released = (
        as_released_splits(
            images[["image_id", "source", "domain"]].reset_index(drop=True),
            pairs,
            vqa,
            classification,
            seed=seed,
            fractions=fractions,
            carve_val_from_train=carve_val_from_train,
        )
        if as_released
        else Released(*(pd.DataFrame() for _ in range(4)))
    )
    manifests = SplitManifests(
        images=with_released(split_images, released.images, "split_images"),
        pairs=with_released(
            _join_records(split_images, pairs, "split_pairs", official_by_id, official_protocols),
            released.pairs,
            "split_pairs",
        ),
        vqa=with_released(
            _join_records(labeled_images, vqa, "split_vqa", official_by_id, official_protocols),
            released.vqa,
            "split_vqa",
        ),
        classification=with_released(
            _join_records(
                labeled_images,
                classification,
                "split_classification",
                official_by_id,
                official_protocols,
            ),
            released.classification,
            "split_classification",
        ),
    )
    assert_image_disjoint(manifests)
    overlaps = overlap_counts(manifests.images)
    if overlaps:
        logger.warning(
            "as_released keeps the official split as published, so images sit in several "
            "splits: %s (images per combination). Its test numbers compare with published "
            "ones; robustness claims use the image-disjoint protocols.",
            overlaps,
        )
    leaks = leaked_images(vqa, classification)
    if leaks and respect_official_splits:
        logger.warning(
            "%d image(s) carry records of more than one official split (a leak in the source); "
            "in %s each went to its latest split (test > val > train) and its other records "
            "were excluded (see the domain_split summary).",
            len(leaks),
            IN_DOMAIN,
        )
    duplicates = content_duplicates_across_splits(split_images, images)
    if duplicates:
        logger.warning(
            "identical image contents (same sha256) under different image_ids sit in different "
            "splits: %s (protocol: number of contents). Deduplicate the source to avoid leakage.",
            duplicates,
        )
    logger.info(
        "domain_split: protocols %s; %d image rows, %d pairs, %d vqa, %d classification rows.",
        manifests.protocols,
        len(split_images),
        len(manifests.pairs),
        len(manifests.vqa),
        len(manifests.classification),
    )
    return manifests


def answer_vocabulary(split_vqa: pd.DataFrame, protocols: Sequence[str]) -> dict[str, list[str]]:
    """Per protocol, the answers of its TRAIN rows, by frequency (descending) then alphabetically.

    Val and test answers never enter the vocabulary (building it from all splits is a known
    flaw of earlier work); a protocol without training VQA rows gets an empty list.
    """
    train = split_vqa[split_vqa["split"] == "train"]
    vocabulary: dict[str, list[str]] = {}
    for protocol in sorted(protocols):
        counts = train.loc[train["protocol"] == protocol, "answer"].astype(str).value_counts()
        ordered = sorted(counts.items(), key=lambda item: (-int(item[1]), item[0]))
        vocabulary[protocol] = [answer for answer, _ in ordered]
    return vocabulary
