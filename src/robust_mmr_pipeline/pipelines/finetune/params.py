"""Typed parameters of the finetune pipeline (``params:finetune``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASK_NAMES = ("vqa", "classification", "retrieval")


@dataclass
class FinetuneParams:
    """Fine-tuning of every task in ``tasks`` on ``protocol``'s train split, selected on val.

    ``from_scratch``: the no-pretraining baseline (the pre-trained architecture, random
    weights). ``reference_from_scratch``: also fine-tune every task from scratch with the same
    recipe, as the reference the evaluation report puts beside the model. ``model`` overrides
    fields of that architecture (from-scratch runs only).
    ``trainer`` holds TrainerConfig fields shared by the tasks, ``task_trainer`` per-task
    overrides; ``task_options`` per task: TaskOptions fields plus head_hidden_dim,
    head_dropout, answer_min_count, retrieval_k, eval_batch_size.
    """

    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))
    from_scratch: bool = False
    reference_from_scratch: bool = True
    protocol: str = "in_domain"
    text_kinds: list[str] = field(default_factory=lambda: ["report", "caption"])
    model: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    task_trainer: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    output_dir: str = "data/06_models/finetune"
    log_to_mlflow: bool = True

    def __post_init__(self) -> None:
        from robust_mmr_pipeline.engine import TrainerConfig
        from robust_mmr_pipeline.recipes.finetune import split_task_options

        unknown = sorted(set(self.tasks) - set(TASK_NAMES))
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be a non-empty subset of {TASK_NAMES}, got {self.tasks}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks are listed twice: {self.tasks}")
        for mapping, what in ((self.task_trainer, "task_trainer"), (self.task_options, "options")):
            bad = sorted(set(mapping) - set(TASK_NAMES))
            if bad:
                raise ValueError(f"{what} names unknown task(s) {bad}; tasks: {TASK_NAMES}")
        for task in self.tasks:
            self.trainer_for(task)
            split_task_options(self.task_options.get(task))
        # Keep the user's keys, with the values as the trainer reads them (e.g. a YAML `no`).
        shared = TrainerConfig.from_dict({**self.trainer, "output_dir": self.output_dir})
        self.trainer = {key: shared.to_dict()[key] for key in self.trainer}

    def trainer_for(self, task: str) -> dict[str, Any]:
        """The TrainerConfig fields of ``task`` (validated), without ``output_dir``."""
        from robust_mmr_pipeline.engine import TrainerConfig

        merged = {**self.trainer, **self.task_trainer.get(task, {})}
        TrainerConfig.from_dict({**merged, "output_dir": self.task_dir(task)})
        return merged

    def task_dir(self, task: str) -> str:
        return f"{self.output_dir}/{task}"
