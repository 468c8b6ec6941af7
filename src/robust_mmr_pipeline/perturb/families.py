"""Which perturbation families a backbone trained on, and which an evaluation may test: disjoint.

A robustness gain measured on a corruption the pre-training degraded views already applied is
partly a copy of the test. Every evaluation family must therefore come from outside the
backbone's training families: ``"all"`` means every registered family the backbone did NOT
train on, and an explicit list that names a training family is refused before the run
(:func:`check_disjoint`, called by ``EvaluationParams.validate_with``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MODALITIES: tuple[str, ...] = ("image", "text")


def training_families(model_config: Any) -> dict[str, list[str]]:
    """``{"image": [...], "text": [...]}``: the families a model's degraded views draw from
    (empty lists when its preset builds no degraded view, or gives a modality probability 0)."""
    if not model_config.needs_perturbed_views:
        return {modality: [] for modality in MODALITIES}
    robust = model_config.robust
    image_p, text_p, both_p = robust.view_probs
    return {
        "image": list(robust.image_perturbations) if image_p + both_p > 0 else [],
        "text": list(robust.text_perturbations) if text_p + both_p > 0 else [],
    }


def evaluation_families(
    chosen: Sequence[str] | str, modality: str, training: Mapping[str, Sequence[str]]
) -> list[str]:
    """The families an evaluation tests for ``chosen`` (a list, or ``"all"``: every registered
    family of ``modality`` outside ``training``)."""
    if chosen != "all":
        return list(chosen)
    from robust_mmr_pipeline.perturb.registry import list_perturbations

    trained = set(training.get(modality, ()))
    return [name for name in list_perturbations(modality) if name not in trained]


def shared_families(
    training: Mapping[str, Sequence[str]], evaluated: Mapping[str, Sequence[str]]
) -> dict[str, list[str]]:
    """Per modality, the families in both (empty lists: no leak)."""
    return {
        modality: sorted(set(training.get(modality, ())) & set(evaluated.get(modality, ())))
        for modality in MODALITIES
    }


def check_disjoint(
    training: Mapping[str, Sequence[str]], evaluated: Mapping[str, Sequence[str]], where: str
) -> None:
    """Raise ValueError naming the families both sets hold, where they came from and the fix."""
    shared = shared_families(training, evaluated)
    leaks = [f"{modality}: {names}" for modality, names in shared.items() if names]
    if leaks:
        raise ValueError(
            f"{where} tests perturbation families the pre-training degraded views train on "
            f"({'; '.join(leaks)}): a robustness gain there is a copy of the test. Fix: drop "
            "them from evaluation.image_perturbations / text_perturbations (and "
            "domain_split.*_perturbations), or from pretrain.model.robust.image_perturbations / "
            "text_perturbations; `all` already leaves the training families out."
        )
