"""Domain splits: in-domain, cross-domain (leave-one-domain-out) and perturbed test sets.

Plain Python (no Kedro): the ``domain_split`` pipeline wires these functions.

- assign.py             hash-based split assignment and seed derivation
- protocols.py          the protocols (docstring), building the manifests: record joins,
                        disjointness checks, answer vocabulary
- disjoint_protocols.py in_domain / cross_domain / lodo / pretrain: one split per image
- as_released.py        the official split as published (images may sit in several splits)
- official.py           the sources' own splits: per image, leaks, sources without val
- inputs.py             what the split accepts (validation passed, consistent tables)
- perturbation_sets.py  perturbed test set manifests (corruption x severity, seeds)
- manifests.py          fixed schemas and deterministic ordering of the manifests
- summary.py            counts table and figure
"""

from robust_mmr_pipeline.splits.assign import SplitFractions, derive_seed, unit_hash
from robust_mmr_pipeline.splits.disjoint_protocols import CROSS_DOMAIN, IN_DOMAIN, LODO_PREFIX
from robust_mmr_pipeline.splits.inputs import SplitError, check_validation_summary
from robust_mmr_pipeline.splits.manifests import MANIFESTS, ManifestError, conform_manifest
from robust_mmr_pipeline.splits.perturbation_sets import (
    UnknownPerturbationError,
    perturbation_sets,
    record_seed,
    resolve_perturbations,
)
from robust_mmr_pipeline.splits.protocols import SplitManifests, answer_vocabulary, build_splits
from robust_mmr_pipeline.splits.summary import plot_split_counts, split_counts

__all__ = [
    "CROSS_DOMAIN",
    "IN_DOMAIN",
    "LODO_PREFIX",
    "MANIFESTS",
    "ManifestError",
    "SplitError",
    "SplitFractions",
    "SplitManifests",
    "UnknownPerturbationError",
    "answer_vocabulary",
    "build_splits",
    "check_validation_summary",
    "conform_manifest",
    "derive_seed",
    "perturbation_sets",
    "plot_split_counts",
    "record_seed",
    "resolve_perturbations",
    "split_counts",
    "unit_hash",
]
