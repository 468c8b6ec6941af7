"""Fit the trivial baselines of a task on its train rows and score evaluation sets with them.

Predictions are class indices in the MODEL's vocabulary (the train answers / labels, in the
model's order), so a baseline's correctness vector lines up row for row with the model's and
the same metric functions (and bootstrap CIs) apply. Hyper-parameters: the inverse
regularisation ``C`` of each logistic regression is chosen on the validation rows from a
small grid (never on test).
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from robust_mmr_pipeline.baselines.pixels import (
    PIXEL_C_GRID,
    PixelEncoder,
    QuestionPixelModel,
    fit_pixels,
    fit_question_pixels,
    learnable,
    logistic,
    shared_design,
)
from robust_mmr_pipeline.baselines.registry import BASELINES
from robust_mmr_pipeline.sources.answers import normalize_answer
from robust_mmr_pipeline.tasks.registry import task_spec

logger = logging.getLogger(__name__)

# Inverse regularisation grid of the text regression (ascending: warm starts), chosen on val:
# L2-normalised TF-IDF needs weak regularisation. The pixel grids: baselines/pixels.py.
TEXT_C_GRID: tuple[float, ...] = (1.0, 10.0, 100.0)
CCA_COMPONENTS = 16


def normalize_question(text: str) -> str:
    """Lower-case, collapse whitespace, drop trailing punctuation: the prior's lookup key."""
    return re.sub(r"\s+", " ", str(text).strip().lower()).rstrip(" ?.!")


def _vectorizer() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)


@dataclass
class _Prior:
    """Most frequent class per key, ``fallback`` for unseen keys."""

    table: dict[str, int]
    fallback: int

    def predict(self, keys: Sequence[str]) -> np.ndarray:
        return np.array([self.table.get(k, self.fallback) for k in keys], dtype=np.int64)


def _prior(keys: Sequence[str], labels: np.ndarray, fallback: int) -> _Prior:
    counts: dict[str, Counter[int]] = {}
    for key, label in zip(keys, labels.tolist(), strict=True):
        counts.setdefault(key, Counter())[label] += 1
    # ties broken by the smaller class index (the more frequent train answer: see vocabulary)
    table = {k: min(c, key=lambda y: (-c[y], y)) for k, c in counts.items()}
    return _Prior(table, fallback)


def _fit_walk(
    x: Any, labels: np.ndarray, val_x: Any, val_labels: np.ndarray, grid: Sequence[float],
    seed: int,
) -> tuple[Any, float]:  # fmt: skip
    """One logistic regression walked up ``grid`` with warm starts (each fit starts from the
    last solution), the best on val kept; a constant where the labels are not learnable."""
    if not learnable(labels):
        return int(Counter(labels.tolist()).most_common(1)[0][0]), math.nan
    regression = logistic(grid[0], seed, warm_start=True)
    best: tuple[float, Any, float] | None = None
    for c in grid:
        regression.set_params(C=c).fit(x, labels)
        predicted = regression.predict(val_x) if len(val_labels) else np.zeros(0)
        score = float(np.mean(predicted == val_labels)) if len(val_labels) else 0.0
        if best is None or score > best[0]:
            best = (score, copy.deepcopy(regression), c)
    assert best is not None
    return best[1], best[2]


def _predict(model: Any, x: Any, n: int) -> np.ndarray:
    if isinstance(model, int):
        return np.full(n, model, dtype=np.int64)
    return model.predict(x).astype(np.int64)


@dataclass
class BaselineFeatures:
    """What the baselines read from one evaluation set, computed once: the question keys, the
    TF-IDF of the texts and the pixel components of each row's image. A perturbed set recomputes
    only its perturbed modality's part (:meth:`FittedBaselines.features` with ``like``)."""

    keys: list[str]
    texts: list[str]
    tfidf: Any = None
    pixels: np.ndarray | None = None


@dataclass
class FittedBaselines:
    """The fitted baselines of one task; :meth:`predict` / :meth:`rank` score an input set.

    ``chosen`` records the hyper-parameters selected on validation (for the report).
    """

    task: str
    names: tuple[str, ...]
    models: dict[str, Any] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def reads(self, name: str) -> set[str]:
        """The modalities baseline ``name`` reads: on a set perturbing neither it scores exactly
        as on the clean set, so the evaluation skips it there."""
        if name in ("majority", "chance"):
            return set()
        if name in ("question_prior", "text_tfidf"):
            return {"text"}
        if name == "image_pixels" and not task_spec(self.task).answers:
            return {"image"}
        return {"image", "text"}  # VQA pixels (per question), retrieval CCA

    def features(
        self, inputs: Any, like: BaselineFeatures | None = None, perturbed: str | None = None
    ) -> BaselineFeatures:
        """The features of an :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs`; with
        ``like`` (the clean set's features, same rows) only the ``perturbed`` modality's part
        is recomputed."""
        if like is not None and perturbed == "image":
            text_side = like
        else:
            keys = [normalize_question(t) for t in inputs.texts]
            tfidf = None
            if "vectorizer" in self.models:
                tfidf = self.models["vectorizer"].transform(list(inputs.texts))
            text_side = BaselineFeatures(keys, list(inputs.texts), tfidf)
        pixels = like.pixels if like is not None and perturbed == "text" else None
        if pixels is None and "pixels" in self.models:
            pixels = self.models["pixels"].transform(inputs.images)[inputs.row_image.numpy()]
        return BaselineFeatures(text_side.keys, text_side.texts, text_side.tfidf, pixels)

    def predict(
        self, inputs: Any, features: BaselineFeatures | None = None,
        names: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Class index per row of an :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs`
        (``features``: its :meth:`features`, computed here when None) for ``names`` (default
        every fitted baseline)."""
        feats = features if features is not None else self.features(inputs)
        n = len(feats.keys)
        out: dict[str, np.ndarray] = {}
        for name in names if names is not None else self.names:
            if name == "majority":
                out[name] = np.full(n, self.models["majority"], dtype=np.int64)
            elif name == "question_prior":
                out[name] = self.models[name].predict(feats.keys)
            elif name == "text_tfidf":
                out[name] = _predict(self.models[name], feats.tfidf, n)
            elif name == "image_pixels":
                model = self.models[name]
                if isinstance(model, QuestionPixelModel):
                    design = shared_design(feats.pixels, feats.tfidf)
                    out[name] = model.predict(feats.keys, feats.pixels, design)
                else:
                    out[name] = _predict(model, feats.pixels, n)
        return out

    def rank(self, inputs: Any) -> dict[str, Any]:
        """Retrieval: a :class:`~robust_mmr_pipeline.tasks.RetrievalResult` per baseline on a
        :class:`~robust_mmr_pipeline.tasks.RetrievalInputs` (every image and text a query)."""
        from robust_mmr_pipeline.tasks.metrics import ranks_from_scores
        from robust_mmr_pipeline.tasks.retrieval import RetrievalResult

        image_index = torch.arange(inputs.num_images)
        text_index = torch.arange(inputs.num_texts)
        i2t_pos = inputs.positives_for_images(image_index)
        t2i_pos = inputs.positives_for_texts(text_index)
        results = {}
        for name in self.names:
            if name == "chance":
                generator = torch.Generator().manual_seed(self.seed)
                scores = torch.rand(inputs.num_texts, inputs.num_images, generator=generator)
            else:
                text_z, image_z = self.models[name].transform(
                    inputs.texts, inputs.pixel_values(image_index)
                )
                scores = torch.from_numpy(text_z @ image_z.T).float()
            results[name] = RetrievalResult(
                method=name,
                i2t_ranks=ranks_from_scores(scores.t(), i2t_pos),
                t2i_ranks=ranks_from_scores(scores, t2i_pos),
                image_queries=image_index,
                text_queries=text_index,
            )
        return results


@dataclass
class _CrossModalCCA:
    """TF-IDF -> SVD and pixels -> PCA, then CCA; L2-normalised canonical variates."""

    text: Any
    pixels: PixelEncoder
    cca: Any

    def transform(self, texts: Sequence[str], images: torch.Tensor) -> tuple[np.ndarray, ...]:
        text_features = self.text.transform(list(texts))
        pixel_z = self.pixels.transform(images)
        t = self.cca.transform(text_features)
        # CCA.transform projects Y only beside an X of the same length: a zero X stands in.
        _, v = self.cca.transform(np.zeros((len(pixel_z), text_features.shape[1])), pixel_z)
        t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-12
        v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
        return t, v


def _fit_cca(texts: Sequence[str], images: torch.Tensor, seed: int) -> _CrossModalCCA:
    from sklearn.cross_decomposition import CCA
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    svd_dim = int(min(64, len(texts) - 1))
    text = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TruncatedSVD(n_components=max(svd_dim, 2), random_state=seed),
    )
    text_features = text.fit_transform(list(texts))
    pixels = fit_pixels(images, seed)
    pixel_z = pixels.transform(images)
    components = int(min(CCA_COMPONENTS, text_features.shape[1], pixel_z.shape[1]))
    cca = CCA(n_components=components, max_iter=1000).fit(text_features, pixel_z)
    return _CrossModalCCA(text, pixels, cca)


def one_blas_thread() -> Any:
    """A context running BLAS on one thread: the baselines' regressions are many small products
    between single-threaded L-BFGS steps, where a second BLAS thread adds only hand-offs (and
    spin-waits on a shared machine). Fitting the VQA baselines of a 15,000-QA release on 2
    cores: 62 s with two BLAS threads, 14-22 s with one, the same predictions."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def fit_baselines(
    task: str,
    train: Any,
    train_labels: np.ndarray | None,
    val: Any,
    val_labels: np.ndarray | None,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> FittedBaselines:
    """Fit ``names`` (default: every baseline of ``task``) on the train inputs (BLAS on one
    thread, :func:`one_blas_thread`).

    Args:
        task: ``vqa``, ``classification`` or ``retrieval``.
        train / val: :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs` (VQA /
            classification) or :class:`~robust_mmr_pipeline.tasks.RetrievalInputs`
            (retrieval; ``val`` unused), built from the clean train / val rows.
        train_labels / val_labels: class indices in the model's vocabulary (VQA /
            classification; out-of-vocabulary val rows never count as right).
    """
    with one_blas_thread():
        return _fit_baselines(task, train, train_labels, val, val_labels, names, seed)


def _fit_baselines(
    task: str, train: Any, train_labels: np.ndarray | None, val: Any,
    val_labels: np.ndarray | None, names: Sequence[str] | None, seed: int,
) -> FittedBaselines:  # fmt: skip
    if task not in BASELINES:
        raise ValueError(f"no baselines for task {task!r}; tasks: {sorted(BASELINES)}")
    chosen_names = tuple(names) if names is not None else BASELINES[task]
    unknown = sorted(set(chosen_names) - set(BASELINES[task]))
    if unknown:
        raise ValueError(f"unknown {task} baseline(s) {unknown}; known: {BASELINES[task]}")
    fitted = FittedBaselines(task, chosen_names, seed=seed)
    spec = task_spec(task)
    if spec.ranks:
        if "tfidf_pixels_cca" in chosen_names:
            images = train.pixel_values(torch.arange(train.num_images))
            texts = list(train.texts)
            row_images = images[train.text_to_image]
            fitted.models["tfidf_pixels_cca"] = _fit_cca(texts, row_images, seed)
        return fitted
    assert train_labels is not None and val_labels is not None
    labels = np.asarray(train_labels, dtype=np.int64)
    keep = labels >= 0  # out-of-vocabulary train rows cannot exist, but stay safe
    labels_val = np.asarray(val_labels, dtype=np.int64)
    majority = int(Counter(labels[keep].tolist()).most_common(1)[0][0])
    fitted.models["majority"] = majority
    # Features once: one TF-IDF vocabulary and one pixel PCA serve every baseline.
    if {"text_tfidf", "image_pixels"} & set(chosen_names):
        fitted.models["vectorizer"] = _vectorizer().fit(list(train.texts))
    if "image_pixels" in chosen_names:
        fitted.models["pixels"] = fit_pixels(train.images, seed)
    feats, val_feats = fitted.features(train), fitted.features(val)
    prior = _prior(feats.keys, labels, majority)
    if "question_prior" in chosen_names:
        fitted.models["question_prior"] = prior
    if "text_tfidf" in chosen_names:
        model, c = _fit_walk(feats.tfidf, labels, val_feats.tfidf, labels_val, TEXT_C_GRID, seed)
        fitted.models["text_tfidf"], fitted.chosen["text_tfidf_C"] = model, c
    if "image_pixels" in chosen_names:
        if spec.answers:  # pixels per question (the question prior's keys)
            val = (val_feats.keys, val_feats.pixels,
                   shared_design(val_feats.pixels, val_feats.tfidf), labels_val)  # fmt: skip
            design = shared_design(feats.pixels, feats.tfidf)
            model, chosen = fit_question_pixels(
                feats.keys, feats.pixels, design, labels, val, prior, seed
            )
            fitted.chosen.update({f"image_pixels_{k}": v for k, v in chosen.items()})
        else:
            model, c = _fit_walk(
                feats.pixels, labels, val_feats.pixels, labels_val, PIXEL_C_GRID, seed
            )
            fitted.chosen["image_pixels_C"] = c
        fitted.models["image_pixels"] = model
    logger.info("Fitted %s baselines %s (chosen on val: %s)", task, chosen_names, fitted.chosen)
    return fitted


def encode_task_labels(task: str, rows: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
    """Class indices of ``rows`` in the model's vocabulary (-100 outside it)."""
    from robust_mmr_pipeline.tasks.metrics import OOV_LABEL

    vocabulary: Mapping[str, int] = {name: i for i, name in enumerate(label_names)}
    spec = task_spec(task)
    if spec.answers:
        values = [normalize_answer(a) for a in rows[spec.label_column]]
    else:
        values = [str(v) for v in rows[spec.label_column]]
    return np.array([vocabulary.get(v, OOV_LABEL) for v in values], dtype=np.int64)
