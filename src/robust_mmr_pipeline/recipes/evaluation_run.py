"""Evaluation of every scorer of every task on the clean and perturbed test sets, timed.

:func:`evaluate_all` scores (:mod:`robust_mmr_pipeline.recipes.evaluate` for the scorers) in
two passes: predictions on every set first, then the bootstrap CIs of all of them. A perturbed
set costs only what its perturbation changes: the clean in-domain set's inputs, encodings (each
unique image and distinct text, per model) and baseline features are kept, and a set perturbing
one modality re-encodes that modality alone; the fusion layers and heads run per row. The
frozen backbone is scored on the clean sets only, and a baseline only on the sets perturbing a
modality it reads. :class:`~robust_mmr_pipeline.recipes.evaluation_clock.StageClock` records
where the time goes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from robust_mmr_pipeline.recipes.evaluate import (
    FROM_SCRATCH,
    FROZEN,
    EvaluationItems,
    TaskEvaluator,
    _LinearProbeScorer,
    fit_task_baselines,
    frozen_backbone_scorer,
    perturbation_pair,
)
from robust_mmr_pipeline.recipes.evaluation_clock import StageClock
from robust_mmr_pipeline.recipes.evaluation_rows import (
    _comparison_rows,
    _domain_rows,
    _metric_rows,
    _paired_rows,
)
from robust_mmr_pipeline.recipes.finetune import task_rows
from robust_mmr_pipeline.reporting.robustness import OURS, RESULT_COLUMNS
from robust_mmr_pipeline.tasks.registry import MAIN_METRIC, task_spec

logger = logging.getLogger(__name__)

__all__ = ["FROM_SCRATCH", "OURS", "EvaluationPlan", "evaluate_all", "score_set"]


def selected_sets(perturbation_sets: pd.DataFrame, params: Any) -> pd.DataFrame:
    """The perturbed sets of the in-domain test split the evaluation params ask for."""
    sets = perturbation_sets[
        (perturbation_sets["protocol"] == params.in_domain_protocol)
        & (perturbation_sets["base_split"] == "test")
        & perturbation_sets["severity"].isin([int(s) for s in params.severities])
    ]
    keep = [params.wants(m, p) for m, p in zip(sets["modality"], sets["perturbation"], strict=True)]
    sets = sets[keep].sort_values(["modality", "perturbation", "severity"])
    for modality in ("image", "text"):
        chosen = getattr(params, f"{modality}_perturbations")
        if chosen != "all":
            missing = sorted(set(chosen) - set(sets[sets["modality"] == modality]["perturbation"]))
            if missing:
                raise ValueError(
                    f"evaluation.{modality}_perturbations names {missing}, which the "
                    "perturbation_sets manifest lacks for the in-domain test split (see "
                    "domain_split.image_perturbations / text_perturbations / severities)."
                )
    return sets.reset_index(drop=True)


@dataclass
class SetCache:
    """What the clean set's scoring computed once, reused by each of its perturbed sets: the
    inputs and the encodings per model (by scorer name) and the baseline features."""

    inputs: dict[str, Any] = field(default_factory=dict)
    encoded: dict[str, Any] = field(default_factory=dict)
    features: dict[int, Any] = field(default_factory=dict)  # scorer position -> features


Predicted = dict[str, tuple[Any, Any]]  # scorer name -> (owner with .metrics, predictions)


def score_set(
    task: str,
    evaluators: Mapping[str, TaskEvaluator],
    scorers: list[Any],
    test: pd.DataFrame,
    perturbation: Mapping[str, Any] | None,
    clean: SetCache | None = None,
) -> tuple[Predicted, SetCache]:
    """Every scorer's predictions on one set (no bootstrap yet), ours first. ``clean``: the
    clean set's :class:`SetCache` (same rows); then only the perturbed modality is encoded."""
    perturbed = str(perturbation["modality"]) if perturbation else None
    reuse = clean is not None and perturbed is not None
    cache = SetCache()
    predicted: Predicted = {}
    shared = None
    per_model = task_spec(task).ranks  # ranking inputs are tokenised per model
    for name, evaluator in evaluators.items():
        if per_model:
            inputs = evaluator.inputs(test, perturbation)
        elif shared is not None:
            inputs = shared
        elif reuse:
            assert clean is not None
            inputs = next(iter(clean.inputs.values())).perturbed(*perturbation_pair(perturbation))
        else:
            inputs = evaluator.inputs(test, perturbation)
        shared = shared if shared is not None and not per_model else inputs
        like = clean.encoded.get(name) if reuse and clean is not None else None
        encoded = evaluator.encode(inputs, like, perturbed if like is not None else None)
        cache.inputs[name], cache.encoded[name] = inputs, encoded
        predicted[name] = (evaluator, evaluator.predict(inputs, encoded))
    ours_inputs = cache.inputs.get(OURS, shared)
    for position, scorer in enumerate(scorers):
        like = clean.features.get(position) if reuse and clean is not None else None
        values, features = scorer.predict(
            ours_inputs, like, perturbed if like is not None else None
        )
        cache.features[position] = features
        predicted.update({name: (scorer, value) for name, value in values.items()})
    ordered = dict(sorted(predicted.items(), key=lambda item: item[0] != OURS))
    return ordered, cache


def outcomes_of(
    predicted: Predicted, test: pd.DataFrame
) -> dict[str, tuple[dict, EvaluationItems]]:
    """Metrics with bootstrap CIs and items of every scorer's predictions."""
    return {name: owner.metrics(test, value) for name, (owner, value) in predicted.items()}


def _score_all(
    task: str,
    evaluators: Mapping[str, TaskEvaluator],
    scorers: list[Any],
    test: pd.DataFrame,
    perturbation: Mapping[str, Any] | None,
) -> dict[str, tuple[dict, EvaluationItems]]:
    """Every scorer on one evaluation set, built (and perturbed) once where scorers share it:
    the model evaluators, then the ``scorers`` (baselines, linear probe) on ours' inputs."""
    predicted, _cache = score_set(task, evaluators, scorers, test, perturbation)
    return outcomes_of(predicted, test)


@dataclass
class EvaluationPlan:
    """What :func:`evaluate_all` scores: per task the rows, the checkpoints and the sets."""

    tables: Mapping[str, pd.DataFrame]
    checkpoints: Mapping[str, Mapping[str, str]]  # task -> {scorer: checkpoint}
    train_protocol: str
    retrieval_k: Mapping[str, int] = field(default_factory=dict)
    backbone_checkpoint: str | None = None  # the pre-trained backbone (frozen-backbone rows)


@dataclass
class _Scored:
    """One scored set awaiting its bootstrap."""

    condition: str
    protocol: str
    test: pd.DataFrame
    predicted: Predicted
    fields: dict[str, Any] = field(default_factory=dict)


def _perturbation(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    perturbation = {
        "modality": spec["modality"],
        "perturbation": spec["perturbation"],
        "severity": int(spec["severity"]),
        "seed": int(spec["seed"]),
    }
    fields = {
        "modality": str(spec["modality"]),
        "perturbation": str(spec["perturbation"]),
        "severity": int(spec["severity"]),
    }
    return perturbation, fields


def _scorers(
    task: str, plan: EvaluationPlan, params: Any, evaluators: dict[str, TaskEvaluator],
    clock: StageClock,
) -> list[Any]:  # fmt: skip
    """The frozen backbone (added to ``evaluators`` for retrieval) and the fitted baselines."""
    ours, scorers = evaluators[OURS], []
    train_rows = task_rows(plan.tables[task], plan.train_protocol, "train")
    val_rows = task_rows(plan.tables[task], plan.train_protocol, "val")
    if params.frozen_backbone and plan.backbone_checkpoint:
        with clock.stage(task, "frozen_probe_fit"):
            frozen, probe = frozen_backbone_scorer(
                task, plan.backbone_checkpoint, ours, train_rows, val_rows, params.seed,
                features_from=plan.checkpoints[task].get(OURS),
            )  # fmt: skip
        if frozen is not None:
            evaluators[FROZEN] = frozen
        if probe is not None:
            scorers.append(probe)
    if params.baselines:
        names = None if params.baselines == "all" else list(params.baselines)
        with clock.stage(task, "baselines_fit"):
            scorers.append(fit_task_baselines(task, ours, train_rows, val_rows, names, params.seed))
    return scorers


def evaluate_all(
    plan: EvaluationPlan,
    perturbation_sets: pd.DataFrame,
    cache_dir: str,
    params: Any,
    clock: StageClock | None = None,
) -> pd.DataFrame:
    """Score every scorer of every task on the clean in-domain / cross-domain test splits (also
    per domain) and on every selected perturbed set; :data:`RESULT_COLUMNS` rows.

    ``params``: :class:`~robust_mmr_pipeline.pipelines.evaluation.params.EvaluationParams`;
    ``clock``: records the seconds of every stage (a fresh one when None).
    """
    from robust_mmr_pipeline.engine import ImageCache

    clock = clock if clock is not None else StageClock()
    cache = ImageCache(cache_dir)
    sets = selected_sets(perturbation_sets, params)
    rows: list[dict[str, Any]] = []
    for task, checkpoints in plan.checkpoints.items():
        with clock.stage(task, "load_models"):
            evaluators = {
                name: TaskEvaluator(
                    task,
                    checkpoint,
                    cache,
                    batch_size=params.batch_size,
                    n_boot=params.n_boot,
                    seed=params.seed,
                    retrieval_k=params.retrieval_k or int(plan.retrieval_k.get(task, 16)),
                )
                for name, checkpoint in checkpoints.items()
            }
        scorers = _scorers(task, plan, params, evaluators, clock)
        table = plan.tables[task]
        protocols = set(table["protocol"].unique())
        scored: list[_Scored] = []
        clean: SetCache | None = None
        clean_rows = None
        conditions = [
            (condition, protocol)
            for condition, protocol in (
                ("in_domain", params.in_domain_protocol),
                ("cross_domain", params.cross_domain_protocol),
            )
            if protocol  # none asked: the as_released branch has no cross-domain test
        ]
        for condition, protocol in clock.bar(conditions, f"{task}: clean test sets"):
            if protocol not in protocols:
                logger.warning("No %s protocol %r in the split manifests.", condition, protocol)
                continue
            test = task_rows(table, protocol, "test")
            if test.empty:
                logger.warning("%s: protocol %r has no test rows.", task, protocol)
                continue
            with clock.stage(task, f"score_{condition}"):
                predicted, set_cache = score_set(task, evaluators, scorers, test, None)
            scored.append(_Scored(condition, protocol, test, predicted))
            if condition == "in_domain":
                clean, clean_rows = set_cache, test
        if clean is None or clean_rows is None:
            raise ValueError(f"{task}: no in-domain test rows to evaluate")
        # The frozen backbone is a diagnostic of pre-training, scored on the clean sets only:
        # on every perturbed set its zero-shot retrieval re-ranking alone cost minutes.
        perturbed_evaluators = {k: v for k, v in evaluators.items() if k != FROZEN}
        perturbed_scorers = [s for s in scorers if not isinstance(s, _LinearProbeScorer)]
        if len(perturbed_scorers) < len(scorers):  # keep each scorer's cached features
            position = {id(s): i for i, s in enumerate(scorers)}
            clean.features = {
                j: clean.features.get(position[id(s)]) for j, s in enumerate(perturbed_scorers)
            }
        specs = [row for _, row in sets.iterrows()]
        bar = clock.bar(specs, f"{task}: perturbed sets")
        for spec in bar:
            perturbation, fields = _perturbation(spec)
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{fields['perturbation']} s{fields['severity']}")
            with clock.stage(task, "score_perturbed_sets"):
                predicted, _ = score_set(
                    task, perturbed_evaluators, perturbed_scorers, clean_rows, perturbation, clean
                )
            scored.append(
                _Scored("perturbed", params.in_domain_protocol, clean_rows, predicted, fields)
            )
        with clock.stage(task, "bootstrap"):
            rows += _bootstrap_rows(task, scored, params, clock)
        logger.info("Evaluated %s (%s) on %d perturbed sets.", task, list(evaluators), len(sets))
    clock.log()
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    frame["severity"] = frame["severity"].astype(int)
    return frame


def _bootstrap_rows(
    task: str, scored: list[_Scored], params: Any, clock: StageClock
) -> list[dict[str, Any]]:
    """The result rows of every scored set (metrics, domains, comparisons, paired drops)."""
    metric = MAIN_METRIC[task]
    rows: list[dict[str, Any]] = []
    clean: dict[str, EvaluationItems] = {}
    for entry in clock.bar(scored, f"{task}: bootstrap"):
        outcomes = outcomes_of(entry.predicted, entry.test)
        condition, protocol = entry.condition, entry.protocol
        if condition == "perturbed":
            for name, (metrics, items) in outcomes.items():
                rows += _metric_rows(task, name, condition, protocol, metrics, **entry.fields)
                rows += _paired_rows(task, name, clean[name], items, metric, params.n_boot,
                                     params.seed, protocol, **entry.fields)  # fmt: skip
            continue
        for name, (metrics, items) in outcomes.items():
            rows += _metric_rows(task, name, condition, protocol, metrics)
            rows += _domain_rows(task, name, protocol, items, metric, params.n_boot, params.seed)
        items_by_name = {name: items for name, (_m, items) in outcomes.items()}
        rows += _comparison_rows(
            task, condition, protocol, items_by_name, metric, params.n_boot, params.seed
        )
        if condition == "in_domain":
            clean = items_by_name
    return rows
