"""Perturbed test set manifests: corruption x severity, deterministic seeds, name checks."""

from __future__ import annotations

import pytest

from robust_mmr_pipeline.splits import (
    UnknownPerturbationError,
    derive_seed,
    perturbation_sets,
    record_seed,
    resolve_perturbations,
)
from robust_mmr_pipeline.splits.manifests import MANIFESTS

IMAGE_REGISTRY = ["gaussian_noise", "motion_blur", "jpeg"]
TEXT_REGISTRY = ["word_dropout", "abbreviation"]


def test_manifest_enumerates_every_corruption_and_severity() -> None:
    sets = perturbation_sets(
        ["in_domain", "cross_domain"], IMAGE_REGISTRY, TEXT_REGISTRY, [1, 2, 3, 4, 5], seed=3
    )
    assert list(sets.columns) == MANIFESTS["perturbation_sets"].names
    assert len(sets) == 2 * (3 + 2) * 5
    assert set(sets["base_split"]) == {"test"}
    per_protocol = sets[sets["protocol"] == "in_domain"]
    expected = {f"{n}@{s}" for n in IMAGE_REGISTRY + TEXT_REGISTRY for s in range(1, 6)}
    assert set(per_protocol["set_name"]) == expected
    image_rows = per_protocol[per_protocol["modality"] == "image"]
    assert set(image_rows["perturbation"]) == set(IMAGE_REGISTRY)
    row = per_protocol.set_index("set_name").loc["gaussian_noise@3"]
    assert row["modality"] == "image" and row["severity"] == 3
    assert row["seed"] == derive_seed(3, "gaussian_noise", 3)
    # Same set, same seed in every protocol; seeds differ across sets.
    assert sets.groupby("set_name")["seed"].nunique().eq(1).all()
    assert per_protocol["seed"].nunique() == len(per_protocol)
    assert str(sets["severity"].dtype) == "int32" and str(sets["seed"].dtype) == "int64"


def test_seeds_are_deterministic_and_independent_of_other_sets() -> None:
    full = perturbation_sets(["p"], IMAGE_REGISTRY, TEXT_REGISTRY, [1, 3, 5], seed=0)
    again = perturbation_sets(["p"], IMAGE_REGISTRY, TEXT_REGISTRY, [1, 3, 5], seed=0)
    assert full.equals(again)
    subset = perturbation_sets(["p"], ["jpeg"], [], [3], seed=0)
    assert subset["seed"].iloc[0] == full.set_index("set_name").loc["jpeg@3", "seed"]
    other_seed = perturbation_sets(["p"], ["jpeg"], [], [3], seed=1)
    assert other_seed["seed"].iloc[0] != subset["seed"].iloc[0]
    assert record_seed(5, "q1") == record_seed(5, "q1") != record_seed(5, "q2")


def test_resolve_all_and_explicit_names() -> None:
    assert resolve_perturbations("all", IMAGE_REGISTRY, "image") == sorted(IMAGE_REGISTRY)
    assert resolve_perturbations(["jpeg", "gaussian_noise", "jpeg"], IMAGE_REGISTRY, "image") == [
        "gaussian_noise",
        "jpeg",
    ]
    assert resolve_perturbations([], TEXT_REGISTRY, "text") == []


def test_unknown_names_are_rejected_clearly() -> None:
    with pytest.raises(UnknownPerturbationError) as error:
        resolve_perturbations(["gausian_noise", "jpeg"], IMAGE_REGISTRY, "image")
    message = str(error.value)
    assert "gausian_noise" in message and "image_perturbations" in message
    assert "gaussian_noise" in message  # the registered names are listed
    with pytest.raises(UnknownPerturbationError, match='"all"'):
        resolve_perturbations("everything", TEXT_REGISTRY, "text")


def test_name_in_both_modalities_and_bad_severity_are_refused() -> None:
    with pytest.raises(UnknownPerturbationError, match="both image and text"):
        perturbation_sets(["p"], ["jpeg"], ["jpeg"], [1], seed=0)
    with pytest.raises(ValueError, match="outside"):
        perturbation_sets(["p"], ["jpeg"], [], [0, 6], seed=0)


def test_real_registry_names_resolve() -> None:
    from robust_mmr_pipeline.splits.perturbation_sets import registry_names

    image_names, text_names = registry_names()
    assert image_names and text_names
    assert resolve_perturbations("all", image_names, "image") == sorted(image_names)
    sets = perturbation_sets(["in_domain"], sorted(image_names), sorted(text_names), [1, 5], 0)
    assert len(sets) == 2 * (len(image_names) + len(text_names))
