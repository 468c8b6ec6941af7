"""Pre-training watched on validation: held-out losses and a frozen-feature probe every N steps.

A user has to see when more pre-training stops helping. Every ``every`` steps (and at the end)
:class:`PretrainWatch` scores the model being pre-trained on data it never trains on:

* **held-out losses**: the pre-training objectives (MIM, MLM, ITM, ...) on up to ``max_pairs``
  pairs of the pre-training protocol's VAL split, in eval mode with a fixed masking seed (so two
  steps are scored on the same masks and their difference is the model's);
* **a frozen-feature probe**: the fused feature of the labeled ``probe_task`` rows, a
  logistic regression fitted on a fixed subset of the TRAIN rows (``probe_train_fraction``, by
  image, as a label budget) and scored on the VAL rows: what fine-tuning at a small budget
  would start from.

The step with the best probe accuracy is the checkpoint handed to fine-tuning (model selection
on validation; test rows never reach pre-training).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

logger = logging.getLogger(__name__)

PROBE_METRIC = "probe/accuracy"


@dataclass(frozen=True)
class ProbeRows:
    """The labeled rows of the probe: ``text_column`` holds the text, ``label_column`` the
    class (VQA: question / answer; classification: text / label)."""

    train: pd.DataFrame
    val: pd.DataFrame
    text_column: str
    label_column: str

    @classmethod
    def for_task(
        cls, task: str, table: pd.DataFrame, protocol: str, fraction: float, seed: int
    ) -> ProbeRows:
        from robust_mmr_pipeline.recipes.finetune import task_rows
        from robust_mmr_pipeline.tasks.budgets import budget_rows
        from robust_mmr_pipeline.tasks.registry import task_spec

        train = budget_rows(task_rows(table, protocol, "train"), fraction, seed)
        val = task_rows(table, protocol, "val")
        if train.empty or val.empty:
            raise ValueError(
                f"pretrain.watch: the {task} probe needs train and val rows of protocol "
                f"{protocol!r}, found {len(train)} / {len(val)}; set pretrain.watch.probe_task "
                "to a task the sources label, or pretrain.watch.every: 0 to switch the watch off."
            )
        spec = task_spec(task)
        if spec.label_column is None:
            raise ValueError(f"pretrain.watch.probe_task must be a classifier task, got {task!r}")
        return cls(train, val, spec.text_column, spec.label_column)


class PretrainWatch:
    """``eval_fn`` of the pre-training run (engine.train): returns ``val/<term>`` losses and
    ``probe/accuracy``; ``best`` holds the best probe accuracy and its step."""

    def __init__(
        self,
        val_pairs: pd.DataFrame,
        probe: ProbeRows | None,
        cache: Any,
        tokenizer: Any,
        collate: Any,
        *,
        max_pairs: int = 256,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        from robust_mmr_pipeline.engine import PairDataset, domain_vocabulary

        pairs = val_pairs.sort_values("pair_id").head(max_pairs).reset_index(drop=True)
        self.dataset = (
            PairDataset(pairs, cache, domains=domain_vocabulary(pairs["domain"].tolist()))
            if len(pairs)
            else None
        )
        self.probe, self.cache, self.tokenizer, self.collate = probe, cache, tokenizer, collate
        self.batch_size, self.seed = batch_size, seed
        self.best: dict[str, float] = {"value": -math.inf, "step": -1}
        self._inputs: dict[str, Any] = {}

    def __call__(self, model: Any, step: int, accelerator: Any) -> dict[str, float]:
        metrics = self.held_out_losses(model, accelerator.device)
        if self.probe is not None:
            metrics[PROBE_METRIC] = self.probe_accuracy(model)
            if metrics[PROBE_METRIC] > self.best["value"]:
                self.best = {"value": metrics[PROBE_METRIC], "step": float(step)}
        return metrics

    def held_out_losses(self, model: Any, device: torch.device) -> dict[str, float]:
        """Mean of each pre-training loss term over the val pairs (fixed masks)."""
        if self.dataset is None:
            return {}
        torch.manual_seed(self.seed)  # the engine restores the training RNG afterwards
        sums: dict[str, float] = {}
        count = 0
        for start in range(0, len(self.dataset), self.batch_size):
            items = [
                self.dataset[i]
                for i in range(start, min(start + self.batch_size, len(self.dataset)))
            ]
            batch = {
                k: v.to(device) if isinstance(v, torch.Tensor) else v
                for k, v in self.collate(items).items()
            }
            output = model(batch, progress=1.0)
            for name, value in output.losses.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(items)
            count += len(items)
        return {f"val/{name}": total / count for name, total in sums.items()}

    def _features(self, model: Any, split: str) -> np.ndarray:
        from robust_mmr_pipeline.tasks.inputs import EvalInputs, fused_features

        assert self.probe is not None
        if split not in self._inputs:
            rows = getattr(self.probe, split)
            self._inputs[split] = EvalInputs.from_rows(
                rows, self.cache, text_column=self.probe.text_column
            )
        max_length = int(model.config.text.max_length)
        features = fused_features(model, self._inputs[split], self.tokenizer, max_length)
        return features.float().cpu().numpy()

    def probe_accuracy(self, model: Any) -> float:
        """Logistic regression on the frozen fused features: val accuracy (val answers unseen
        in the probe's train rows count as wrong)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        assert self.probe is not None
        train_y = self.probe.train[self.probe.label_column].astype(str).to_numpy()
        val_y = self.probe.val[self.probe.label_column].astype(str).to_numpy()
        scaler = StandardScaler().fit(self._features(model, "train"))
        train_x = scaler.transform(self._features(model, "train"))
        val_x = scaler.transform(self._features(model, "val"))
        if len(set(train_y)) < 2:
            return float(np.mean(val_y == train_y[0]))
        regression = LogisticRegression(C=1.0, max_iter=300, tol=1e-3, random_state=self.seed)
        regression.fit(train_x, train_y)
        return float(np.mean(regression.predict(val_x) == val_y))


def watch_summary(history: list[Mapping[str, float]]) -> dict[str, Any]:
    """The best probe step and the last record of the watch history (for the manifest)."""
    scored = [r for r in history if PROBE_METRIC in r]
    if not scored:
        return {}
    # the first step reaching the best accuracy: the one PretrainWatch kept (strict gains only)
    best = max(scored, key=lambda r: (r[PROBE_METRIC], -r["step"]))
    return {"best_step": int(best["step"]), "best_probe_accuracy": float(best[PROBE_METRIC])}
