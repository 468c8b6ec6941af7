"""Task metrics, bootstrap confidence intervals and robustness summaries (numpy / torch).

Conventions: accuracies, F1 and recall are fractions in [0, 1] (reports multiply by 100);
ranks are 1-based (rank 1 = the true item is first). Labels equal to :data:`OOV_LABEL` (an
answer outside the TRAIN vocabulary) never match a prediction, so they count as wrong.

Definitions
-----------
* VQA accuracy: ``overall = mean(pred == label)``; ``closed`` / ``open`` the same over the rows
  of that answer type.
* Macro-F1: mean over classes of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``, over the classes
  present in the labels or the predictions (``sklearn.metrics.f1_score(average="macro")`` with
  those labels, ``zero_division=0``). An OOV row adds a false positive to its predicted class.
* Retrieval: ``R@k = mean(rank <= k)``, mean and median rank.
* Percentile bootstrap: resample the n items with replacement ``n_boot`` times (indices
  ``[n_boot, n]`` from ``numpy.random.default_rng(seed)``), evaluate the statistic on every
  resample at once, CI = the ``alpha/2`` and ``1 - alpha/2`` percentiles. Passing several
  arrays resamples them with the same indices (paired: e.g. a difference between two models).
* Drop: ``clean - perturbed`` (``relative``: divided by ``clean``).
* Corruption error (ImageNet-C): ``CE_c = Σ_s E^model_{s,c} / Σ_s E^base_{s,c}``, error
  ``E = 1 - accuracy``; ``mCE = mean_c CE_c``. Relative mCE uses
  ``Σ_s (E_{s,c} - E_clean)`` in numerator and denominator.
* Mean-rank degradation: ``perturbed mean rank - clean mean rank`` (and their ratio).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import Tensor

OOV_LABEL = -100
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)


def _np(values: Any) -> np.ndarray:
    if isinstance(values, Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


# --------------------------------------------------------------------------- classification


def accuracy(predictions: Any, labels: Any) -> float:
    """``mean(pred == label)`` over ``[n]`` arrays (OOV labels count as wrong); nan if empty."""
    pred, true = _np(predictions).reshape(-1), _np(labels).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"predictions {pred.shape} and labels {true.shape} differ in shape")
    return float(np.mean(pred == true)) if len(true) else math.nan


def answer_type_flags(answer_types: Any) -> np.ndarray:
    """``[n]`` bool, True = closed: from ids (0 closed, 1 open) or strings."""
    values = _np(answer_types).reshape(-1)
    if values.dtype.kind in "iub":
        if not np.isin(values, (0, 1)).all():
            raise ValueError("answer type ids must be 0 (closed) or 1 (open)")
        return values == 0
    lowered = np.array([str(v).strip().lower() for v in values])
    if not np.isin(lowered, ("closed", "open")).all():
        raise ValueError("answer types must be 'closed' or 'open'")
    return lowered == "closed"


def vqa_accuracy(predictions: Any, labels: Any, answer_types: Any) -> dict[str, float]:
    """Closed, open and overall accuracy (fractions) plus the counts.

    Args:
        predictions: ``[n]`` predicted class indices.
        labels: ``[n]`` true class indices, :data:`OOV_LABEL` for answers outside the TRAIN
            vocabulary (counted wrong).
        answer_types: ``[n]`` ``closed`` / ``open`` strings or ids (0 closed, 1 open).

    Returns:
        ``overall``, ``closed``, ``open`` (nan when a type has no rows), ``n``, ``n_closed``,
        ``n_open``, ``n_oov``.
    """
    pred, true = _np(predictions).reshape(-1), _np(labels).reshape(-1)
    closed = answer_type_flags(answer_types)
    if not pred.shape == true.shape == closed.shape:
        raise ValueError("predictions, labels and answer_types must have the same length")
    correct = pred == true
    return {
        "overall": float(correct.mean()) if len(correct) else math.nan,
        "closed": float(correct[closed].mean()) if closed.any() else math.nan,
        "open": float(correct[~closed].mean()) if (~closed).any() else math.nan,
        "n": float(len(correct)),
        "n_closed": float(closed.sum()),
        "n_open": float((~closed).sum()),
        "n_oov": float((true == OOV_LABEL).sum()),
    }


def macro_f1(predictions: Any, labels: Any) -> float:
    """Macro-F1 over the classes present in labels or predictions (see module docstring)."""
    pred, true = _np(predictions).reshape(-1), _np(labels).reshape(-1)
    if not len(true):
        return math.nan
    classes = sorted(set(true[true != OOV_LABEL].tolist()) | set(pred.tolist()))
    return float(f1_score(true, pred, labels=classes, average="macro", zero_division=0))


def macro_f1_batched(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Vectorised macro-F1 of many resamples: ``[R, n]`` class indices -> ``[R]``.

    Same definition as :func:`macro_f1` per row (classes in ``0..num_classes-1``; OOV labels
    add a false positive to the predicted class only). One ``bincount`` per statistic.
    """
    pred, true = np.asarray(predictions), np.asarray(labels)
    rows, c = pred.shape[0], int(num_classes)
    offset = (np.arange(rows) * c)[:, None]
    valid = true != OOV_LABEL
    hit = (pred == true) & valid
    size = rows * c
    tp = np.bincount((offset + pred)[hit], minlength=size).reshape(rows, c)
    n_pred = np.bincount((offset + pred).ravel(), minlength=size).reshape(rows, c)
    n_true = np.bincount((offset + np.where(valid, true, 0))[valid], minlength=size).reshape(
        rows, c
    )
    denominator = n_pred + n_true  # = 2TP + FP + FN
    present = denominator > 0
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros((rows, c)), where=present)
    counts = present.sum(axis=1)
    return np.divide(f1.sum(axis=1), counts, out=np.full(rows, np.nan), where=counts > 0)


# --------------------------------------------------------------------------- retrieval ranks


def ranks_from_order(order: Tensor, positives: Tensor) -> Tensor:
    """1-based rank of the first positive in each ranked list.

    Args:
        order: long ``[Q, C]``, candidate indices best first (a permutation per row).
        positives: bool ``[Q, C]`` by candidate index; every row needs a True.

    Returns:
        long ``[Q]``.
    """
    if not bool(positives.any(dim=1).all()):
        raise ValueError("every query needs at least one positive candidate")
    hits = positives.gather(1, order)
    return hits.int().argmax(dim=1).long() + 1


def ranks_from_scores(scores: Tensor, positives: Tensor) -> Tensor:
    """Ranks (``[Q]``, 1-based) under ``scores`` ``[Q, C]`` (higher = better).

    Ties are broken by candidate index (stable sort), so the ranking is deterministic.
    """
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return ranks_from_order(order, positives)


def recall_at_k(ranks: Any, k: int) -> float:
    """``mean(rank <= k)``."""
    values = _np(ranks).reshape(-1)
    return float(np.mean(values <= k)) if len(values) else math.nan


def rank_metrics(ranks: Any, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """``r@k`` for each k, ``mean_rank``, ``median_rank`` and ``n`` from 1-based ranks."""
    values = _np(ranks).reshape(-1).astype(np.float64)
    out = {f"r@{k}": recall_at_k(values, k) for k in ks}
    out["mean_rank"] = float(values.mean()) if len(values) else math.nan
    out["median_rank"] = float(np.median(values)) if len(values) else math.nan
    out["n"] = float(len(values))
    return out


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class ConfidenceInterval:
    """Point estimate on all items and the percentile-bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    n_boot: int
    alpha: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """``{prefix: estimate, prefix_ci_low: low, prefix_ci_high: high}``."""
        key = prefix or "estimate"
        return {key: self.estimate, f"{key}_ci_low": self.low, f"{key}_ci_high": self.high}


Statistic = Callable[..., np.ndarray]


def bootstrap_indices(n: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """Resampling indices ``[n_boot, n]`` (uniform with replacement, seeded)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(
    statistic: Statistic,
    *arrays: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    block: int = 256,
) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``statistic`` over items.

    Args:
        statistic: vectorised over resamples: gets each array as ``[R, n, ...]`` (``R``
            resamples) and returns ``[R]`` (e.g. :func:`mean_statistic`).
        *arrays: per-item arrays ``[n, ...]`` resampled with the SAME indices (paired).
        n_boot: number of resamples.
        alpha: 0.05 for a 95 % interval.
        seed: seed of the resampling indices.
        block: resamples evaluated at once (bounds memory to ``block × n``).

    Resamples where the statistic is undefined (nan, e.g. no closed question drawn) are
    ignored by the percentiles.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    data = [_np(a) for a in arrays]
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise ValueError("all arrays must have the same number of items")
    if n == 0:
        return ConfidenceInterval(math.nan, math.nan, math.nan, n_boot, alpha)
    estimate = float(np.asarray(statistic(*(a[None] for a in data))).reshape(-1)[0])
    indices = bootstrap_indices(n, n_boot, seed)
    values = np.concatenate(
        [
            np.asarray(statistic(*(a[indices[s : s + block]] for a in data)), dtype=np.float64)
            for s in range(0, n_boot, block)
        ]
    )
    finite = values[np.isfinite(values)]
    if not len(finite):
        return ConfidenceInterval(estimate, math.nan, math.nan, n_boot, alpha)
    low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return ConfidenceInterval(estimate, float(low), float(high), n_boot, alpha)


def mean_statistic(values: np.ndarray) -> np.ndarray:
    """``[R, n] -> [R]`` mean (accuracy from 0/1 correctness)."""
    return values.mean(axis=1)


def subset_mean_statistic(values: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """``[R, n]`` values and bool selection -> ``[R]`` mean over the selected (nan if none)."""
    counts = selected.sum(axis=1)
    totals = (values * selected).sum(axis=1)
    return np.divide(totals, counts, out=np.full(len(counts), np.nan), where=counts > 0)


def recall_statistic(k: int) -> Statistic:
    """``[R, n]`` ranks -> ``[R]`` R@k."""

    def statistic(ranks: np.ndarray) -> np.ndarray:
        return (ranks <= k).mean(axis=1)

    return statistic


def median_statistic(values: np.ndarray) -> np.ndarray:
    """``[R, n] -> [R]`` median."""
    return np.median(values, axis=1)


def macro_f1_statistic(num_classes: int) -> Statistic:
    """``([R, n] predictions, [R, n] labels) -> [R]`` macro-F1 (:func:`macro_f1_batched`)."""

    def statistic(predictions: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return macro_f1_batched(predictions, labels, num_classes)

    return statistic


# --------------------------------------------------------------------------- robustness


def performance_drop(clean: float, perturbed: float, relative: bool = False) -> float:
    """``clean - perturbed`` (``relative``: ``(clean - perturbed) / clean``)."""
    drop = float(clean) - float(perturbed)
    if relative:
        return drop / float(clean) if clean else math.nan
    return drop


def corruption_error(
    model_errors: Sequence[float],
    baseline_errors: Sequence[float],
    model_clean_error: float | None = None,
    baseline_clean_error: float | None = None,
) -> float:
    """``CE = Σ_s E_model / Σ_s E_base`` over severities (relative CE with clean errors)."""
    model = np.asarray(model_errors, dtype=np.float64)
    base = np.asarray(baseline_errors, dtype=np.float64)
    if model.shape != base.shape or model.ndim != 1 or not len(model):
        raise ValueError("model and baseline need one error per severity, same severities")
    if model_clean_error is not None or baseline_clean_error is not None:
        if model_clean_error is None or baseline_clean_error is None:
            raise ValueError("relative CE needs both clean errors")
        model = model - model_clean_error
        base = base - baseline_clean_error
    denominator = base.sum()
    return float(model.sum() / denominator) if denominator != 0 else math.nan


def mean_corruption_error(
    model_errors: Mapping[str, Sequence[float]],
    baseline_errors: Mapping[str, Sequence[float]],
    *,
    model_clean_error: float | None = None,
    baseline_clean_error: float | None = None,
) -> dict[str, Any]:
    """mCE (ImageNet-C) of a model against a baseline.

    Args:
        model_errors: corruption -> errors ``1 - accuracy`` at severities 1..5 (any fixed
            list of severities, the same for the baseline).
        baseline_errors: the same for the baseline (e.g. the MMR model); must cover every
            corruption of ``model_errors``.
        model_clean_error / baseline_clean_error: both given -> relative mCE.

    Returns:
        ``{"mce": float, "per_corruption": {name: CE}}``.
    """
    missing = sorted(set(model_errors) - set(baseline_errors))
    if missing:
        raise ValueError(f"baseline errors lack corruption(s) {missing}")
    if not model_errors:
        raise ValueError("mean_corruption_error needs at least one corruption")
    per = {
        name: corruption_error(
            model_errors[name], baseline_errors[name], model_clean_error, baseline_clean_error
        )
        for name in sorted(model_errors)
    }
    return {"mce": float(np.mean(list(per.values()))), "per_corruption": per}


def mean_rank_degradation(clean_ranks: Any, perturbed_ranks: Any) -> dict[str, float]:
    """Mean rank clean vs perturbed: ``clean_mean_rank``, ``perturbed_mean_rank``,
    ``degradation`` (difference) and ``ratio``."""
    clean = float(_np(clean_ranks).astype(np.float64).mean())
    perturbed = float(_np(perturbed_ranks).astype(np.float64).mean())
    return {
        "clean_mean_rank": clean,
        "perturbed_mean_rank": perturbed,
        "degradation": perturbed - clean,
        "ratio": perturbed / clean if clean else math.nan,
    }
