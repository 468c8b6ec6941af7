"""Typed parameters of the finetune pipeline (``params:finetune``)."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from robust_mmr_pipeline.params import ModelOverrides, TaskOptionsOverrides, TrainerOverrides
from robust_mmr_pipeline.tasks.registry import CLASSIFICATION_TASKS, TASKS, TaskName
from robust_mmr_pipeline.typed_config import config

FULL_BUDGET = 1.0


@config
class LabelBudget:
    """One label budget: ``fraction`` of the labeled train rows (nested subsets, the same rows
    for every model; tasks/budgets.py) and ``trainer`` overrides for it (a tenth of the rows
    needs fewer steps)."""

    fraction: float
    trainer: TrainerOverrides = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= FULL_BUDGET:
            raise ValueError(f"a label budget fraction must lie in (0, 1], got {self.fraction}")


@config
class PretrainedRecipe:
    """How a PRE-TRAINED backbone is fine-tuned (the from-scratch reference keeps ``trainer``).

    ``trainer`` overrides ``finetune.trainer`` (a lower lr, ``layer_decay`` for layer-wise lr
    decay); ``linear_probe_epochs`` > 0 is LP-FT: the head is fitted on frozen features for that
    many epochs first, at ``linear_probe_lr`` (0: plain fine-tuning). ``plain_ft_reference``:
    also fine-tune the pre-trained backbone with the from-scratch recipe (the "plain FT" row of
    the report) at the budgets listed there. ``wise_ft_alphas``: WiSE-FT, the fine-tuned
    weights interpolated back towards the LP start at these alphas, the best on validation kept
    (the fine-tuned model, alpha 1, always competes; [] turns it off).
    """

    trainer: TrainerOverrides = field(default_factory=dict)
    linear_probe_epochs: int = 0
    linear_probe_lr: float = 1e-3
    plain_ft_reference: list[float] = field(default_factory=list)
    wise_ft_alphas: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if any(not 0.0 <= a <= 1.0 for a in self.wise_ft_alphas):
            raise ValueError(f"wise_ft_alphas must lie in [0, 1], got {self.wise_ft_alphas}")
        if self.linear_probe_epochs < 0:
            raise ValueError(f"linear_probe_epochs must be >= 0, got {self.linear_probe_epochs}")
        if not self.linear_probe_lr > 0:
            raise ValueError(f"linear_probe_lr must be > 0, got {self.linear_probe_lr}")


@config
class FinetuneParams:
    """Fine-tuning of every task in ``tasks`` on ``protocol``'s train split, selected on val.

    ``from_scratch``: the no-pretraining baseline (the pre-trained architecture, random
    weights). ``reference_from_scratch``: also fine-tune every task from scratch with the same
    recipe, as the reference the evaluation report puts beside the model. ``model`` overrides
    fields of that architecture (from-scratch runs only).
    ``trainer`` holds TrainerConfig fields shared by the tasks (the from-scratch recipe),
    ``pretrained`` how a pre-trained backbone is fine-tuned instead, ``task_trainer`` per-task
    overrides; ``task_options`` per task: TaskOptions fields plus head_hidden_dim,
    head_dropout, answer_min_count, retrieval_k, eval_batch_size.

    ``label_budgets``: every model is fine-tuned at each budget (fractions of the labeled train
    rows, nested, drawn by image with ``budget_seed``) for the ``budget_tasks``; the other tasks
    and the main report rows use the full budget (always run).
    """

    tasks: list[TaskName] = field(default_factory=lambda: list(TASKS))
    from_scratch: bool = False
    reference_from_scratch: bool = True
    protocol: str = "in_domain"
    text_kinds: list[str] = field(default_factory=lambda: ["report", "caption"])
    model: ModelOverrides = field(default_factory=dict)
    trainer: TrainerOverrides = field(default_factory=dict)
    task_trainer: dict[TaskName, TrainerOverrides] = field(default_factory=dict)
    task_options: dict[TaskName, TaskOptionsOverrides] = field(default_factory=dict)
    output_dir: str = "data/06_models/finetune"
    log_to_mlflow: bool = True
    pretrained: PretrainedRecipe = field(default_factory=PretrainedRecipe)
    label_budgets: list[LabelBudget] = field(default_factory=list)
    budget_tasks: list[TaskName] = field(default_factory=lambda: list(CLASSIFICATION_TASKS))
    budget_seed: int = 0

    def __post_init__(self) -> None:
        # Keys and types are checked by the field types; here: how the values go together.
        from robust_mmr_pipeline.recipes.finetune import split_task_options

        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must be a non-empty list of distinct tasks, got {self.tasks}")
        fractions = [b.fraction for b in self.label_budgets]
        if len(set(fractions)) != len(fractions):
            raise ValueError(f"label_budgets repeat a fraction: {fractions}")
        for task in self.tasks:
            for budget in self.budgets_for(task):
                for pretrained in (True, False):
                    self.trainer_for(task, pretrained=pretrained, budget=budget)
            split_task_options(self.task_options.get(task), f"finetune.task_options.{task}")

    def budgets_for(self, task: str) -> list[float]:
        """The label budgets ``task`` is fine-tuned at, smallest first (always the full one)."""
        fractions = {FULL_BUDGET}
        if task in self.budget_tasks:
            fractions |= {b.fraction for b in self.label_budgets}
        return sorted(fractions)

    def trainer_for(
        self, task: str, *, pretrained: bool = False, budget: float = FULL_BUDGET
    ) -> dict[str, Any]:
        """The TrainerConfig fields (validated, without ``output_dir``) of ``task`` at ``budget``:
        ``trainer``, then ``pretrained.trainer`` for a pre-trained backbone, then
        ``task_trainer[task]``, then the budget's overrides."""
        from robust_mmr_pipeline.engine import TrainerConfig

        overrides = {b.fraction: b.trainer for b in self.label_budgets}
        merged = {
            **self.trainer,
            **(self.pretrained.trainer if pretrained else {}),
            **self.task_trainer.get(task, {}),
            **overrides.get(budget, {}),
        }
        TrainerConfig.from_dict({**merged, "output_dir": self.task_dir(task)}, "finetune.trainer")
        return merged

    def task_dir(self, task: str, budget: float = FULL_BUDGET) -> str:
        """Checkpoints of ``task``: ``<output_dir>/<task>`` at the full budget, else
        ``<output_dir>/budget_<percent>/<task>``."""
        if budget >= FULL_BUDGET:
            return f"{self.output_dir}/{task}"
        return f"{self.output_dir}/budget_{100 * budget:g}pct/{task}"
