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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.splits.assign import (
    OFFICIAL_PRECEDENCE,
    SPLIT_ORDER,
    SplitFractions,
    hash_splits,
    train_val_splits,
    unit_hashes,
)
from robust_mmr_pipeline.splits.manifests import ManifestError, conform_manifest, empty_manifest

logger = logging.getLogger(__name__)

IN_DOMAIN = "in_domain"
CROSS_DOMAIN = "cross_domain"
LODO_PREFIX = "lodo:"
AS_RELEASED = "as_released"
PRETRAIN = "pretrain"
# An as_released image's primary split (pairs and records without an official split follow
# it): the first of these among its records' official splits, so training statements stay in
# train.
AS_RELEASED_PRECEDENCE: tuple[str, ...] = ("train", "val", "test")

# A list of domain values (matched in every source) or, per source name, its domain values.
HeldOutDomains = list[str] | dict[str, list[str]]

# Split values a record may carry in the unified tables (schema.SPLITS).
_RECORD_SPLITS = (*SPLIT_ORDER, "unassigned")


class SplitError(ValueError):
    """The tables or parameters cannot be split as asked; the message names the fix."""


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


def _examples(values: pd.Series, limit: int = 5) -> list[str]:
    return sorted(values.astype(str).unique().tolist())[:limit]


def _check_inputs(
    images: pd.DataFrame, records: Mapping[str, pd.DataFrame], key_of: Mapping[str, str]
) -> None:
    """Unique ids, records pointing at listed images, known split values."""
    if images.empty:
        raise SplitError("the images table is empty: there is nothing to split.")
    duplicated = images["image_id"][images["image_id"].duplicated()]
    if len(duplicated):
        raise SplitError(
            f"images: image_id(s) {_examples(duplicated)} occur more than once; run the "
            "validation pipeline, which rejects duplicate ids."
        )
    known = set(images["image_id"])
    for table, frame in records.items():
        key = key_of[table]
        repeated = frame[key][frame[key].duplicated()]
        if len(repeated):
            raise SplitError(f"{table}: {key}(s) {_examples(repeated)} occur more than once.")
        orphans = frame["image_id"][~frame["image_id"].isin(known)]
        if len(orphans):
            raise SplitError(
                f"{table}: {len(orphans)} record(s) reference image_id(s) missing from the "
                f"images table, e.g. {_examples(orphans)}; the validation pipeline should have "
                "caught this: re-run ingestion and validation."
            )
        if "split" in frame.columns:
            bad = frame["split"][~frame["split"].isin(_RECORD_SPLITS)]
            if len(bad):
                raise SplitError(
                    f"{table}: split value(s) {_examples(bad)} are not one of {_RECORD_SPLITS}."
                )


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


def _carve_sources(
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


def in_domain_splits(
    images: pd.DataFrame,
    u: np.ndarray,
    official: pd.Series,
    *,
    fractions: SplitFractions,
    respect_official_splits: bool,
    carve_sources: set[str],
) -> np.ndarray:
    """The in-domain split of every image (official where respected, else by hash)."""
    result = hash_splits(u, fractions)
    if not respect_official_splits:
        return result
    has_official = official.notna().to_numpy()
    result[has_official] = official[has_official].to_numpy(dtype=object)
    carve = (
        has_official
        & (official == "train").to_numpy()
        & images["source"].isin(carve_sources).to_numpy()
    )
    if carve.any():
        result[carve] = train_val_splits(u[carve], fractions)
        logger.info(
            "in_domain: %d of %d official-train image(s) of source(s) %s without an official val "
            "split moved to val by hash.",
            int((result[carve] == "val").sum()),
            int(carve.sum()),
            sorted(carve_sources),
        )
    return result


def held_out_mask(images: pd.DataFrame, held_out_domains: HeldOutDomains) -> np.ndarray | None:
    """Which images a cross-domain protocol holds out, or None when no domain is held out.

    A list names domain values in any source; a mapping names, per source, its domain values
    (entries for sources absent from the tables are skipped, so one mapping can serve several
    datasets; empty entries hold out nothing). Raises SplitError for a domain the tables do not
    have, or when the held-out set would be empty or everything.
    """
    if isinstance(held_out_domains, Mapping):
        held_out_domains = {k: list(v) for k, v in held_out_domains.items() if v}
    if not held_out_domains:
        return None
    domains_of = images.groupby("source")["domain"].unique().map(lambda v: sorted(v.tolist()))
    available = {str(source): list(domains) for source, domains in domains_of.items()}
    if isinstance(held_out_domains, Mapping):
        mask = np.zeros(len(images), dtype=bool)
        for source, domains in sorted(held_out_domains.items()):
            if source not in available:
                logger.info(
                    "domain_split.held_out_domains.%s skipped: no source %r in the images table.",
                    source,
                    source,
                )
                continue
            unknown = sorted(set(domains) - set(available[source]))
            if unknown:
                raise SplitError(
                    f"domain_split.held_out_domains.{source} names domain(s) {unknown} that "
                    f"source {source!r} does not have; its domains are {available[source]}."
                )
            mask |= ((images["source"] == source) & images["domain"].isin(domains)).to_numpy()
        if not mask.any():
            raise SplitError(
                "domain_split.held_out_domains names no source present in the images table "
                f"(it names {sorted(held_out_domains)}; present: {available}). Add an entry "
                "`<source>: [<domain>]` for a present source, or set held_out_domains: [] to "
                "emit no cross_domain protocol."
            )
    else:
        every = sorted({d for domains in available.values() for d in domains})
        unknown = sorted(set(held_out_domains) - set(every))
        if unknown:
            raise SplitError(
                f"domain_split.held_out_domains names domain(s) {unknown} that no image has; "
                f"the domains are {every} (per source: {available})."
            )
        mask = images["domain"].isin(held_out_domains).to_numpy()
    if mask.all():
        raise SplitError(
            f"domain_split.held_out_domains = {held_out_domains} holds out every image, leaving "
            "nothing to train on; hold out fewer domains."
        )
    return mask


EXCLUDED = None  # an image outside a protocol (dropped from its manifests)


def cross_domain_splits(in_domain: np.ndarray, held_out: np.ndarray) -> np.ndarray:
    """Held-out images -> test; the others keep their in-domain train/val split.

    In-domain test images are left out, so one model trained on the shared train split is
    evaluated honestly both in-domain (in_domain test) and cross-domain (held-out test), and
    pre-training on the cross-domain train split never sees an in-domain test image.
    """
    result = in_domain.astype(object).copy()
    result[result == "test"] = EXCLUDED
    result[held_out] = "test"
    return result


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
        raise ManifestError(f"split_images: unknown split value(s) {_examples(unknown['split'])}.")
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


def protocol_assignments(
    images: pd.DataFrame,
    vqa: pd.DataFrame,
    classification: pd.DataFrame,
    official: pd.Series,
    *,
    seed: int,
    fractions: SplitFractions,
    held_out_domains: HeldOutDomains,
    leave_one_out_all: bool,
    respect_official_splits: bool,
    carve_val_from_train: bool,
    corpus_sources: Collection[str] = (),
) -> dict[str, np.ndarray]:
    """Protocol name -> the split of every image (aligned with ``images``' rows).

    ``official`` is :func:`official_image_splits` of the same rows. Images of
    ``corpus_sources`` are in the ``pretrain`` protocol only.
    """
    u = unit_hashes(seed, images["image_id"])
    carve = _carve_sources(images, vqa, classification) if carve_val_from_train else set()
    assignments = {
        IN_DOMAIN: in_domain_splits(
            images,
            u,
            official,
            fractions=fractions,
            respect_official_splits=respect_official_splits,
            carve_sources=carve,
        )
    }
    in_domain = assignments[IN_DOMAIN]
    held = held_out_mask(images, held_out_domains)
    if held is not None:
        assignments[CROSS_DOMAIN] = cross_domain_splits(in_domain, held)
        # In-domain means the training domains only: the held-out domain is never in it.
        assignments[IN_DOMAIN] = np.where(held, EXCLUDED, in_domain).astype(object)
    corpus = images["source"].isin(list(corpus_sources)).to_numpy()
    pretrain = np.where(
        np.isin(assignments[IN_DOMAIN], ["train", "val"]), assignments[IN_DOMAIN], EXCLUDED
    ).astype(object)
    pretrain[corpus] = "train"
    if held is not None:
        # the held-out domain stays unseen, in a corpus too (whatever source names it)
        held_values = images.loc[held, "domain"].unique().tolist()
        pretrain[held | (corpus & images["domain"].isin(held_values).to_numpy())] = EXCLUDED
    assignments[PRETRAIN] = pretrain
    for name in list(assignments):
        if name != PRETRAIN:
            assignments[name] = np.where(corpus, EXCLUDED, assignments[name]).astype(object)
    if leave_one_out_all:
        domains = sorted(images.loc[~corpus, "domain"].unique().tolist())
        if len(domains) < 2:
            logger.warning(
                "leave_one_out_all: only one domain (%s) in the images table; no lodo protocol.",
                domains,
            )
        else:
            for domain in domains:
                held = (images["domain"] == domain).to_numpy()
                splits = cross_domain_splits(in_domain, held)
                assignments[f"{LODO_PREFIX}{domain}"] = np.where(corpus, EXCLUDED, splits)
    return assignments


@dataclass(frozen=True)
class _Released:
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
) -> _Released:
    """The ``as_released`` protocol (module docstring): records keep their official split.

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
        carve = _carve_sources(base, vqa, classification)
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
    return _Released(
        images=image_rows.assign(protocol=AS_RELEASED),
        pairs=placed_pairs,
        vqa=placed_vqa,
        classification=placed_classification,
    )


def _with_released(standard: pd.DataFrame, released: pd.DataFrame, name: str) -> pd.DataFrame:
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
    _check_inputs(
        images,
        {"pairs": pairs, "vqa": vqa, "classification": classification},
        {"pairs": "pair_id", "vqa": "qid", "classification": "sample_id"},
    )
    base = images[["image_id", "source", "domain"]].reset_index(drop=True)
    _check_corpus(base, vqa, classification, corpus_sources)
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
        else _Released(*(pd.DataFrame() for _ in range(4)))
    )
    manifests = SplitManifests(
        images=_with_released(split_images, released.images, "split_images"),
        pairs=_with_released(
            _join_records(split_images, pairs, "split_pairs", official_by_id, official_protocols),
            released.pairs,
            "split_pairs",
        ),
        vqa=_with_released(
            _join_records(labeled_images, vqa, "split_vqa", official_by_id, official_protocols),
            released.vqa,
            "split_vqa",
        ),
        classification=_with_released(
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


def _check_corpus(
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
                f"{sorted(corpus_sources)} (e.g. image {_examples(labeled, 1)}); a corpus is "
                "unlabeled and pre-training-only. Set `role: labeled` on that source in "
                "ingestion.sources, or ingest its labels as a separate source."
            )


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
