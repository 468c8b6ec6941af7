"""Evaluation of task models: predictions through the engine, metrics with bootstrap CIs.

Every metric dict is flat (``{name: float}``, ready for MLflow / JSON): the point estimate
under its name and the percentile-bootstrap 95 % interval under ``<name>_ci_low`` /
``<name>_ci_high`` (``n_boot`` resamples of the items, ``seed``; ``n_boot=0`` skips them).
Fractions stay in [0, 1]. Out-of-vocabulary answers count as wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch import Tensor, nn
from torch.utils.data import DataLoader

from robust_mmr_pipeline.engine.inference import predict
from robust_mmr_pipeline.tasks import metrics as M
from robust_mmr_pipeline.tasks.retrieval import (
    RetrievalResult,
    contrastive_search,
    cross_encoder_search,
    two_stage_search,
)
from robust_mmr_pipeline.tasks.retrieval_encoding import RetrievalEncoding
from robust_mmr_pipeline.tasks.retrieval_inputs import RetrievalInputs

RETRIEVAL_METHODS: tuple[str, ...] = ("two_stage", "cross_encoder", "contrastive")


def _forward(model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
    out = {"logits": model.predict(batch).float(), "indices": batch["indices"]}
    for key in ("labels", "answer_type_ids", "domain_ids"):
        if key in batch:
            out[key] = batch[key]
    return out


def collect_predictions(
    model: nn.Module, loader: DataLoader, *, accelerator: Accelerator | None = None
) -> dict[str, Tensor]:
    """``logits`` ``[n, C]``, ``indices``, and ``labels`` / ``answer_type_ids`` /
    ``domain_ids`` ``[n]`` when the batches have them, in dataset order of the loader
    (gathered across processes by :func:`robust_mmr_pipeline.engine.predict`)."""
    return predict(model, loader, accelerator=accelerator, forward_fn=_forward)


def _with_ci(
    name: str,
    statistic: M.Statistic,
    arrays: Sequence[np.ndarray],
    n_boot: int,
    seed: int,
    alpha: float,
) -> dict[str, float]:
    if n_boot <= 0:
        return {name: float(np.asarray(statistic(*(a[None] for a in arrays))).reshape(-1)[0])}
    ci = M.bootstrap_ci(statistic, *arrays, n_boot=n_boot, alpha=alpha, seed=seed)
    return ci.as_dict(name)


def _predictions(logits_or_predictions: Any) -> np.ndarray:
    values = M._np(logits_or_predictions)
    return values.argmax(axis=-1) if values.ndim == 2 else values.reshape(-1)


def vqa_metrics(
    logits_or_predictions: Any,
    labels: Any,
    answer_types: Any,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """``overall`` / ``closed`` / ``open`` accuracy with CIs, ``n``, ``n_closed``, ``n_open``,
    ``n_oov`` (logits ``[n, C]`` or predicted indices ``[n]``)."""
    pred = _predictions(logits_or_predictions)
    true = M._np(labels).reshape(-1)
    closed = M.answer_type_flags(answer_types)
    counts = M.vqa_accuracy(pred, true, answer_types)
    correct = (pred == true).astype(np.float64)
    out: dict[str, float] = {}
    out.update(_with_ci("overall", M.mean_statistic, [correct], n_boot, seed, alpha))
    out.update(_with_ci("closed", M.subset_mean_statistic, [correct, closed], n_boot, seed, alpha))
    out.update(_with_ci("open", M.subset_mean_statistic, [correct, ~closed], n_boot, seed, alpha))
    out.update({key: counts[key] for key in ("n", "n_closed", "n_open", "n_oov")})
    return out


def classification_metrics(
    logits_or_predictions: Any,
    labels: Any,
    num_classes: int,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` with CIs, ``n`` and ``n_oov``."""
    pred = _predictions(logits_or_predictions).astype(np.int64)
    true = M._np(labels).reshape(-1).astype(np.int64)
    correct = (pred == true).astype(np.float64)
    out: dict[str, float] = {}
    out.update(_with_ci("accuracy", M.mean_statistic, [correct], n_boot, seed, alpha))
    out.update(
        _with_ci("macro_f1", M.macro_f1_statistic(num_classes), [pred, true], n_boot, seed, alpha)
    )
    out["macro_f1"] = M.macro_f1(pred, true)  # the sklearn value as the point estimate
    out["n"] = float(len(true))
    out["n_oov"] = float((true == M.OOV_LABEL).sum())
    return out


def retrieval_metrics(
    result: RetrievalResult,
    *,
    ks: Sequence[int] = M.DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, float]:
    """Per direction ``r@k`` and ``mean_rank`` with CIs, ``median_rank``, ``n``; ``rsum``;
    plus the method's cost (``itm_pairs``, ``seconds``)."""
    out = result.metrics(ks)
    for name, ranks in (("i2t", result.i2t_ranks), ("t2i", result.t2i_ranks)):
        if len(ranks) == 0:
            continue
        values = M._np(ranks).astype(np.float64)
        for k in ks:
            statistic = M.recall_statistic(k)
            out.update(_with_ci(f"{name}_r@{k}", statistic, [values], n_boot, seed, alpha))
        out.update(_with_ci(f"{name}_mean_rank", M.mean_statistic, [values], n_boot, seed, alpha))
    out["itm_pairs"] = float(result.itm_pairs)
    out["seconds"] = float(result.seconds.get("total", float("nan")))
    return out


@torch.no_grad()
def evaluate_vqa(
    model: nn.Module,
    loader: DataLoader,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    accelerator: Accelerator | None = None,
) -> dict[str, float]:
    """:func:`vqa_metrics` of ``model`` on the VQA batches of ``loader``."""
    out = collect_predictions(model, loader, accelerator=accelerator)
    labels, answer_types = out["labels"], out["answer_type_ids"]
    return vqa_metrics(out["logits"], labels, answer_types, n_boot=n_boot, seed=seed)


@torch.no_grad()
def evaluate_classification(
    model: nn.Module,
    loader: DataLoader,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    accelerator: Accelerator | None = None,
) -> dict[str, float]:
    """:func:`classification_metrics` of ``model`` on the batches of ``loader``."""
    out = collect_predictions(model, loader, accelerator=accelerator)
    num_classes = int(out["logits"].shape[-1])
    labels = out["labels"]
    return classification_metrics(out["logits"], labels, num_classes, n_boot=n_boot, seed=seed)


def evaluate_retrieval(
    model: nn.Module,
    inputs: RetrievalInputs,
    *,
    method: str = "two_stage",
    k: int = 16,
    batch_size: int = 256,
    ks: Sequence[int] = M.DEFAULT_KS,
    n_boot: int = 1000,
    seed: int = 0,
    encoding: RetrievalEncoding | None = None,
) -> tuple[dict[str, float], RetrievalResult]:
    """Run ``method`` (``two_stage``, ``cross_encoder`` or ``contrastive``) on ``inputs``
    (``encoding``: its :func:`~robust_mmr_pipeline.tasks.retrieval_encoding.encode_inputs`, computed
    when None); returns (:func:`retrieval_metrics`, the raw :class:`RetrievalResult`)."""
    if method == "two_stage":
        result = two_stage_search(model, inputs, k=k, batch_size=batch_size, encoding=encoding)
    elif method == "cross_encoder":
        result = cross_encoder_search(model, inputs, batch_size=batch_size, encoding=encoding)
    elif method == "contrastive":
        result = contrastive_search(model, inputs, batch_size=batch_size, encoding=encoding)
    else:
        raise ValueError(f"method must be one of {RETRIEVAL_METHODS}, got {method!r}")
    return retrieval_metrics(result, ks=ks, n_boot=n_boot, seed=seed), result
