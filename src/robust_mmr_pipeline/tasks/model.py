"""TaskModel: a pre-trained (or freshly initialised) MMRModel backbone plus a task head.

Tasks
-----
``vqa`` / ``classification``
    ``logits = head(encode(x, q).fused)`` ``[B, C]``; loss = cross-entropy over the classes
    (``vqa`` may use M3AE's ``BCEWithLogits(logits, one_hot) · C`` instead). Rows whose label is
    :data:`OOV_LABEL` (-100: an answer outside the TRAIN vocabulary) take no part in the loss;
    the metrics count them as wrong.
``retrieval``
    No new head: the backbone's ITM head and contrastive embeddings are fine-tuned with
    ``L = w_itm · CE(ITM) + w_con · InfoNCE``. InfoNCE is symmetric over the batch with the
    backbone's learnable temperature (a task-owned one, initialised at
    ``objectives.temperature_init``, when the backbone has no GLA projections). Pairs sharing an
    image (``group_ids``) or an identical text (``text_group_ids``) describe each other and are
    never used as each other's negatives. ITM: the ``B`` aligned pairs are positives; each
    text paired with another image gives ``B`` negatives, the image drawn ∝ softmax of the
    similarity (a hard negative) with probability ``hard_negative_prob``, else uniformly (an
    easy one: full cross-encoder ranking scores every candidate, so the head must also see
    easy negatives). The fusion layers run on the once-encoded streams
    (``MMRModel.embed_images`` / ``embed_texts`` / ``fuse``).

``forward(batch, progress)`` returns :class:`TaskOutput` (``.loss``, ``.losses``,
``.metrics``, ``.logits``), so :func:`robust_mmr_pipeline.engine.train` trains it like the
pre-training model; ``predict(batch)`` returns the logits only. A TaskModel checkpoints through
the engine (``model.json`` holds :class:`TaskConfig`, backbone config included) and
:func:`robust_mmr_pipeline.engine.load_model` rebuilds it (the class is registered).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_mmr_pipeline.engine.checkpoint import load_model
from robust_mmr_pipeline.engine.optim import no_weight_decay
from robust_mmr_pipeline.engine.registry import register_model_class
from robust_mmr_pipeline.model import MMRModel, ModelConfig
from robust_mmr_pipeline.tasks.config import TaskConfig, TaskConfigError, TaskOptions
from robust_mmr_pipeline.tasks.heads import ClassifierHead
from robust_mmr_pipeline.tasks.metrics import OOV_LABEL
from robust_mmr_pipeline.tasks.registry import CLASSIFICATION_TASKS, TASK_SPECS, TASKS

# Pre-training-only parts of MMRModel, removed from a task model's backbone (unless kept).
PRETRAINING_ONLY: tuple[str, ...] = ("mim_decoder", "mlm_head", "dc_head", "mr_head")
# Parts only retrieval uses (ITM re-ranking and contrastive first stage).
RETRIEVAL_PARTS: tuple[str, ...] = ("itm_head", "image_contrastive", "text_contrastive")


@dataclass
class TaskOutput:
    """What one task forward gives the engine.

    ``loss`` scalar; ``losses`` detached scalars per term; ``metrics`` floats (batch accuracy);
    ``logits`` ``[B, C]`` (classifier) or ``[B, 2]`` (retrieval: ITM of the aligned pairs).
    """

    loss: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    logits: Tensor | None = None


def _prune_backbone(backbone: MMRModel, task: str) -> tuple[str, ...]:
    """Drop the backbone's sub-modules the task never uses; returns their names."""
    ranks = TASK_SPECS[task].ranks
    names = list(PRETRAINING_ONLY)
    if not ranks:
        names.extend(RETRIEVAL_PARTS)
    removed = []
    for name in names:
        if getattr(backbone, name, None) is not None:
            setattr(backbone, name, None)
            removed.append(name)
    if not ranks and isinstance(getattr(backbone, "logit_scale", None), nn.Parameter):
        backbone.logit_scale = None
        removed.append("logit_scale")
    return tuple(removed)


@register_model_class
class TaskModel(nn.Module):
    """``backbone`` (MMRModel) + ``head`` for ``task`` (see the module docstring).

    Args:
        backbone: the MMRModel (pre-trained or from scratch); pre-training-only heads are
            removed from it unless ``options.keep_pretraining_heads``.
        head: a :class:`ClassifierHead` over the fused feature for ``vqa`` / ``classification``;
            None for ``retrieval``.
        task: ``"vqa"``, ``"classification"`` or ``"retrieval"``.
        label_names: class names in index order (answer vocabulary / labels); optional.
        options: :class:`TaskOptions` (losses, lr multipliers).

    Batch keys: ``pixel_values`` float ``[B, C, H, W]`` in [0, 1], ``input_ids`` /
    ``attention_mask`` long ``[B, L]``; ``labels`` long ``[B]`` (classifier tasks, -100 =
    out of vocabulary); optional ``group_ids`` / ``text_group_ids`` long ``[B]`` (retrieval:
    same image / same text).
    """

    config_class = TaskConfig

    def __init__(
        self,
        backbone: MMRModel,
        head: ClassifierHead | None,
        task: str,
        *,
        label_names: Sequence[str] = (),
        options: TaskOptions | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise TaskConfigError(f"task must be one of {TASKS}, got {task!r}")
        fused_dim = 2 * backbone.config.fusion.hidden_size
        if task in CLASSIFICATION_TASKS:
            if not isinstance(head, ClassifierHead):
                raise TaskConfigError(f"task {task!r} needs a ClassifierHead, got {head!r}")
            if head.in_dim != fused_dim:
                raise TaskConfigError(
                    f"head.in_dim={head.in_dim} but the backbone's fused feature has "
                    f"{fused_dim} dims (2 x fusion.hidden_size)"
                )
        elif head is not None:
            raise TaskConfigError("task 'retrieval' uses the backbone's ITM head; pass head=None")
        self.task = task
        self.options = options if options is not None else TaskOptions()
        self.label_names = tuple(str(n) for n in label_names)
        self.backbone = backbone
        self.head = head
        self.removed_parts: tuple[str, ...] = ()
        if not self.options.keep_pretraining_heads:
            self.removed_parts = _prune_backbone(backbone, task)
        self.logit_scale: nn.Parameter | None = None
        if TASK_SPECS[task].ranks:
            if getattr(backbone, "itm_head", None) is None:
                raise TaskConfigError("task 'retrieval' needs a backbone with an ITM head")
            if not backbone.has_contrastive:
                init = backbone.config.objectives.temperature_init
                self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init)))
        self.config.validate()

    # ------------------------------------------------------------------ construction
    @property
    def num_classes(self) -> int:
        return self.head.num_classes if self.head is not None else 0

    @property
    def config(self) -> TaskConfig:
        """The :class:`TaskConfig` that rebuilds this model (saved in ``model.json``)."""
        head = self.head
        return TaskConfig(
            task=self.task,  # type: ignore[arg-type]
            backbone=self.backbone.config,
            num_classes=self.num_classes,
            label_names=self.label_names,
            head_hidden_dim=head.hidden_dim if head is not None else None,
            head_dropout=head.dropout_p if head is not None else 0.0,
            options=self.options,
        )

    @classmethod
    def from_config(cls, config: TaskConfig | dict[str, Any]) -> TaskModel:
        """A freshly initialised model for ``config`` (a :class:`TaskConfig` or its dict)."""
        if not isinstance(config, TaskConfig):
            config = TaskConfig.from_dict(dict(config))
        return cls.from_backbone(
            MMRModel(config.backbone),
            config.task,
            config.num_classes,
            label_names=config.label_names,
            head_hidden_dim=config.head_hidden_dim,
            head_dropout=config.head_dropout,
            options=config.options,
        )

    @classmethod
    def from_backbone(
        cls,
        backbone: MMRModel,
        task: str,
        num_classes: int = 0,
        *,
        label_names: Sequence[str] = (),
        head_hidden_dim: int | None = None,
        head_dropout: float = 0.0,
        options: TaskOptions | None = None,
    ) -> TaskModel:
        """Wrap ``backbone`` with a new head for ``task`` (``num_classes`` 0 for retrieval)."""
        if label_names and not num_classes:
            num_classes = len(label_names)
        head = None
        if task in CLASSIFICATION_TASKS:
            if num_classes < 1:
                raise TaskConfigError(f"task {task!r} needs num_classes >= 1")
            head = ClassifierHead(
                2 * backbone.config.fusion.hidden_size, num_classes, head_hidden_dim, head_dropout
            )
        return cls(backbone, head, task, label_names=label_names, options=options)

    @classmethod
    def from_scratch(
        cls,
        model_config: ModelConfig,
        task: str,
        num_classes: int = 0,
        **kwargs: Any,
    ) -> TaskModel:
        """No-pretraining baseline: a randomly initialised backbone (see :meth:`from_backbone`)."""
        return cls.from_backbone(MMRModel(model_config), task, num_classes, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        task: str,
        num_classes: int = 0,
        *,
        device: str | torch.device = "cpu",
        **kwargs: Any,
    ) -> tuple[TaskModel, Any]:
        """Backbone from a pre-training checkpoint (``engine.load_model``) + a new head.

        The checkpoint may hold an MMRModel or a TaskModel (its backbone is taken, e.g. to
        fine-tune a retrieval model further for VQA). Returns ``(model, tokenizer_or_None)``;
        the model is in train mode on ``device``. Keywords as :meth:`from_backbone`.
        """
        loaded, tokenizer, _info = load_model(checkpoint_dir, device=device)
        backbone = loaded.backbone if isinstance(loaded, TaskModel) else loaded
        if not isinstance(backbone, MMRModel):
            raise TypeError(
                f"{checkpoint_dir} holds a {type(loaded).__name__}, not an MMRModel / TaskModel"
            )
        model = cls.from_backbone(backbone, task, num_classes, **kwargs).to(device)
        model.train()
        return model, tokenizer

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, Any], progress: float = 1.0) -> TaskOutput:
        """Task loss of one batch (``progress`` is accepted for the engine; unused)."""
        if TASK_SPECS[self.task].ranks:
            return self._retrieval_step(batch)
        logits = self.predict(batch)
        labels = batch["labels"].long()
        loss = self._classification_loss(logits, labels)
        valid = labels != OOV_LABEL
        correct = (logits.detach().argmax(-1) == labels) & valid
        metrics = {"acc": float(correct.sum()) / max(int(labels.numel()), 1)}
        return TaskOutput(loss, {self.task: loss.detach()}, metrics, logits)

    def predict(self, batch: dict[str, Any]) -> Tensor:
        """Logits: ``[B, C]`` for vqa / classification, ITM ``[B, 2]`` for retrieval pairs."""
        pixel_values = batch["pixel_values"]
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        fused = self.backbone.encode(pixel_values, input_ids, attention_mask).fused
        return self.head_logits(fused)

    def head_logits(self, fused: Tensor) -> Tensor:
        """The task head on fused features ``[B, 2d]``: ``[B, C]`` (ITM ``[B, 2]`` for
        retrieval); with ``MMRModel.fuse`` it scores split-encoded inputs (tasks/inputs.py)."""
        if self.head is None:
            return self.backbone.itm_logits(fused)
        return self.head(fused)

    def _classification_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        valid = labels != OOV_LABEL
        if not bool(valid.any()):
            return logits.sum() * 0.0  # keeps the graph: every parameter gets a (zero) grad
        logits, labels = logits[valid].float(), labels[valid]
        if TASK_SPECS[self.task].answers and self.options.vqa_loss == "bce":
            target = F.one_hot(labels, logits.shape[-1]).float()
            return F.binary_cross_entropy_with_logits(logits, target) * logits.shape[-1]
        return F.cross_entropy(logits, labels, label_smoothing=self.options.label_smoothing)

    def _logit_scale(self) -> Tensor:
        t_min = self.backbone.config.objectives.temperature_min
        raw = self.logit_scale if self.logit_scale is not None else self.backbone.logit_scale
        return raw.exp().clamp(max=1.0 / t_min)

    def _retrieval_step(self, batch: dict[str, Any]) -> TaskOutput:
        backbone, options = self.backbone, self.options
        pixel_values = batch["pixel_values"]
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        b, device = input_ids.shape[0], input_ids.device
        v0, image_emb = backbone.embed_images(pixel_values)
        t0, text_emb = backbone.embed_texts(input_ids, attention_mask)
        # blocked[t, i]: image i (or its own text) also describes text t -> not a negative
        blocked = torch.zeros(b, b, dtype=torch.bool, device=device)
        for key in ("group_ids", "text_group_ids"):
            ids = batch.get(key)
            ids = torch.arange(b, device=device) if ids is None else ids.to(device).long()
            blocked |= ids[:, None] == ids[None, :]
        eye = torch.eye(b, dtype=torch.bool, device=device)
        scale = self._logit_scale()
        sim = scale * text_emb.float() @ image_emb.float().t()  # [B, B]
        losses: dict[str, Tensor] = {}
        metrics: dict[str, float] = {"temperature": float(1.0 / scale.detach())}
        total = sim.new_zeros(())
        if options.contrastive_weight > 0:
            masked = sim.masked_fill(blocked & ~eye, float("-inf"))
            target = torch.arange(b, device=device)
            con = 0.5 * (F.cross_entropy(masked, target) + F.cross_entropy(masked.t(), target))
            losses["contrastive"] = con.detach()
            total = total + options.contrastive_weight * con

        fused = backbone.fuse(v0, t0, attention_mask)
        is_match = torch.ones(b, dtype=torch.long, device=device)
        candidates = ~blocked  # images that are true negatives for each text
        has_negative = candidates.any(dim=1)
        if bool(has_negative.any()):
            rows = has_negative.nonzero()[:, 0]
            allowed = candidates[rows].float()
            hard = (torch.softmax(sim.detach()[rows], dim=1) + 1e-6) * allowed
            pick_hard = torch.rand(len(rows), 1, device=device) < options.hard_negative_prob
            weights = torch.where(pick_hard, hard, allowed)
            negative = torch.multinomial(weights, 1)[:, 0]
            fused_neg = backbone.fuse(v0[negative], t0[rows], attention_mask[rows])
            fused = torch.cat([fused, fused_neg])
            is_match = torch.cat([is_match, torch.zeros_like(rows)])
        logits = backbone.itm_logits(fused)
        itm = F.cross_entropy(logits.float(), is_match)
        losses["itm"] = itm.detach()
        metrics["itm_acc"] = float((logits.detach().argmax(-1) == is_match).float().mean())
        total = total + options.itm_weight * itm
        return TaskOutput(total, losses, metrics, logits[:b])

    # ------------------------------------------------------------------ optimisation
    def task_head_parameters(self) -> list[nn.Parameter]:
        """Parameters trained at ``lr × head_lr_mult``: the classifier head, or for retrieval
        the ITM head, the contrastive projections and the temperature."""
        params: list[nn.Parameter] = []
        if self.head is not None:
            params.extend(self.head.parameters())
        if TASK_SPECS[self.task].ranks:
            for name in RETRIEVAL_PARTS:
                module = getattr(self.backbone, name, None)
                if module is not None:
                    params.extend(module.parameters())
            for scale in (self.logit_scale, getattr(self.backbone, "logit_scale", None)):
                if isinstance(scale, nn.Parameter):
                    params.append(scale)
        return params

    def param_groups(
        self,
        weight_decay: float,
        head_lr_mult: float = 1.0,
        base_lr: float | None = None,
        layer_decay: float = 1.0,
    ) -> list[dict[str, Any]]:
        """AdamW groups: backbone encoders (lr), fusion (lr × ``options.fusion_lr_mult``),
        task head (lr × ``head_lr_mult``); ``layer_decay`` < 1 scales the backbone's groups
        by depth (:meth:`MMRModel.param_groups`), the head sitting on top at full rate.

        The backbone's own :meth:`MMRModel.param_groups` decides weight decay for its
        parameters; in the head, 1-D parameters (biases, norms, temperature) get none. Each
        group has ``lr_mult``, ``weight_decay``, ``name`` (and ``lr`` when ``base_lr`` given).
        """
        head_ids = {id(p) for p in self.task_head_parameters()}
        groups: list[dict[str, Any]] = []
        for raw in self.backbone.param_groups(
            weight_decay, self.options.fusion_lr_mult, layer_decay=layer_decay
        ):
            params = [p for p in raw["params"] if id(p) not in head_ids and p.requires_grad]
            if not params:
                continue
            name = str(raw.get("name", "backbone"))
            group = {
                "params": params,
                "weight_decay": raw.get("weight_decay", weight_decay),
                "lr_mult": float(raw.get("lr_mult", 1.0)),
                "name": name.replace("head_", "fusion_", 1) if name.startswith("head_") else name,
            }
            groups.append(group)
        head = [p for p in self.task_head_parameters() if p.requires_grad]
        decay = [p for p in head if not no_weight_decay(p)]
        no_decay = [p for p in head if no_weight_decay(p)]
        head_groups = (
            (decay, weight_decay, "task_head_decay"),
            (no_decay, 0.0, "task_head_no_decay"),
        )
        for params, wd, name in head_groups:
            if params:
                groups.append(
                    {"params": params, "weight_decay": wd, "lr_mult": head_lr_mult, "name": name}
                )
        if base_lr is not None:
            for group in groups:
                group["lr"] = base_lr * group["lr_mult"]
        return groups
