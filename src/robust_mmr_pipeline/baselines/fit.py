"""Fit the trivial baselines of a task on its train rows and score evaluation sets with them.

Predictions are class indices in the MODEL's vocabulary (the train answers / labels, in the
model's order), so a baseline's correctness vector lines up row for row with the model's and
the same metric functions (and bootstrap CIs) apply. Hyper-parameters: the inverse
regularisation ``C`` of each logistic regression is chosen on the validation rows from a
small grid (never on test).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from robust_mmr_pipeline.baselines.registry import BASELINES
from robust_mmr_pipeline.sources.answers import normalize_answer

logger = logging.getLogger(__name__)

# Inverse regularisation grids, chosen on val: L2-normalised TF-IDF needs weak regularisation,
# whitened pixel components strong.
TEXT_C_GRID: tuple[float, ...] = (1.0, 10.0, 100.0)
PIXEL_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)
PIXEL_SIZE = 32  # images are average-pooled to PIXEL_SIZE x PIXEL_SIZE before PCA
PIXEL_COMPONENTS = 128
CCA_COMPONENTS = 16


def normalize_question(text: str) -> str:
    """Lower-case, collapse whitespace, drop trailing punctuation: the prior's lookup key."""
    return re.sub(r"\s+", " ", str(text).strip().lower()).rstrip(" ?.!")


def pixel_features(images: torch.Tensor, size: int = PIXEL_SIZE) -> np.ndarray:
    """Float images ``[N, C, H, W]`` in [0, 1] -> ``[N, C * size * size]`` (area pooling)."""
    pooled = F.adaptive_avg_pool2d(images.float(), (size, size))
    return pooled.reshape(len(images), -1).numpy().astype(np.float64)


def _logistic(c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=500, tol=1e-3, random_state=seed)


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


@dataclass
class _TextModel:
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression, ``C`` chosen on val."""

    pipeline: Any
    classes: np.ndarray

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if len(self.classes) == 1:
            return np.full(len(texts), self.classes[0], dtype=np.int64)
        return self.pipeline.predict(list(texts)).astype(np.int64)


def _fit_text(
    texts: Sequence[str],
    labels: np.ndarray,
    val_texts: Sequence[str],
    val_labels: np.ndarray,
    seed: int,
) -> tuple[_TextModel, float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    classes = np.unique(labels)
    best: tuple[float, Any, float] | None = None
    for c in TEXT_C_GRID if len(classes) > 1 else (1.0,):
        pipeline = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), _logistic(c, seed)
        )
        if len(classes) > 1:
            pipeline.fit(list(texts), labels)
        model = _TextModel(pipeline, classes)
        score = float(np.mean(model.predict(val_texts) == val_labels)) if len(val_labels) else 0
        if best is None or score > best[0]:
            best = (score, model, c)
    assert best is not None
    return best[1], best[2]


@dataclass
class _PixelEncoder:
    """Standardised pooled pixels -> PCA (fitted on the train images)."""

    pca: Any

    def transform(self, images: torch.Tensor) -> np.ndarray:
        return self.pca.transform(pixel_features(images))


def _fit_pixels(images: torch.Tensor, seed: int) -> _PixelEncoder:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = pixel_features(images)
    components = int(min(PIXEL_COMPONENTS, features.shape[0] - 1, features.shape[1]))
    # whitened components: the logistic regressions on them converge in a few iterations
    pca = make_pipeline(
        StandardScaler(), PCA(n_components=max(components, 1), whiten=True, random_state=seed)
    )
    pca.fit(features)
    return _PixelEncoder(pca)


@dataclass
class _PerKeyLogistic:
    """One logistic regression per key (question text) on pixel features; the key's prior
    where it has a single train class, the global prior for unseen keys."""

    models: dict[str, Any]
    prior: _Prior

    def predict(self, keys: Sequence[str], features: np.ndarray) -> np.ndarray:
        out = self.prior.predict(keys)
        by_key: dict[str, list[int]] = {}
        for row, key in enumerate(keys):
            if key in self.models:
                by_key.setdefault(key, []).append(row)
        for key, rows in by_key.items():
            out[rows] = self.models[key].predict(features[rows]).astype(np.int64)
        return out


def _fit_per_key(
    keys: Sequence[str],
    features: np.ndarray,
    labels: np.ndarray,
    prior: _Prior,
    c: float,
    seed: int,
) -> _PerKeyLogistic:
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    models = {}
    for key, rows in groups.items():
        if len(np.unique(labels[rows])) > 1:
            models[key] = _logistic(c, seed).fit(features[rows], labels[rows])
    return _PerKeyLogistic(models, prior)


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

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        """Class index per row of an :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs`."""
        n = inputs.num_rows
        keys = [normalize_question(t) for t in inputs.texts]
        out: dict[str, np.ndarray] = {}
        features = None
        if "image_pixels" in self.models:
            features = self.models["pixels"].transform(inputs.images)[inputs.row_image.numpy()]
        for name in self.names:
            if name == "majority":
                out[name] = np.full(n, self.models["majority"], dtype=np.int64)
            elif name == "question_prior":
                out[name] = self.models[name].predict(keys)
            elif name == "text_tfidf":
                out[name] = self.models[name].predict(inputs.texts)
            elif name == "image_pixels":
                model = self.models[name]
                if isinstance(model, _PerKeyLogistic):
                    out[name] = model.predict(keys, features)
                else:
                    out[name] = model.predict(features).astype(np.int64)
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
    pixels: _PixelEncoder
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
    pixels = _fit_pixels(images, seed)
    pixel_z = pixels.transform(images)
    components = int(min(CCA_COMPONENTS, text_features.shape[1], pixel_z.shape[1]))
    cca = CCA(n_components=components, max_iter=1000).fit(text_features, pixel_z)
    return _CrossModalCCA(text, pixels, cca)


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
    """Fit ``names`` (default: every baseline of ``task``) on the train inputs.

    Args:
        task: ``vqa``, ``classification`` or ``retrieval``.
        train / val: :class:`~robust_mmr_pipeline.tasks.inputs.EvalInputs` (VQA /
            classification) or :class:`~robust_mmr_pipeline.tasks.RetrievalInputs`
            (retrieval; ``val`` unused), built from the clean train / val rows.
        train_labels / val_labels: class indices in the model's vocabulary (VQA /
            classification; out-of-vocabulary val rows never count as right).
    """
    if task not in BASELINES:
        raise ValueError(f"no baselines for task {task!r}; tasks: {sorted(BASELINES)}")
    chosen_names = tuple(names) if names is not None else BASELINES[task]
    unknown = sorted(set(chosen_names) - set(BASELINES[task]))
    if unknown:
        raise ValueError(f"unknown {task} baseline(s) {unknown}; known: {BASELINES[task]}")
    fitted = FittedBaselines(task, chosen_names, seed=seed)
    if task == "retrieval":
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
    keys = [normalize_question(t) for t in train.texts]
    val_keys = [normalize_question(t) for t in val.texts]
    prior = _prior(keys, labels, majority)
    if "question_prior" in chosen_names:
        fitted.models["question_prior"] = prior
    if "text_tfidf" in chosen_names:
        model, c = _fit_text(train.texts, labels, val.texts, labels_val, seed)
        fitted.models["text_tfidf"], fitted.chosen["text_tfidf_C"] = model, c
    if "image_pixels" in chosen_names:
        encoder = _fit_pixels(train.images, seed)
        fitted.models["pixels"] = encoder
        features = encoder.transform(train.images)[train.row_image.numpy()]
        val_features = encoder.transform(val.images)[val.row_image.numpy()]
        best: tuple[float, Any, float] | None = None
        for c in PIXEL_C_GRID:
            if task == "vqa":
                model = _fit_per_key(keys, features, labels, prior, c, seed)
                predicted = model.predict(val_keys, val_features)
            else:
                model = _logistic(c, seed).fit(features, labels)
                predicted = model.predict(val_features)
            score = float(np.mean(predicted == labels_val))
            if best is None or score > best[0]:
                best = (score, model, c)
        assert best is not None
        fitted.models["image_pixels"], fitted.chosen["image_pixels_C"] = best[1], best[2]
    logger.info("Fitted %s baselines %s (chosen on val: %s)", task, chosen_names, fitted.chosen)
    return fitted


def encode_task_labels(task: str, rows: pd.DataFrame, label_names: Sequence[str]) -> np.ndarray:
    """Class indices of ``rows`` in the model's vocabulary (-100 outside it)."""
    from robust_mmr_pipeline.tasks.metrics import OOV_LABEL

    vocabulary: Mapping[str, int] = {name: i for i, name in enumerate(label_names)}
    if task == "vqa":
        values = [normalize_answer(a) for a in rows["answer"]]
    else:
        values = [str(v) for v in rows["label"]]
    return np.array([vocabulary.get(v, OOV_LABEL) for v in values], dtype=np.int64)
