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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.tasks.registry import TASK_SPECS, task_spec

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
    if TASK_SPECS[task].answers:
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

        spec = task_spec(task)
        saved_tokenizer = None
        if model is None:
            model, saved_tokenizer, _info = load_model(checkpoint_dir)
        if getattr(model, "task", task) != task:
            raise ValueError(f"{checkpoint_dir} holds a {model.task!r} model, not {task!r}")
        self.task, self.spec = task, spec
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
        if self.spec.ranks:
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
            text_column=self.spec.text_column,
            image_perturbation=image_p,
            text_perturbation=text_p,
        )

    def labels(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Class indices of ``rows`` in the model's vocabulary (-100 outside it) and, for VQA,
        the answer-type ids (0 closed, 1 open)."""
        dataset = self.spec.make_dataset(rows, self.cache, self.model.label_names)
        labels = np.asarray(dataset.labels, dtype=np.int64)
        if self.spec.answers:
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
        return self.metrics(rows, self.predict(inputs, self.encode(inputs)))

    def encode(self, inputs: Any, like: Any = None, perturbed: str | None = None) -> Any:
        """What the model computes once per item of ``inputs`` (the fusion inputs of every
        unique image and distinct text; retrieval: its ``RetrievalEncoding``). ``like``: the
        clean set's encoding of the same rows, whose unperturbed modality is reused (only the
        ``perturbed`` one, ``"image"`` / ``"text"``, is encoded)."""
        from robust_mmr_pipeline.tasks.inputs import encode_streams
        from robust_mmr_pipeline.tasks.retrieval import encode_inputs

        self.model.eval()
        if self.spec.ranks:
            return encode_inputs(
                self.model, inputs, batch_size=self.batch_size, like=like, perturbed=perturbed
            )
        return encode_streams(
            self.model.backbone, inputs, self.tokenizer, self.max_length, self.batch_size,
            like=like, perturbed=perturbed,
        )  # fmt: skip

    def predict(self, inputs: Any, encoded: Any) -> Any:
        """Predicted class indices ``[n]`` (retrieval: a ``RetrievalResult``) from
        :meth:`encode`'s output: the fusion layers per row (per pair) and the head."""
        import torch

        from robust_mmr_pipeline.tasks.inputs import fuse_streams, head_logits
        from robust_mmr_pipeline.tasks.retrieval import two_stage_search

        self.model.eval()
        if self.spec.ranks:
            k = max(1, min(self.retrieval_k, inputs.num_images, inputs.num_texts))
            with torch.no_grad():
                return two_stage_search(
                    self.model, inputs, k=k, batch_size=self.batch_size, encoding=encoded
                )
        fused = fuse_streams(self.model.backbone, encoded, inputs.row_image, self.batch_size)
        return head_logits(self.model, fused, self.batch_size).argmax(-1).numpy()

    def metrics(
        self, rows: pd.DataFrame, predicted: Any
    ) -> tuple[dict[str, float], EvaluationItems]:
        """Metrics with bootstrap CIs and items of :meth:`predict`'s output on ``rows``."""
        from robust_mmr_pipeline.tasks import retrieval_metrics

        if self.spec.ranks:
            metrics = retrieval_metrics(predicted, n_boot=self.n_boot, seed=self.seed)
            return metrics, _rank_items(predicted)
        return self.score_classes(rows, predicted)

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


# --------------------------------------------------------------------------- scorers


class _BaselineScorer:
    """The fitted baselines of a task, scored like a :class:`TaskEvaluator`."""

    def __init__(self, task: str, fitted: Any, reference: TaskEvaluator) -> None:
        self.task, self.fitted, self.reference = task, fitted, reference
        self.spec = task_spec(task)

    def names_for(self, perturbed: str | None) -> list[str]:
        """The baselines a set perturbing ``perturbed`` (None: clean) tells anything about:
        one that does not read that modality scores exactly as on the clean set."""
        if perturbed is None:
            return list(self.fitted.names)
        return [name for name in self.fitted.names if perturbed in self.fitted.reads(name)]

    def predict(
        self, inputs: Any, like: Any = None, perturbed: str | None = None
    ) -> tuple[dict[str, Any], Any]:
        """``({name: predictions or RetrievalResult}, features)`` on ``inputs``; ``like``: the
        clean set's features (only the ``perturbed`` modality's part is recomputed)."""
        from robust_mmr_pipeline.baselines.fit import one_blas_thread

        names = self.names_for(perturbed)
        with one_blas_thread():  # as they were fitted
            if self.spec.ranks:
                return {k: v for k, v in self.fitted.rank(inputs).items() if k in names}, None
            features = self.fitted.features(inputs, like, perturbed)
            return self.fitted.predict(inputs, features, names), features

    def metrics(self, rows: pd.DataFrame, predicted: Any) -> tuple[dict, EvaluationItems]:
        """One baseline's metrics and items (its predictions on ``rows``)."""
        from robust_mmr_pipeline.tasks import retrieval_metrics

        ref = self.reference
        if self.spec.ranks:
            metrics = retrieval_metrics(predicted, n_boot=ref.n_boot, seed=ref.seed)
            return metrics, _rank_items(predicted)
        return ref.score_classes(rows, predicted)

    def score(self, rows: pd.DataFrame, inputs: Any) -> dict[str, tuple[dict, EvaluationItems]]:
        predicted, _features = self.predict(inputs)
        return {name: self.metrics(rows, value) for name, value in predicted.items()}


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
        features_from: str | Path | None = None,
    ) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.task, self.backbone, self.tokenizer, self.reference = (
            task, backbone, tokenizer, reference,
        )  # fmt: skip
        self.name = name
        self.max_length = int(backbone.config.text.max_length)
        features = self._train_features(train_rows, features_from)
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

    def _train_features(self, rows: pd.DataFrame, folder: str | Path | None) -> np.ndarray:
        """The train rows' features: those LP-FT saved in ``folder`` when computed from the
        same backbone, tokenizer, images and rows (the key says so), else encoded here."""
        from robust_mmr_pipeline.tasks.frozen_features import feature_key, load_features

        ref = self.reference
        key = feature_key(self.backbone, self.tokenizer, rows, ref.cache,
                          text_column=ref.spec.text_column, max_length=self.max_length)  # fmt: skip
        saved = load_features(folder, key)
        self.reused_train_features = saved is not None
        if saved is None:
            return self._features(ref.inputs(rows))
        logger.info("Frozen probe: the train features LP-FT saved in %s are reused.", folder)
        return saved.float().numpy()

    def _features(self, inputs: Any) -> np.ndarray:
        from robust_mmr_pipeline.tasks.inputs import fused_features

        fused = fused_features(self.backbone, inputs, self.tokenizer, self.max_length)
        return fused.float().numpy()

    def predict(self, inputs: Any, like: Any = None, perturbed: str | None = None) -> tuple:
        """``({name: predictions}, None)`` on ``inputs`` (the probe reads the fused feature)."""
        return {self.name: self.probe.predict(self._features(inputs))}, None

    def metrics(self, rows: pd.DataFrame, predicted: Any) -> tuple[dict, EvaluationItems]:
        return self.reference.score_classes(rows, predicted)

    def score(self, rows: pd.DataFrame, inputs: Any) -> dict[str, tuple[dict, EvaluationItems]]:
        predicted, _ = self.predict(inputs)
        return {self.name: self.metrics(rows, predicted[self.name])}


def frozen_backbone_scorer(
    task: str,
    checkpoint: str,
    reference: TaskEvaluator,
    train_rows: pd.DataFrame,
    val_rows: pd.DataFrame,
    seed: int,
    features_from: str | Path | None = None,
) -> tuple[TaskEvaluator | None, _LinearProbeScorer | None]:
    """The pre-trained backbone of ``checkpoint`` without fine-tuning: for retrieval a
    :class:`TaskEvaluator` of its own ITM / contrastive ranking, else a linear probe
    (``features_from``: the LP-FT checkpoint whose saved train features it may reuse)."""
    import torch

    from robust_mmr_pipeline.engine import load_model
    from robust_mmr_pipeline.tasks import TaskModel

    backbone, tokenizer, _info = load_model(checkpoint)
    backbone.eval()
    if task_spec(task).ranks:
        torch.manual_seed(seed)  # a task-owned temperature, when the backbone has none
        model = TaskModel.from_backbone(backbone, task).eval()
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
    probe = _LinearProbeScorer(task, backbone, tokenizer, reference, train_rows, val_rows, seed,
                               features_from=features_from)  # fmt: skip
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
    if task_spec(task).ranks:
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
