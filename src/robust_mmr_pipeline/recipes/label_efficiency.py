"""Label efficiency: every model at every label budget, on the same clean test rows.

At each budget of the finetune manifests (``label_budgets``: nested subsets of the labeled train
rows, tasks/budgets.py) and for each task fine-tuned there, on the clean in-domain and
cross-domain test splits:

* ``ours``: the pre-trained backbone fine-tuned with the pre-trained recipe (LP-FT, layer-wise
  decay; finetune manifest);
* ``from_scratch``: the same architecture from random weights, with its own recipe;
* ``plain_ft``: the pre-trained backbone fine-tuned with the from-scratch recipe (where the
  plain-FT reference ran at that budget);
* ``frozen_backbone``: a linear probe (logistic regression, ``C`` on the val rows) on the
  frozen pre-trained backbone's fused feature, fitted on the budget's rows (the LP of LP-FT);
* ``frozen_random``: the same probe on a randomly initialised backbone of the same
  architecture: what the probe gets from architecture alone.

Paired bootstrap differences over the same test items: ``ours`` − ``from_scratch``, ``ours`` −
``plain_ft`` and ``frozen_backbone`` − ``frozen_random`` (the gain the pre-trained features
bring before any fine-tuning).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from robust_mmr_pipeline.recipes.evaluate import (
    FROM_SCRATCH,
    FROZEN,
    TaskEvaluator,
    _LinearProbeScorer,
)
from robust_mmr_pipeline.recipes.evaluation_rows import _ci, _mean_difference
from robust_mmr_pipeline.recipes.evaluation_run import _score_all
from robust_mmr_pipeline.recipes.finetune import task_rows
from robust_mmr_pipeline.reporting.results import OURS
from robust_mmr_pipeline.tasks.registry import MAIN_METRIC, task_spec

logger = logging.getLogger(__name__)

PLAIN_FT = "plain_ft"
FROZEN_RANDOM = "frozen_random"
LABEL_EFFICIENCY_COLUMNS: tuple[str, ...] = (
    "task",
    "budget",
    "fraction",
    "train_rows",
    "condition",
    "model",
    "metric",
    "value",
    "ci_low",
    "ci_high",
)
# (first, second): the paired differences reported, each where both scorers exist
COMPARISONS: tuple[tuple[str, str], ...] = (
    (OURS, FROM_SCRATCH),
    (OURS, PLAIN_FT),
    (FROZEN, FROZEN_RANDOM),
)


def _random_backbone(checkpoint: str, seed: int) -> tuple[Any, Any]:
    """A randomly initialised backbone of the checkpoint's architecture, with its tokenizer."""
    import torch

    from robust_mmr_pipeline.engine import load_model
    from robust_mmr_pipeline.model import MMRModel

    trained, tokenizer, _info = load_model(checkpoint)
    torch.manual_seed(seed)
    return MMRModel(trained.config).eval(), tokenizer


def evaluate_label_budgets(
    manifests: Mapping[str, Mapping[str, Any]],
    tables: Mapping[str, pd.DataFrame],
    cache_dir: str,
    params: Any,
    backbone_checkpoint: str | None,
    budget_seed: int = 0,
) -> pd.DataFrame:
    """:data:`LABEL_EFFICIENCY_COLUMNS` rows for every budget and task of the ``ours`` manifest.

    ``manifests``: scorer name (``ours``, ``from_scratch``, ``plain_ft``) -> finetune manifest
    (with ``label_budgets``). ``params``: EvaluationParams (protocols, batch size, bootstrap).
    """
    from robust_mmr_pipeline.engine import ImageCache, load_model
    from robust_mmr_pipeline.tasks.budgets import budget_rows

    cache = ImageCache(cache_dir)
    ours_budgets = manifests[OURS].get("label_budgets", {})
    protocol = manifests[OURS].get("protocol", params.in_domain_protocol)
    backbones = None
    if backbone_checkpoint:
        pretrained, tokenizer, _info = load_model(backbone_checkpoint)
        random_init, _ = _random_backbone(backbone_checkpoint, params.seed)
        backbones = {
            FROZEN: (pretrained.eval(), tokenizer),
            FROZEN_RANDOM: (random_init, tokenizer),
        }
    rows: list[dict[str, Any]] = []
    for label, budget in sorted(ours_budgets.items(), key=lambda kv: kv[1]["fraction"]):
        fraction = float(budget["fraction"])
        for task in budget["tasks"]:
            if not task_spec(task).classifies:
                continue  # budgets are a classifier-task protocol (VQA, classification)
            evaluators = {
                name: TaskEvaluator(
                    task,
                    manifest["label_budgets"][label]["tasks"][task]["checkpoint"],
                    cache,
                    batch_size=params.batch_size,
                    n_boot=params.n_boot,
                    seed=params.seed,
                )
                for name, manifest in manifests.items()
                if task in manifest.get("label_budgets", {}).get(label, {}).get("tasks", {})
            }
            table = tables[task]
            train = budget_rows(task_rows(table, protocol, "train"), fraction, budget_seed)
            val = task_rows(table, protocol, "val")
            scorers = []
            # LP-FT of this budget saved the pre-trained backbone's train features there
            shared = ours_budgets[label]["tasks"].get(task, {}).get("checkpoint")
            if backbones is not None:
                for name, (backbone, tokenizer) in backbones.items():
                    probe = _LinearProbeScorer(
                        task, backbone, tokenizer, evaluators[OURS], train, val, params.seed, name,
                        features_from=shared if name == FROZEN else None,
                    )  # fmt: skip
                    scorers.append(probe)
            for condition, test_protocol in (
                ("in_domain", params.in_domain_protocol),
                ("cross_domain", params.cross_domain_protocol),
            ):
                if not test_protocol or test_protocol not in set(table["protocol"]):
                    continue
                test = task_rows(table, test_protocol, "test")
                if test.empty:
                    continue
                outcomes = _score_all(task, evaluators, scorers, test, None)
                rows += _budget_rows(task, label, fraction, len(train), condition, outcomes, params)
        logger.info("Label budget %s evaluated (%s).", label, sorted(budget["tasks"]))
    return pd.DataFrame(rows, columns=list(LABEL_EFFICIENCY_COLUMNS))


def _budget_rows(
    task: str,
    label: str,
    fraction: float,
    train_rows: int,
    condition: str,
    outcomes: Mapping[str, tuple[Mapping[str, float], Any]],
    params: Any,
) -> list[dict[str, Any]]:
    metric = MAIN_METRIC[task]
    common = {
        "task": task,
        "budget": label,
        "fraction": fraction,
        "train_rows": train_rows,
        "condition": condition,
    }
    rows = []
    for name, (metrics, _items) in outcomes.items():
        rows.append(
            {
                **common,
                "model": name,
                "metric": metric,
                "value": float(metrics[metric]),
                "ci_low": float(metrics[f"{metric}_ci_low"]),
                "ci_high": float(metrics[f"{metric}_ci_high"]),
            }
        )
    for first, second in COMPARISONS:
        if first in outcomes and second in outcomes:
            value, low, high = _ci(
                _mean_difference,
                outcomes[first][1].main_outcome(),
                outcomes[second][1].main_outcome(),
                n_boot=params.n_boot,
                seed=params.seed,
            )
            rows.append(
                {
                    **common,
                    "model": first,
                    "metric": f"diff_{metric}_vs_{second}",
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return rows
