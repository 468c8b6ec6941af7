"""Typed parameters of the domain_split pipeline (``params:domain_split``)."""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from robust_mmr_pipeline.splits.assign import SplitFractions
from robust_mmr_pipeline.splits.perturbation_sets import SEVERITIES
from robust_mmr_pipeline.typed_config import config


@config
class DomainSplitParams:
    """How to split the unified tables into protocols and which perturbed test sets to list.

    ``held_out_domains`` is either a list of domain values (held out in every source) or a
    mapping ``source name -> domain values`` (entries for sources not in the tables are
    skipped, an empty entry holds out nothing of its source, e.g. to switch off a base entry
    from another env); nothing held out emits no ``cross_domain`` protocol. Domain values are
    those the sources write: SynthRad's site names, VQA-RAD's lower-cased organ (head, chest,
    abd), SLAKE's lower-cased modality (ct, mri, x-ray).

    ``as_released`` adds the protocol of that name (splits/protocols.py): the sources' official
    splits as published, not image-disjoint, for comparison with published numbers only.

    ``image_perturbations`` / ``text_perturbations``: names from the registry of
    ``robust_mmr_pipeline.perturb`` or ``"all"``; ``severities`` within 1..5.
    """

    seed: int = 0
    fractions: SplitFractions = field(default_factory=SplitFractions)
    held_out_domains: list[str] | dict[str, list[str]] = field(default_factory=list)
    leave_one_out_all: bool = False
    respect_official_splits: bool = True
    # A source with official train/test but no val split gets val from its official train
    # images (by hash), so models are selected on val, never on test.
    carve_val_from_train: bool = True
    # Also emit the `as_released` protocol: the official split exactly as published (images may
    # sit in train and test; counted in the summary), for numbers next to published ones.
    as_released: bool = False
    image_perturbations: list[str] | Literal["all"] = "all"
    text_perturbations: list[str] | Literal["all"] = "all"
    severities: list[int] = field(default_factory=lambda: list(SEVERITIES))

    def __post_init__(self) -> None:
        if not self.severities:
            raise ValueError("severities is empty; list at least one of 1..5.")
        outside = sorted({s for s in self.severities if s not in SEVERITIES})
        if outside:
            raise ValueError(f"severities {outside} are outside 1..5.")
        if len(set(self.severities)) != len(self.severities):
            raise ValueError(f"severities {self.severities} repeat a value.")


__all__ = ["DomainSplitParams", "SplitFractions"]
