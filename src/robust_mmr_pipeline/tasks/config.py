"""Typed, JSON-safe configuration of a downstream task model.

A :class:`TaskConfig` holds everything needed to rebuild a
:class:`~robust_mmr_pipeline.tasks.model.TaskModel` from a checkpoint alone: the task, the
number of classes and their names (the TRAIN answer / label vocabulary, in class order), the
head's shape, the training options and the full backbone :class:`ModelConfig`. ``to_dict()``
gives plain JSON types; ``from_dict()`` rebuilds and validates (unknown keys are errors).
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from robust_mmr_pipeline.model import ModelConfig
from robust_mmr_pipeline.tasks.registry import (
    CLASSIFICATION_TASKS,
    TASK_SPECS,
    TASKS,
    TaskName,
)
from robust_mmr_pipeline.typed_config import ParameterError, config, parse

# The one config error type under the task's name (callers catch either).
TaskConfigError = ParameterError

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


@config
class TaskOptions:
    """Training options of a task model (all have defaults; JSON-safe).

    * ``vqa_loss``: ``"ce"`` softmax cross-entropy over the answer classes (our default: one
      answer per question in VQA-RAD / SLAKE), or ``"bce"`` M3AE's
      ``BCEWithLogits(logits, one_hot) * C``. Classification always uses cross-entropy.
    * ``label_smoothing``: of the cross-entropy (``ce`` and classification).
    * ``itm_weight`` / ``contrastive_weight``: retrieval fine-tuning loss
      ``L = w_itm · L_ITM + w_con · L_InfoNCE``.
    * ``hard_negative_prob``: share of ITM negatives drawn ∝ softmax of the contrastive
      similarity (hard); the others are uniform over the batch (easy).
    * ``fusion_lr_mult``: learning-rate multiplier of the backbone's fusion layers and poolers
      (its unimodal encoders always get the base lr; the task head gets ``head_lr_mult``).
    * ``keep_pretraining_heads``: keep the backbone's pre-training heads (MIM decoder, MLM head,
      robust consistency heads, and for VQA / classification also ITM and contrastive projections).
      By default they are removed: they take no part in the task loss (no unused parameters
      under DDP, smaller checkpoints).
    """

    vqa_loss: Literal["ce", "bce"] = "ce"
    label_smoothing: Fraction = 0.0
    itm_weight: Weight = 1.0
    contrastive_weight: Weight = 1.0
    hard_negative_prob: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    fusion_lr_mult: Weight = 1.0
    keep_pretraining_heads: bool = False


@config
class TaskRunOptions(TaskOptions):
    """``finetune.task_options.<task>``: the :class:`TaskOptions` plus how the task is run.

    ``head_hidden_dim`` / ``head_dropout``: the classifier head (None: the fused width, as
    M3AE); ``answer_min_count``: VQA answers seen fewer times in train are out of vocabulary;
    ``retrieval_k``: the contrastive top-k re-ranked by the ITM head; ``eval_batch_size``.
    """

    head_hidden_dim: Annotated[int, Field(ge=1)] | None = None
    head_dropout: Fraction = 0.0
    answer_min_count: Annotated[int, Field(ge=0)] = 1
    retrieval_k: Annotated[int, Field(ge=1)] = 16
    eval_batch_size: Annotated[int, Field(ge=1)] = 64

    def split(self) -> tuple[TaskOptions, dict[str, Any]]:
        """``(TaskOptions, the run settings)``: what the model keeps and what the recipe uses."""
        values = dataclasses.asdict(self)
        kept = {f.name for f in dataclasses.fields(TaskOptions)}
        return (
            TaskOptions(**{k: v for k, v in values.items() if k in kept}),
            {k: v for k, v in values.items() if k not in kept},
        )


@config
class TaskConfig:
    """A task model: task, classes, head shape, options and the backbone configuration.

    ``num_classes`` is 0 for retrieval (no classifier head) and >= 1 otherwise.
    ``label_names`` (optional, else empty) names the classes in index order: the TRAIN answer
    vocabulary for VQA, the label set for classification. ``head_hidden_dim`` None means the
    fused width (M3AE: ``Linear(d, d)``).
    """

    task: TaskName
    backbone: ModelConfig
    num_classes: int = 0
    label_names: Annotated[
        tuple[str, ...], BeforeValidator(lambda names: tuple(str(n) for n in names))
    ] = ()
    head_hidden_dim: int | None = None
    head_dropout: float = 0.0
    options: TaskOptions = field(default_factory=TaskOptions)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def fused_dim(self) -> int:
        """Width of the backbone's fused feature ``[t_pool ; v_pool]``: ``2 d``."""
        return 2 * self.backbone.fusion.hidden_size

    def validate(self) -> None:
        """Raise :class:`TaskConfigError` listing every invalid field."""
        errors: list[str] = []
        if self.task not in TASKS:
            errors.append(f"task must be one of {TASKS}, got {self.task!r}")
        if not isinstance(self.backbone, ModelConfig):
            errors.append(f"backbone must be a ModelConfig, got {type(self.backbone).__name__}")
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            errors.append(f"num_classes must be an int >= 0, got {self.num_classes!r}")
        elif self.task in CLASSIFICATION_TASKS and self.num_classes < 1:
            errors.append(f"task {self.task!r} needs num_classes >= 1, got {self.num_classes}")
        elif self.task in TASKS and TASK_SPECS[self.task].ranks and self.num_classes != 0:
            errors.append(
                f"task 'retrieval' has no classes; num_classes must be 0, got {self.num_classes}"
            )
        if self.label_names and len(self.label_names) != self.num_classes:
            errors.append(
                f"label_names has {len(self.label_names)} names for num_classes={self.num_classes}"
            )
        if len(set(self.label_names)) != len(self.label_names):
            errors.append("label_names must be unique")
        if self.head_hidden_dim is not None and (
            not isinstance(self.head_hidden_dim, int) or self.head_hidden_dim < 1
        ):
            errors.append(
                f"head_hidden_dim must be a positive int or null, got {self.head_hidden_dim!r}"
            )
        if not 0.0 <= self.head_dropout < 1.0:
            errors.append(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        if (
            self.task in TASKS
            and TASK_SPECS[self.task].ranks
            and isinstance(self.backbone, ModelConfig)
            and not self.backbone.objectives.itm
        ):
            errors.append(
                "task 'retrieval' re-ranks with the ITM head: the backbone needs "
                "objectives.itm enabled"
            )
        if errors:
            raise TaskConfigError("invalid task config: " + "; ".join(errors))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (the backbone as its own ``to_dict()``)."""
        return {
            "task": self.task,
            "backbone": self.backbone.to_dict(),
            "num_classes": self.num_classes,
            "label_names": list(self.label_names),
            "head_hidden_dim": self.head_hidden_dim,
            "head_dropout": self.head_dropout,
            "options": dataclasses.asdict(self.options),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`TaskConfigError`."""
        return parse(cls, data, "task", fix="Fix: correct it (the fields are in tasks/config.py).")
