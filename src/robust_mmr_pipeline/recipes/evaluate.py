"""Evaluation recipe: the fine-tuned model beside its references, on the same test sets.

Scorers of a task (column ``model`` of the results):

* ``ours``: the task fine-tuned from the pre-trained backbone (the finetune manifest's
  ``tasks``);
* ``from_scratch``: the same architecture and recipe without pre-training (the manifest's
  ``references``), when the finetune pipeline trained it;
* ``frozen_backbone``: the pre-trained backbone itself, not fine-tuned: a linear probe
  (logistic regression on its fused feature, ``C`` on the val rows) for VQA / classification,
  its own contrastive + ITM ranking (zero-shot) for retrieval; it measures what pre-training
  learnt before fine-tuning can wash differences out;
* the trivial baselines of :mod:`robust_mmr_pipeline.baselines`, fitted on the same train rows
  (hyper-parameters on the same val rows).

Every scorer sees exactly the same evaluation inputs: the clean in-domain and cross-domain test
splits and every selected perturbation x severity of the in-domain test split (images and
texts perturbed once per set, :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs`). Every
number carries a percentile-bootstrap 95 % interval; drops (clean - perturbed, per scorer) and
the comparisons ``ours - reference`` on the main metric (``diff_<metric>_vs_<reference>``)
are paired bootstraps over the same items.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.recipes.finetune import MAIN_METRIC, TASK_NAMES, _dataset, task_rows
from robust_mmr_pipeline.reporting.robustness import OURS, RESULT_COLUMNS

logger = logging.getLogger(__name__)

FROM_SCRATCH = "from_scratch"
FROZEN = "frozen_backbone"


def perturbation_pair(perturbation: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """``(image_perturbation, text_perturbation)`` from ``{modality, perturbation, severity,
    seed}`` (None: clean)."""
    from robust_mmr_pipeline.tasks import ImagePerturbation, TextPerturbation

    if not perturbation:
        return None, None
    modality = str(perturbation["modality"])
    name, severity = str(perturbation["perturbation"]), int(perturbation["severity"])
    seed = int(perturbation.get("seed", 0))
    if modality == "image":
        return ImagePerturbation(name, severity, seed), None
    if modality == "text":
        return None, TextPerturbation(name, severity, seed)
    raise ValueError(f"perturbation modality must be 'image' or 'text', got {modality!r}")


@dataclass
class EvaluationItems:
    """Per-item outcomes of one evaluation (for paired bootstraps between conditions / scorers).

    ``correct`` float ``[n]`` (vqa / classification), ``domains`` ``[n]``, ``closed`` bool
    ``[n]`` (vqa); ``i2t_ranks`` / ``t2i_ranks`` (retrieval, 1-based).
    """

    correct: np.ndarray | None = None
    domains: np.ndarray | None = None
    closed: np.ndarray | None = None
    i2t_ranks: np.ndarray | None = None
    t2i_ranks: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def main_outcome(self) -> np.ndarray:
        """Per-item value whose mean is the task's main metric (correct, or t2i R@1 hits)."""
        if self.correct is not None:
            return self.correct
        if self.t2i_ranks is not None:
            return (self.t2i_ranks <= 1).astype(np.float64)
        raise ValueError("no per-item outcome recorded")


def score_predictions(
    task: str,
    predictions: np.ndarray,
    labels: np.ndarray,
    rows: pd.DataFrame,
    *,
    answer_types: np.ndarray | None = None,
    num_classes: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, float], EvaluationItems]:
    """Metrics with CIs and items from predicted class indices (a model's or a baseline's)."""
    from robust_mmr_pipeline.tasks import classification_metrics, vqa_metrics

    correct = (predictions == labels).astype(np.float64)
    domains = rows["domain"].astype(str).to_numpy() if "domain" in rows else None
    if task == "vqa":
        assert answer_types is not None
        metrics = vqa_metrics(predictions, labels, answer_types, n_boot=n_boot, seed=seed)
        return metrics, EvaluationItems(correct=correct, domains=domains, closed=answer_types == 0)
    metrics = classification_metrics(predictions, labels, num_classes, n_boot=n_boot, seed=seed)
    return metrics, EvaluationItems(correct=correct, domains=domains)


class TaskEvaluator:
    """A fine-tuned checkpoint loaded once, evaluated on any rows / perturbation.

    ``tokenizer`` None: the checkpoint's own tokenizer. Metrics follow
    :mod:`robust_mmr_pipeline.tasks.evaluation` (``<name>``, ``<name>_ci_low``,
    ``<name>_ci_high``; fractions in [0, 1]).
    """

    def __init__(
        self,
        task: str,
        checkpoint_dir: str | Path,
        cache_dir: Any,
        tokenizer: Any = None,
        *,
        batch_size: int = 64,
        n_boot: int = 1000,
        seed: int = 0,
        retrieval_k: int = 16,
        model: Any = None,
    ) -> None:
        from robust_mmr_pipeline.engine import ImageCache, load_model

        if task not in TASK_NAMES:
            raise ValueError(f"task must be one of {TASK_NAMES}, got {task!r}")
        saved_tokenizer = None
        if model is None:
            model, saved_tokenizer, _info = load_model(checkpoint_dir)
        if getattr(model, "task", task) != task:
            raise ValueError(f"{checkpoint_dir} holds a {model.task!r} model, not {task!r}")
        self.task = task
        self.model = model
        self.tokenizer = tokenizer if tokenizer is not None else saved_tokenizer
        if self.tokenizer is None:
            raise ValueError(f"no tokenizer given and none saved in {checkpoint_dir}")
        self.cache = cache_dir if isinstance(cache_dir, ImageCache) else ImageCache(cache_dir)
        self.batch_size, self.n_boot, self.seed = int(batch_size), int(n_boot), int(seed)
        self.retrieval_k = int(retrieval_k)
        self.max_length = int(model.backbone.config.text.max_length)

    def inputs(self, rows: pd.DataFrame, perturbation: Mapping[str, Any] | None = None) -> Any:
        """The rows' :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs` (VQA /
        classification) or :class:`~robust_mmr_pipeline.tasks.RetrievalInputs` (retrieval,
        tokenised for this model), perturbed: what the model and the baselines score."""
        from robust_mmr_pipeline.tasks import RetrievalInputs
        from robust_mmr_pipeline.tasks.inputs import EvalInputs

        if rows.empty:
            raise ValueError(f"no rows to evaluate the {self.task} model on")
        image_p, text_p = perturbation_pair(perturbation)
        if self.task == "retrieval":
            return RetrievalInputs.from_pairs(
                rows,
                self.cache,
                self.tokenizer,
                max_length=self.max_length,
                image_perturbation=image_p,
                text_perturbation=text_p,
            )
        return EvalInputs.from_rows(
            rows,
            self.cache,
            text_column="question" if self.task == "vqa" else "text",
            image_perturbation=image_p,
            text_perturbation=text_p,
        )

    def labels(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Class indices of ``rows`` in the model's vocabulary (-100 outside it) and, for VQA,
        the answer-type ids (0 closed, 1 open)."""
        dataset = _dataset(self.task, rows, self.cache, self.model.label_names)
        labels = np.asarray(dataset.labels, dtype=np.int64)
        if self.task == "vqa":
            return labels, np.asarray(dataset.answer_types, dtype=np.int64)
        return labels, None

    def evaluate(
        self,
        rows: pd.DataFrame,
        perturbation: Mapping[str, Any] | None = None,
        accelerator: Any = None,
    ) -> tuple[dict[str, float], EvaluationItems]:
        """Metrics with CIs and the per-item outcomes of ``rows`` (clean or perturbed).

        Scored in this process by split encoding (each unique image and text encoded once);
        ``accelerator`` is accepted for the trainer's ``eval_fn`` signature: every process of a
        multi-process run computes the same numbers.
        """
        return self.score(rows, self.inputs(rows, perturbation))

    def score(self, rows: pd.DataFrame, inputs: Any) -> tuple[dict[str, float], EvaluationItems]:
        """:meth:`evaluate` on inputs prepared by :meth:`inputs` (shared between scorers)."""
        import torch

        from robust_mmr_pipeline.tasks import evaluate_retrieval
        from robust_mmr_pipeline.tasks.inputs import classifier_logits

        self.model.eval()
        if self.task == "retrieval":
            k = max(1, min(self.retrieval_k, inputs.num_images, inputs.num_texts))
            with torch.no_grad():
                metrics, result = evaluate_retrieval(
                    self.model,
                    inputs,
                    method="two_stage",
                    k=k,
                    batch_size=self.batch_size,
                    n_boot=self.n_boot,
                    seed=self.seed,
                )
            return metrics, _rank_items(result)
        logits = classifier_logits(
            self.model, inputs, self.tokenizer, self.max_length, self.batch_size
        )
        return self.score_classes(rows, logits.argmax(-1).numpy())

    def score_classes(
        self, rows: pd.DataFrame, predictions: np.ndarray
    ) -> tuple[dict[str, float], EvaluationItems]:
        """Score class predictions of any scorer against this task's labels of ``rows``."""
        labels, answer_types = self.labels(rows)
        return score_predictions(
            self.task,
            np.asarray(predictions, dtype=np.int64),
            labels,
            rows,
            answer_types=answer_types,
            num_classes=self.model.num_classes,
            n_boot=self.n_boot,
            seed=self.seed,
        )


def _rank_items(result: Any) -> EvaluationItems:
    """Per-query ranks of a retrieval result, for the paired bootstraps."""
    return EvaluationItems(
        i2t_ranks=result.i2t_ranks.numpy().astype(np.float64),
        t2i_ranks=result.t2i_ranks.numpy().astype(np.float64),
    )


def evaluate_task(
    task: str,
    checkpoint_dir: str,
    rows: pd.DataFrame,
    cache_dir: str,
    tokenizer: Any,
    perturbation: dict[str, Any] | None,
    batch_size: int,
    n_boot: int,
    seed: int,
    *,
    retrieval_k: int = 16,
) -> dict[str, float]:
    """Metrics (with bootstrap 95 % CIs) of a fine-tuned checkpoint on ``rows``.

    ``perturbation``: None (clean) or ``{"modality": "image" | "text", "perturbation": name,
    "severity": 1..5, "seed": int}``, applied on the fly (seeded per image / per text).
    """
    evaluator = TaskEvaluator(
        task,
        checkpoint_dir,
        cache_dir,
        tokenizer,
        batch_size=batch_size,
        n_boot=n_boot,
        seed=seed,
        retrieval_k=retrieval_k,
    )
    metrics, _items = evaluator.evaluate(rows, perturbation)
    return metrics


# --------------------------------------------------------------------------- result rows


def _record(task: str, model: str, condition: str, protocol: str, **fields: Any) -> dict:
    row = {
        "task": task,
        "model": model,
        "condition": condition,
        "protocol": protocol,
        "domain": "",
        "modality": "",
        "perturbation": "",
        "severity": 0,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    row.update(fields)
    return row


def _metric_rows(
    task: str, model: str, condition: str, protocol: str, metrics: Mapping[str, float], **fields
) -> list[dict[str, Any]]:
    """One row per metric that has a CI (plus the item count ``n``)."""
    rows = []
    for name, value in metrics.items():
        if f"{name}_ci_low" in metrics:
            rows.append(
                _record(task, model, condition, protocol, metric=name, value=float(value),
                        ci_low=float(metrics[f"{name}_ci_low"]),
                        ci_high=float(metrics[f"{name}_ci_high"]), **fields)
            )  # fmt: skip
    count = metrics.get("n", metrics.get("t2i_n"))
    if count is not None:
        rows.append(
            _record(task, model, condition, protocol, metric="n", value=float(count), **fields)
        )
    return rows


def _ci(statistic: Callable, *arrays: np.ndarray, n_boot: int, seed: int) -> tuple[float, ...]:
    from robust_mmr_pipeline.tasks import bootstrap_ci

    if n_boot <= 0:
        value = float(np.asarray(statistic(*(a[None] for a in arrays))).reshape(-1)[0])
        return value, math.nan, math.nan
    ci = bootstrap_ci(statistic, *arrays, n_boot=n_boot, seed=seed)
    return ci.estimate, ci.low, ci.high


def _mean_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``[R, n]`` paired resamples -> ``[R]`` ``mean(first) - mean(second)``."""
    return first.mean(axis=1) - second.mean(axis=1)


def _domain_rows(
    task: str, model: str, protocol: str, items: EvaluationItems, metric: str, n_boot: int,
    seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    from robust_mmr_pipeline.tasks.metrics import mean_statistic

    if items.correct is None or items.domains is None:
        return []
    rows = []
    for domain in sorted(set(items.domains.tolist())):
        correct = items.correct[items.domains == domain]
        value, low, high = _ci(mean_statistic, correct, n_boot=n_boot, seed=seed)
        rows.append(
            _record(task, model, "domain", protocol, domain=str(domain), metric=metric,
                    value=value, ci_low=low, ci_high=high)
        )  # fmt: skip
    return rows


def _paired_rows(
    task: str, model: str, clean: EvaluationItems, perturbed: EvaluationItems, metric: str,
    n_boot: int, seed: int, protocol: str, **fields: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """Drop of the main metric (clean - perturbed) and, for retrieval, mean-rank degradation
    (perturbed - clean), each with a paired bootstrap CI over the same items."""
    rows = []
    value, low, high = _ci(
        _mean_difference, clean.main_outcome(), perturbed.main_outcome(), n_boot=n_boot, seed=seed
    )
    rows.append(
        _record(task, model, "perturbed", protocol, metric=f"drop_{metric}", value=value,
                ci_low=low, ci_high=high, **fields)
    )  # fmt: skip
    for direction in ("i2t", "t2i"):
        before = getattr(clean, f"{direction}_ranks")
        after = getattr(perturbed, f"{direction}_ranks")
        if before is None or after is None or not len(before):
            continue
        value, low, high = _ci(_mean_difference, after, before, n_boot=n_boot, seed=seed)
        rows.append(
            _record(task, model, "perturbed", protocol,
                    metric=f"{direction}_mean_rank_degradation", value=value, ci_low=low,
                    ci_high=high, **fields)
        )  # fmt: skip
    return rows


def _comparison_rows(
    task: str, condition: str, protocol: str, outcomes: Mapping[str, EvaluationItems],
    metric: str, n_boot: int, seed: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """``ours - reference`` on the main metric for every other scorer (paired bootstrap)."""
    if OURS not in outcomes:
        return []
    ours = outcomes[OURS].main_outcome()
    rows = []
    for name, items in outcomes.items():
        if name == OURS:
            continue
        value, low, high = _ci(
            _mean_difference, ours, items.main_outcome(), n_boot=n_boot, seed=seed
        )
        rows.append(
            _record(task, OURS, condition, protocol, metric=f"diff_{metric}_vs_{name}",
                    value=value, ci_low=low, ci_high=high)
        )  # fmt: skip
    return rows


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


# --------------------------------------------------------------------------- scorers


class _BaselineScorer:
    """The fitted baselines of a task, scored like a :class:`TaskEvaluator`."""

    def __init__(self, task: str, fitted: Any, reference: TaskEvaluator) -> None:
        self.task, self.fitted, self.reference = task, fitted, reference

    def score(self, rows: pd.DataFrame, inputs: Any) -> dict[str, tuple[dict, EvaluationItems]]:
        from robust_mmr_pipeline.tasks import retrieval_metrics

        ref = self.reference
        out: dict[str, tuple[dict, EvaluationItems]] = {}
        if self.task == "retrieval":
            for name, result in self.fitted.rank(inputs).items():
                metrics = retrieval_metrics(result, n_boot=ref.n_boot, seed=ref.seed)
                out[name] = (metrics, _rank_items(result))
            return out
        for name, predictions in self.fitted.predict(inputs).items():
            out[name] = ref.score_classes(rows, predictions)
        return out


class _LinearProbeScorer:
    """A frozen backbone's fused feature + logistic regression (C chosen on val rows), scored
    under ``name``."""

    PROBE_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)

    def __init__(
        self,
        task: str,
        backbone: Any,
        tokenizer: Any,
        reference: TaskEvaluator,
        train_rows: pd.DataFrame,
        val_rows: pd.DataFrame,
        seed: int,
        name: str = FROZEN,
    ) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.task, self.backbone, self.tokenizer, self.reference = (
            task, backbone, tokenizer, reference,
        )  # fmt: skip
        self.name = name
        self.max_length = int(backbone.config.text.max_length)
        features = self._features(reference.inputs(train_rows))
        labels = reference.labels(train_rows)[0]
        val_features = self._features(reference.inputs(val_rows))
        val_labels = reference.labels(val_rows)[0]
        keep = labels >= 0
        scaler = StandardScaler().fit(features[keep])
        train_x, val_x = scaler.transform(features[keep]), scaler.transform(val_features)
        # One regression walked up the C grid with warm starts (each fit starts from the last
        # solution): 4 cold multinomial fits on ~200 answer classes took 150 s on 2 cores.
        regression = LogisticRegression(max_iter=300, tol=1e-3, warm_start=True, random_state=seed)
        best: tuple[float, Any] | None = None
        for c in self.PROBE_C_GRID:
            regression.set_params(C=c).fit(train_x, labels[keep])
            score = float(np.mean(regression.predict(val_x) == val_labels))
            if best is None or score > best[0]:
                best = (score, make_pipeline(scaler, copy.deepcopy(regression)))
        assert best is not None
        self.probe = best[1]

    def _features(self, inputs: Any) -> np.ndarray:
        from robust_mmr_pipeline.tasks.inputs import fused_features

        fused = fused_features(self.backbone, inputs, self.tokenizer, self.max_length)
        return fused.float().numpy()

    def score(self, rows: pd.DataFrame, inputs: Any) -> dict[str, tuple[dict, EvaluationItems]]:
        predictions = self.probe.predict(self._features(inputs))
        return {self.name: self.reference.score_classes(rows, predictions)}


def frozen_backbone_scorer(
    task: str,
    checkpoint: str,
    reference: TaskEvaluator,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    seed: int,
) -> tuple[TaskEvaluator | None, _LinearProbeScorer | None]:
    """The pre-trained backbone of ``checkpoint`` without fine-tuning: for retrieval a
    :class:`TaskEvaluator` of its own ITM / contrastive ranking, else a linear probe."""
    import torch

    from robust_mmr_pipeline.engine import load_model
    from robust_mmr_pipeline.tasks import TaskModel

    backbone, tokenizer, _info = load_model(checkpoint)
    backbone.eval()
    if task == "retrieval":
        torch.manual_seed(seed)  # a task-owned temperature, when the backbone has none
        model = TaskModel.from_backbone(backbone, "retrieval").eval()
        evaluator = TaskEvaluator(
            task,
            checkpoint,
            reference.cache,
            tokenizer,
            batch_size=reference.batch_size,
            n_boot=reference.n_boot,
            seed=reference.seed,
            retrieval_k=reference.retrieval_k,
            model=model,
        )
        return evaluator, None
    probe = _LinearProbeScorer(task, backbone, tokenizer, reference, train_rows, val_rows, seed)
    return None, probe


def fit_task_baselines(
    task: str, evaluator: TaskEvaluator, train_rows: pd.DataFrame, val_rows: pd.DataFrame,
    names: list[str] | None, seed: int,
) -> _BaselineScorer:  # fmt: skip
    """The task's trivial baselines fitted on the clean train rows (C chosen on val rows)."""
    from robust_mmr_pipeline.baselines import BASELINES
    from robust_mmr_pipeline.baselines.fit import fit_baselines

    if names is not None:
        names = [name for name in names if name in BASELINES[task]]
    train_inputs = evaluator.inputs(train_rows)
    if task == "retrieval":
        fitted = fit_baselines(task, train_inputs, None, None, None, names=names, seed=seed)
    else:
        fitted = fit_baselines(
            task,
            train_inputs,
            evaluator.labels(train_rows)[0],
            evaluator.inputs(val_rows),
            evaluator.labels(val_rows)[0],
            names=names,
            seed=seed,
        )
    return _BaselineScorer(task, fitted, evaluator)


def _score_all(
    task: str,
    evaluators: Mapping[str, TaskEvaluator],
    scorers: list[Any],
    test: pd.DataFrame,
    perturbation: Mapping[str, Any] | None,
) -> dict[str, tuple[dict, EvaluationItems]]:
    """Every scorer on one evaluation set, built (and perturbed) once where scorers share it:
    the model evaluators, then the ``scorers`` (baselines, linear probe) on ours' inputs."""
    outcomes: dict[str, tuple[dict, EvaluationItems]] = {}
    inputs = shared = None
    for name, evaluator in evaluators.items():
        if inputs is None or task == "retrieval":  # retrieval inputs are tokenised per model
            inputs = evaluator.inputs(test, perturbation)
        if name == OURS:
            shared = inputs
        outcomes[name] = evaluator.score(test, inputs)
    for scorer in scorers:
        outcomes.update(scorer.score(test, shared))
    return dict(sorted(outcomes.items(), key=lambda item: item[0] != OURS))


@dataclass
class EvaluationPlan:
    """What :func:`evaluate_all` scores: per task the rows, the checkpoints and the sets."""

    tables: Mapping[str, pd.DataFrame]
    checkpoints: Mapping[str, Mapping[str, str]]  # task -> {scorer: checkpoint}
    train_protocol: str
    retrieval_k: Mapping[str, int] = field(default_factory=dict)
    backbone_checkpoint: str | None = None  # the pre-trained backbone (frozen-backbone rows)


def evaluate_all(
    plan: EvaluationPlan,
    perturbation_sets: pd.DataFrame,
    cache_dir: str,
    params: Any,
) -> pd.DataFrame:
    """Score every scorer of every task on the clean in-domain / cross-domain test splits (also
    per domain) and on every selected perturbed set; :data:`RESULT_COLUMNS` rows.

    ``params``: :class:`~robust_mmr_pipeline.pipelines.evaluation.params.EvaluationParams`.
    """
    from robust_mmr_pipeline.engine import ImageCache

    cache = ImageCache(cache_dir)
    sets = selected_sets(perturbation_sets, params)
    rows: list[dict[str, Any]] = []
    for task, checkpoints in plan.checkpoints.items():
        metric = MAIN_METRIC[task]
        table = plan.tables[task]
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
        ours = evaluators[OURS]
        scorers: list[Any] = []
        train_rows = task_rows(table, plan.train_protocol, "train")
        val_rows = task_rows(table, plan.train_protocol, "val")
        if params.frozen_backbone and plan.backbone_checkpoint:
            frozen, probe = frozen_backbone_scorer(
                task, plan.backbone_checkpoint, ours, train_rows, val_rows, params.seed
            )
            if frozen is not None:
                evaluators[FROZEN] = frozen
            if probe is not None:
                scorers.append(probe)
        if params.baselines:
            names = None if params.baselines == "all" else list(params.baselines)
            scorers.append(fit_task_baselines(task, ours, train_rows, val_rows, names, params.seed))

        protocols = set(table["protocol"].unique())
        clean: dict[str, EvaluationItems] | None = None
        clean_rows = None
        for condition, protocol in (
            ("in_domain", params.in_domain_protocol),
            ("cross_domain", params.cross_domain_protocol),
        ):
            if not protocol:
                continue  # none asked (the as_released branch has no cross-domain test)
            if protocol not in protocols:
                logger.warning("No %s protocol %r in the split manifests.", condition, protocol)
                continue
            test = task_rows(table, protocol, "test")
            if test.empty:
                logger.warning("%s: protocol %r has no test rows.", task, protocol)
                continue
            outcomes = _score_all(task, evaluators, scorers, test, None)
            for name, (metrics, items) in outcomes.items():
                rows += _metric_rows(task, name, condition, protocol, metrics)
                rows += _domain_rows(task, name, protocol, items, metric, params.n_boot,
                                     params.seed)  # fmt: skip
            items_by_name = {name: items for name, (_m, items) in outcomes.items()}
            rows += _comparison_rows(
                task, condition, protocol, items_by_name, metric, params.n_boot, params.seed
            )
            if condition == "in_domain":
                clean, clean_rows = items_by_name, test
        if clean is None or clean_rows is None:
            raise ValueError(f"{task}: no in-domain test rows to evaluate")
        # The frozen backbone is a diagnostic of pre-training, scored on the clean sets only:
        # on every perturbed set its zero-shot retrieval re-ranking alone cost minutes.
        perturbed_evaluators = {k: v for k, v in evaluators.items() if k != FROZEN}
        perturbed_scorers = [s for s in scorers if not isinstance(s, _LinearProbeScorer)]
        for _, spec in sets.iterrows():
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
            protocol = params.in_domain_protocol
            for name, (metrics, items) in _score_all(
                task, perturbed_evaluators, perturbed_scorers, clean_rows, perturbation
            ).items():
                rows += _metric_rows(task, name, "perturbed", protocol, metrics, **fields)
                rows += _paired_rows(task, name, clean[name], items, metric, params.n_boot,
                                     params.seed, protocol, **fields)  # fmt: skip
        logger.info("Evaluated %s (%s) on %d perturbed sets.", task, list(clean), len(sets))
    frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    frame["severity"] = frame["severity"].astype(int)
    return frame
