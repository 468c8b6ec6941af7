"""The image-disjoint protocols: ``in_domain``, ``cross_domain``, ``lodo:<domain>`` and
``pretrain`` (defined in protocols.py's docstring), as one split per image and protocol."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from robust_mmr_pipeline.splits.assign import (
    SplitFractions,
    hash_splits,
    train_val_splits,
    unit_hashes,
)
from robust_mmr_pipeline.splits.inputs import SplitError
from robust_mmr_pipeline.splits.official import carve_sources

logger = logging.getLogger(__name__)

IN_DOMAIN = "in_domain"
CROSS_DOMAIN = "cross_domain"
LODO_PREFIX = "lodo:"
PRETRAIN = "pretrain"

# A list of domain values (matched in every source) or, per source name, its domain values.
HeldOutDomains = list[str] | dict[str, list[str]]


EXCLUDED = None  # an image outside a protocol (dropped from its manifests)


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
    carve = carve_sources(images, vqa, classification) if carve_val_from_train else set()
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
