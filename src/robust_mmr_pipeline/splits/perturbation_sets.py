"""Perturbed test sets as manifests: each corruption x severity, with a deterministic seed.

A perturbed set is a row, not a copy of the images: (protocol, base_split = test, set_name,
modality, perturbation, severity, seed). The evaluation stage applies
``robust_mmr_pipeline.perturb.perturb_image`` / ``perturb_text`` to the protocol's test split on
the fly, with the row's seed (for a per-record seed, :func:`record_seed`). Names are checked
against the perturbation registry, so a typo fails before anything is evaluated.

The seed of a set is ``derive_seed(global_seed, perturbation, severity)`` (sha256-based,
assign.py): the same in every protocol and independent of which other sets exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import pandas as pd

from robust_mmr_pipeline.splits.assign import derive_seed
from robust_mmr_pipeline.splits.manifests import conform_manifest

Selection = list[str] | Literal["all"]
BASE_SPLIT = "test"
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


class UnknownPerturbationError(ValueError):
    """A configured perturbation name is not in the registry; the message lists the valid ones."""


def registry_names() -> tuple[list[str], list[str]]:
    """The image and text perturbation names of ``robust_mmr_pipeline.perturb``'s registry.

    Imported here, not at module import, so the Kedro pipeline modules load without torch.
    """
    from robust_mmr_pipeline.perturb import list_image_perturbations, list_text_perturbations

    return [str(n) for n in list_image_perturbations()], [str(n) for n in list_text_perturbations()]


def resolve_perturbations(
    requested: Selection, available: Iterable[str], modality: Literal["image", "text"]
) -> list[str]:
    """The sorted perturbation names ``requested`` selects (``"all"``: every registered one).

    Raises UnknownPerturbationError naming the unknown names and the registered ones.
    """
    registered = sorted(set(available))
    if requested == "all":
        return registered
    if isinstance(requested, str):
        raise UnknownPerturbationError(
            f"domain_split.{modality}_perturbations = {requested!r}: give a list of names or "
            f'"all"; registered {modality} perturbations: {registered}.'
        )
    unknown = sorted(set(requested) - set(registered))
    if unknown:
        raise UnknownPerturbationError(
            f"domain_split.{modality}_perturbations: unknown {modality} perturbation(s) "
            f"{unknown}. Registered {modality} perturbations (robust_mmr_pipeline.perturb): "
            f'{registered}. Fix the spelling or use "all".'
        )
    return sorted(set(requested))


def set_name(perturbation: str, severity: int) -> str:
    """The name of a perturbed set, e.g. ``gaussian_noise@3``."""
    return f"{perturbation}@{int(severity)}"


def record_seed(set_seed: int, record_id: str) -> int:
    """A per-record seed inside one perturbed set (e.g. for ``perturb_text``)."""
    return derive_seed(set_seed, record_id)


def perturbation_sets(
    protocols: Sequence[str],
    image_perturbations: Sequence[str],
    text_perturbations: Sequence[str],
    severities: Sequence[int],
    seed: int,
) -> pd.DataFrame:
    """The perturbation_sets manifest: every protocol x (perturbation x severity) per modality.

    Names must already be resolved (:func:`resolve_perturbations`); a name registered for both
    modalities would give two sets of one name and is refused.
    """
    clash = sorted(set(image_perturbations) & set(text_perturbations))
    if clash:
        raise UnknownPerturbationError(
            f"perturbation name(s) {clash} are selected as both image and text perturbations; "
            "set names must be unique within a protocol. Select each for one modality only."
        )
    bad = sorted({int(s) for s in severities} - set(SEVERITIES))
    if bad:
        raise ValueError(f"severities {bad} are outside {list(SEVERITIES)}.")
    rows = [
        {
            "protocol": protocol,
            "base_split": BASE_SPLIT,
            "set_name": set_name(name, severity),
            "modality": modality,
            "perturbation": name,
            "severity": int(severity),
            "seed": derive_seed(seed, name, int(severity)),
        }
        for protocol in protocols
        for modality, names in (("image", image_perturbations), ("text", text_perturbations))
        for name in names
        for severity in sorted({int(s) for s in severities})
    ]
    columns = ["protocol", "base_split", "set_name", "modality", "perturbation", "severity", "seed"]
    return conform_manifest(pd.DataFrame(rows, columns=columns), "perturbation_sets")
