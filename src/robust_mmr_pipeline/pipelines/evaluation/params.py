"""Typed parameters of the evaluation pipeline (``params:evaluation``)."""

from __future__ import annotations

import difflib
from dataclasses import field
from typing import Any

from robust_mmr_pipeline.tasks.registry import TASKS
from robust_mmr_pipeline.typed_config import config


@config
class EvaluationParams:
    """Which fine-tuned tasks, perturbations and severities are evaluated, and how.

    ``tasks`` None: every task of the finetune manifest. ``image_perturbations`` /
    ``text_perturbations``: registry names (those present in ``perturbation_sets``) or
    ``"all"``; ``severities`` keeps those severities of the perturbed sets. ``n_boot``
    bootstrap resamples for every 95 % CI. ``baseline_metrics``: a baseline run's
    ``evaluation_severity.csv`` (e.g. the MMR preset's); with it the report gives mCE.
    ``retrieval_k`` None: the k the retrieval model was fine-tuned with. ``baselines``: the
    trivial references scored beside the model (``robust_mmr_pipeline.baselines``: ``"all"``,
    a list of names, or ``[]`` for none); the from-scratch reference comes from the finetune
    pipeline (``finetune.reference_from_scratch``). ``frozen_backbone``: also score the
    pre-trained backbone without fine-tuning (linear probe; zero-shot retrieval).
    """

    tasks: list[str] | None = None
    in_domain_protocol: str = "in_domain"
    cross_domain_protocol: str = "cross_domain"
    image_perturbations: list[str] | str = "all"
    text_perturbations: list[str] | str = "all"
    severities: list[int] = field(default_factory=lambda: [1, 3, 5])
    batch_size: int = 64
    n_boot: int = 1000
    seed: int = 0
    retrieval_k: int | None = None
    baseline_metrics: str | None = None
    baselines: list[str] | str = "all"
    frozen_backbone: bool = True
    log_to_mlflow: bool = True

    def __post_init__(self) -> None:
        for name in ("image_perturbations", "text_perturbations"):
            value = getattr(self, name)
            if isinstance(value, str) and value != "all":
                raise ValueError(f"{name} must be a list of names or 'all', got {value!r}")
            if not isinstance(value, str):
                _check_perturbation_names(name, value)
        if not self.severities or any(not 1 <= int(s) <= 5 for s in self.severities):
            raise ValueError(f"severities must be a non-empty list in 1..5, got {self.severities}")
        if self.tasks is not None:
            bad = sorted(set(self.tasks) - set(TASKS))
            if bad:
                raise ValueError(f"unknown task(s) {bad}")
        if self.batch_size < 1 or self.n_boot < 0:
            raise ValueError("batch_size must be >= 1 and n_boot >= 0")
        if isinstance(self.baselines, str) and self.baselines != "all":
            raise ValueError(f"baselines must be a list of names or 'all', got {self.baselines!r}")
        if not isinstance(self.baselines, str):
            from robust_mmr_pipeline.baselines import BASELINES

            known = {name for names in BASELINES.values() for name in names}
            unknown = sorted(set(self.baselines) - known)
            if unknown:
                raise ValueError(f"unknown baseline(s) {unknown}; known: {sorted(known)}")
        if self.retrieval_k is not None and self.retrieval_k < 1:
            raise ValueError("retrieval_k must be >= 1 (or null)")

    def validate_with(self, parameters: Any) -> None:
        """Before the run: no evaluation family is one the configured pre-training trains on
        (perturb/families.py); ``all`` leaves those out by itself."""
        from robust_mmr_pipeline.params import ParameterError, parse
        from robust_mmr_pipeline.perturb.families import (
            check_disjoint,
            evaluation_families,
            training_families,
        )
        from robust_mmr_pipeline.pipelines.pretrain.params import PretrainParams

        pretrain = parameters.get("pretrain") if isinstance(parameters, dict) else None
        if not pretrain:
            return
        training = training_families(parse(PretrainParams, pretrain, "pretrain").model_config())
        evaluated = {
            modality: evaluation_families(
                getattr(self, f"{modality}_perturbations"), modality, training
            )
            for modality in ("image", "text")
        }
        try:
            check_disjoint(training, evaluated, "evaluation")
        except ValueError as exc:
            raise ParameterError(str(exc)) from None

    def wants(self, modality: str, name: str) -> bool:
        chosen = self.image_perturbations if modality == "image" else self.text_perturbations
        return chosen == "all" or name in chosen


def _check_perturbation_names(field_name: str, names: list[str]) -> None:
    """Raise ValueError naming every name of ``field_name`` that is not in the perturbation
    registry of its kind (checked before the run, not when evaluation starts)."""
    # The registry imports the image corruptions (torch); only evaluation runs pay for it.
    from robust_mmr_pipeline.perturb.registry import list_perturbations

    kind = "image" if field_name.startswith("image") else "text"
    other = "text" if kind == "image" else "image"
    known, others = list_perturbations(kind), set(list_perturbations(other))
    problems = []
    for name in names:
        if name in known:
            continue
        if name in others:
            article = "an" if other == "image" else "a"
            problems.append(
                f"{name!r} is {article} {other} perturbation (list it in {other}_perturbations)"
            )
            continue
        close = difflib.get_close_matches(name, known, n=1)
        problems.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if problems:
        raise ValueError(
            f"{field_name}: unknown {kind} perturbation(s): {'; '.join(problems)}. Known {kind} "
            f"perturbations: {', '.join(known)} (or 'all')."
        )
