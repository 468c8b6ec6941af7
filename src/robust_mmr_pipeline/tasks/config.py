"""Typed, JSON-safe configuration of a downstream task model.

A :class:`TaskConfig` holds everything needed to rebuild a
:class:`~robust_mmr_pipeline.tasks.model.TaskModel` from a checkpoint alone: the task, the
number of classes and their names (the TRAIN answer / label vocabulary, in class order), the
head's shape, the training options and the full backbone :class:`ModelConfig`. ``to_dict()``
gives plain JSON types; ``from_dict()`` rebuilds and validates (unknown keys are errors).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from robust_mmr_pipeline.model import ModelConfig
from robust_mmr_pipeline.tasks.registry import (
    CLASSIFICATION_TASKS,
    TASK_SPECS,
    TASKS,
    TaskName,
)

VQA_LOSSES: tuple[str, ...] = ("ce", "bce")


class TaskConfigError(ValueError):
    """A task configuration value is invalid; the message names the field(s)."""


@dataclass
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
    label_smoothing: float = 0.0
    itm_weight: float = 1.0
    contrastive_weight: float = 1.0
    hard_negative_prob: float = 0.5
    fusion_lr_mult: float = 1.0
    keep_pretraining_heads: bool = False

    def validate(self) -> list[str]:
        """Messages for every invalid field (empty when valid)."""
        errors = []
        if self.vqa_loss not in VQA_LOSSES:
            errors.append(f"options.vqa_loss must be one of {VQA_LOSSES}, got {self.vqa_loss!r}")
        if not 0.0 <= self.label_smoothing < 1.0:
            errors.append(f"options.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.hard_negative_prob <= 1.0:
            errors.append(
                f"options.hard_negative_prob must be in [0, 1], got {self.hard_negative_prob}"
            )
        for name in ("itm_weight", "contrastive_weight", "fusion_lr_mult"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                errors.append(f"options.{name} must be a finite number >= 0, got {value!r}")
        return errors


@dataclass
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
    label_names: tuple[str, ...] = ()
    head_hidden_dim: int | None = None
    head_dropout: float = 0.0
    options: TaskOptions = field(default_factory=TaskOptions)

    def __post_init__(self) -> None:
        self.label_names = tuple(str(n) for n in self.label_names)
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
        if not isinstance(self.options, TaskOptions):
            errors.append(f"options must be TaskOptions, got {type(self.options).__name__}")
        else:
            errors.extend(self.options.validate())
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
            raise TaskConfigError("invalid task config:\n  " + "\n  ".join(errors))

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
        if not isinstance(data, dict):
            raise TaskConfigError(f"task config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TaskConfigError(
                f"unknown key(s) {unknown} in task config; valid: {sorted(known)}"
            )
        if "task" not in data or "backbone" not in data:
            raise TaskConfigError("task config needs 'task' and 'backbone'")
        kwargs = dict(data)
        backbone = kwargs["backbone"]
        kwargs["backbone"] = (
            backbone if isinstance(backbone, ModelConfig) else ModelConfig.from_dict(backbone)
        )
        options = kwargs.get("options", {})
        if not isinstance(options, TaskOptions):
            option_names = {f.name for f in dataclasses.fields(TaskOptions)}
            bad = sorted(set(options) - option_names)
            if bad:
                raise TaskConfigError(
                    f"unknown key(s) {bad} in task options; valid: {sorted(option_names)}"
                )
            kwargs["options"] = TaskOptions(**options)
        kwargs["label_names"] = tuple(kwargs.get("label_names", ()))
        return cls(**kwargs)
