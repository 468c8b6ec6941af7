"""The LP of LP-FT: fit a task head on the frozen backbone's features before fine-tuning.

Kumar et al. (ICLR 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"): a randomly initialised head sends large, noisy gradients into a
pre-trained backbone during the first steps of fine-tuning and distorts the features it
learned; fitting the head on frozen features first (linear probing), then fine-tuning every
layer, keeps them. Here the head (:class:`~robust_mmr_pipeline.tasks.heads.ClassifierHead`) is
fitted on the fused features of the TRAIN rows, encoded once (eval mode, no gradient), with
AdamW and cross-entropy, full passes over the cached features in a seeded order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from robust_mmr_pipeline.engine.data import ImageCache
from robust_mmr_pipeline.tasks.inputs import EvalInputs, fused_features
from robust_mmr_pipeline.tasks.metrics import OOV_LABEL

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeFit:
    """What fitting the head on frozen features gave: the train loss before / after and the
    train accuracy (OOV rows count as wrong)."""

    rows: int
    first_loss: float
    last_loss: float
    train_accuracy: float


def frozen_features(
    backbone: Any, rows: pd.DataFrame, cache: ImageCache, tokenizer: Any, text_column: str
) -> torch.Tensor:
    """The fused features ``[n, 2d]`` of ``rows`` under ``backbone`` (eval mode, no
    gradient): what the head is fitted on, and what the evaluation's frozen probe reads."""
    max_length = int(backbone.config.text.max_length)
    inputs = EvalInputs.from_rows(rows, cache, text_column=text_column)
    return fused_features(backbone, inputs, tokenizer, max_length).detach()


def fit_head_on_frozen_features(
    model: Any,
    rows: pd.DataFrame,
    labels: torch.Tensor,
    cache: ImageCache,
    tokenizer: Any,
    *,
    text_column: str,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    features: torch.Tensor | None = None,
) -> ProbeFit:
    """Train ``model.head`` (a TaskModel's classifier head) on the frozen fused features of
    ``rows`` (``features``: those of :func:`frozen_features`, computed here when None);
    ``labels`` long ``[n]`` (-100: out of vocabulary, no loss). The backbone is left untouched;
    the head keeps the fitted weights."""
    if model.head is None:
        raise ValueError("fit_head_on_frozen_features needs a classifier head (not retrieval)")
    if features is None:
        features = frozen_features(model.backbone, rows, cache, tokenizer, text_column)
    labels = labels.long()
    keep = labels != OOV_LABEL
    x, y = features[keep], labels[keep]
    if len(y) == 0:
        raise ValueError("no train row has an in-vocabulary label to fit the head on")
    head = model.head
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    was_training = head.training
    head.train()
    losses: list[float] = []
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(head(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    head.eval()
    with torch.no_grad():
        correct = (head(features).argmax(-1) == labels) & keep
    head.train(was_training)
    fit = ProbeFit(
        rows=len(labels),
        first_loss=losses[0],
        last_loss=losses[-1],
        train_accuracy=float(correct.float().mean()),
    )
    logger.info(
        "LP-FT: head fitted on frozen features of %d rows (%d epochs): loss %.3f -> %.3f, "
        "train accuracy %.3f.",
        fit.rows,
        epochs,
        fit.first_loss,
        fit.last_loss,
        fit.train_accuracy,
    )
    return fit
