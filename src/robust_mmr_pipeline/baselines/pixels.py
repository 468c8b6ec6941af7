"""Pixel baselines with a bounded cost: whitened pixel PCA, and the VQA per-question regression.

VQA's ``image_pixels`` answers a question from the image the way a question-specific classifier
would: one logistic regression on pixels per question text. A real release has thousands of
question texts, most with a handful of train rows (VQA-Med 2019: 4.5 minutes of fitting and
hundreds of scikit-learn "more classes than half the samples" warnings). Here a question text
gets its own regression only where it has at least ``min_rows`` train rows and at most half as
many answers as rows (a classification problem, not a lookup); every other row is answered by
ONE shared regression on the pixels and the question's TF-IDF. ``min_rows`` and ``C`` are chosen
together on the validation rows; each regression walks up the ``C`` grid with warm starts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

# Inverse regularisation grid, ascending (warm starts go from the strongest regularisation):
# whitened pixel components need strong regularisation.
PIXEL_C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0)
# Train rows a question text needs for its own regression (chosen on val).
MIN_ROWS_GRID: tuple[int, ...] = (10, 25, 50)
PIXEL_SIZE = 32  # images are average-pooled to PIXEL_SIZE x PIXEL_SIZE before PCA
PIXEL_COMPONENTS = 128


def logistic(c: float, seed: int, *, warm_start: bool = False) -> Any:
    """The baselines' logistic regression (lbfgs, multinomial)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=500, tol=1e-3, random_state=seed, warm_start=warm_start)


def learnable(labels: np.ndarray) -> bool:
    """At least two classes and at most half as many classes as rows (beyond 20 rows): what
    scikit-learn treats as a classification problem (``type_of_target`` warns otherwise)."""
    n, classes = len(labels), len(np.unique(labels))
    return classes > 1 and (n <= 20 or classes <= round(0.5 * n))


def pixel_features(images: torch.Tensor, size: int = PIXEL_SIZE) -> np.ndarray:
    """Float images ``[N, C, H, W]`` in [0, 1] -> ``[N, C * size * size]`` (area pooling)."""
    pooled = F.adaptive_avg_pool2d(images.float(), (size, size))
    return pooled.reshape(len(images), -1).numpy().astype(np.float64)


@dataclass
class PixelEncoder:
    """Standardised pooled pixels -> whitened PCA (fitted on the train images)."""

    pca: Any

    def transform(self, images: torch.Tensor) -> np.ndarray:
        return self.pca.transform(pixel_features(images))


def fit_pixels(images: torch.Tensor, seed: int) -> PixelEncoder:
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
    return PixelEncoder(pca)


def shared_design(pixels: np.ndarray, tfidf: Any) -> Any:
    """The shared regression's input: pixel components beside the question's TF-IDF."""
    from scipy import sparse

    return sparse.hstack([sparse.csr_matrix(pixels), tfidf], format="csr")


def _groups(keys: Sequence[str]) -> dict[str, np.ndarray]:
    groups: dict[str, list[int]] = {}
    for row, key in enumerate(keys):
        groups.setdefault(key, []).append(row)
    return {key: np.asarray(rows) for key, rows in groups.items()}


@dataclass
class QuestionPixelModel:
    """Per-question regressions (or the single answer of a one-answer question) where a question
    text had ``min_rows`` train rows; the shared regression (or, when the labels were not
    learnable, the question prior) everywhere else."""

    per_key: dict[str, Any]  # question key -> fitted regression or a class index
    shared: Any  # fitted regression on shared_design, or None
    fallback: Any  # the question prior (_Prior) for the shared part when shared is None
    min_rows: int

    def predict(self, keys: Sequence[str], pixels: np.ndarray, design: Any) -> np.ndarray:
        """Class index per row; ``design``: :func:`shared_design` of the same rows."""
        own = np.array([key in self.per_key for key in keys], dtype=bool)
        if self.shared is not None and (~own).any():
            out = np.zeros(len(keys), dtype=np.int64)
            out[~own] = self.shared.predict(design[np.flatnonzero(~own)])
        else:
            out = self.fallback.predict(keys)
        for key, rows in _groups(keys).items():
            model = self.per_key.get(key)
            if model is None:
                continue
            if isinstance(model, int | np.integer):
                out[rows] = int(model)
            else:
                out[rows] = model.predict(pixels[rows]).astype(np.int64)
        return out


def fit_question_pixels(
    keys: Sequence[str],
    pixels: np.ndarray,
    design: Any,
    labels: np.ndarray,
    val: tuple[Sequence[str], np.ndarray, Any, np.ndarray],
    fallback: Any,
    seed: int,
) -> tuple[QuestionPixelModel, dict[str, Any]]:
    """Fit on the train rows, choose ``(C, min_rows)`` on ``val`` = (keys, pixels, design,
    labels); returns the model and the chosen values."""
    groups = _groups(keys)
    eligible = {k: rows for k, rows in groups.items() if len(rows) >= min(MIN_ROWS_GRID)}
    single = {k: int(labels[rows][0]) for k, rows in eligible.items()
              if len(np.unique(labels[rows])) == 1}  # fmt: skip
    regressions = {
        k: logistic(PIXEL_C_GRID[0], seed, warm_start=True)
        for k, rows in eligible.items()
        if k not in single and learnable(labels[rows])
    }
    shared = logistic(PIXEL_C_GRID[0], seed, warm_start=True) if learnable(labels) else None
    val_keys, val_pixels, val_design, val_labels = val
    val_groups = {k: rows for k, rows in _groups(val_keys).items() if k in eligible}
    best: tuple[float, QuestionPixelModel, dict[str, Any]] | None = None
    for c in PIXEL_C_GRID:
        for key, model in regressions.items():
            model.set_params(C=c).fit(pixels[groups[key]], labels[groups[key]])
        if shared is not None:
            shared.set_params(C=c).fit(design, labels)
            base = shared.predict(val_design).astype(np.int64) if len(val_labels) else None
        else:
            base = fallback.predict(val_keys)
        own_val = {
            key: (np.full(len(rows), single[key]) if key in single
                  else regressions[key].predict(val_pixels[rows]))
            for key, rows in val_groups.items() if key in single or key in regressions
        }  # fmt: skip
        for min_rows in MIN_ROWS_GRID:
            kept = {k for k in (*single, *regressions) if len(groups[k]) >= min_rows}
            predicted = np.zeros(0, dtype=np.int64) if base is None else base.copy()
            for key in kept & set(own_val):
                predicted[val_groups[key]] = own_val[key]
            score = float(np.mean(predicted == val_labels)) if len(val_labels) else 0.0
            if best is None or score > best[0]:
                per_key = {k: single[k] if k in single else copy.deepcopy(regressions[k])
                           for k in kept}  # fmt: skip
                model = QuestionPixelModel(per_key, copy.deepcopy(shared), fallback, min_rows)
                best = (score, model, {"C": c, "min_rows": min_rows, "own_models": len(kept)})
    assert best is not None
    return best[1], best[2]
