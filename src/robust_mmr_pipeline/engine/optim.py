"""AdamW parameter groups and the warmup + decay learning-rate schedule.

Parameter groups
----------------
When the model defines ``param_groups(weight_decay, head_lr_mult) -> list[dict]`` the engine uses
it. Each dict needs ``params``; the learning rate of a group is ``lr * group["lr_mult"]`` (also
accepted: ``lr_scale``; default 1.0), unless the group carries an absolute ``lr``. Other keys
(``weight_decay``, ``name``...) pass through to AdamW. Otherwise groups are made by name:

* backbone = names starting with one of ``TrainerConfig.backbone_prefixes`` -> ``lr``;
  everything else (heads, fusion) -> ``lr * head_lr_mult``. No prefixes: everything gets ``lr``.
* no weight decay for biases, every parameter with fewer than 2 dimensions (norm weights,
  scales, temperatures), parameters of ``nn.Embedding`` / normalisation modules, and names
  containing ``embed``, ``norm``, ``cls_token``, ``mask_token`` or ``pos_`` (learned tokens and
  position tables).

Schedule
--------
``lr_factor(step)`` multiplies each group's base learning rate at optimizer step ``step``
(0-based, the step about to be taken), with ``W`` warmup steps and ``T`` total steps::

    step <  W : (step + 1) / W                               (linear warmup, never exactly 0)
    step >= W : p = (step - W) / max(1, T - W)
                cosine  : r + (1 - r) * 0.5 * (1 + cos(pi * p))
                linear  : r + (1 - r) * (1 - p)
                constant: 1
    r = min_lr_ratio; p is clamped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from robust_mmr_pipeline.engine.config import TrainerConfig

_NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
_NO_DECAY_NAME_PARTS = ("embed", "norm", "cls_token", "mask_token", "pos_")


def no_weight_decay(param: nn.Parameter, name: str = "", name_parts: tuple[str, ...] = ()) -> bool:
    """The one no-weight-decay rule: no decay for a parameter with fewer than 2 dimensions
    (biases, norm weights, scales, temperatures) or whose ``name`` contains one of
    ``name_parts`` (each model names its learned tokens, embeddings and slots)."""
    return param.ndim < 2 or any(part in name for part in name_parts)


def no_decay_parameter_names(model: nn.Module) -> set[str]:
    """Names of parameters that must not get weight decay (see module docstring)."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        if isinstance(module, _NO_DECAY_MODULES):
            for param_name, _param in module.named_parameters(recurse=False):
                names.add(f"{module_name}.{param_name}" if module_name else param_name)
    for name, param in model.named_parameters():
        lowered = name.lower()
        if no_weight_decay(param, lowered, _NO_DECAY_NAME_PARTS) or lowered.endswith("bias"):
            names.add(name)
    return names


def build_param_groups(model: nn.Module, config: TrainerConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups with absolute ``lr`` and ``weight_decay`` per group.

    Uses ``model.param_groups(weight_decay, head_lr_mult)`` when present (see module docstring
    for the keys read), else the name-based rules. Parameters with ``requires_grad=False`` are
    left out; empty groups are dropped.
    """
    provider = getattr(model, "param_groups", None)
    if callable(provider):
        groups = []
        # layer-wise decay is asked for only when set, so a model without it still works
        extra = {"layer_decay": config.layer_decay} if config.layer_decay != 1.0 else {}
        for raw in provider(config.weight_decay, config.head_lr_mult, **extra):
            group = dict(raw)
            params = [p for p in group.pop("params") if p.requires_grad]
            if not params:
                continue
            mult = float(group.pop("lr_mult", group.pop("lr_scale", 1.0)))
            group.setdefault("lr", config.lr * mult)
            group.setdefault("weight_decay", config.weight_decay)
            group["lr_mult"] = mult
            groups.append({"params": params, **group})
        _check_unique(groups)
        return groups

    no_decay = no_decay_parameter_names(model)
    prefixes = config.backbone_prefixes
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if not prefixes or name.startswith(prefixes) else "head"
        buckets.setdefault((part, name not in no_decay), []).append(param)
    groups = []
    for part in ("backbone", "head"):
        mult = 1.0 if part == "backbone" else config.head_lr_mult
        for decay in (True, False):
            params = buckets.get((part, decay))
            if params:
                groups.append(
                    {
                        "params": params,
                        "lr": config.lr * mult,
                        "lr_mult": mult,
                        "weight_decay": config.weight_decay if decay else 0.0,
                        "name": f"{part}_{'decay' if decay else 'no_decay'}",
                    }
                )
    return groups


def _check_unique(groups: list[dict[str, Any]]) -> None:
    seen: set[int] = set()
    for group in groups:
        for param in group["params"]:
            if id(param) in seen:
                raise ValueError(
                    "model.param_groups() returned a parameter in more than one group; "
                    "each parameter must appear exactly once."
                )
            seen.add(id(param))


def build_optimizer(model: nn.Module, config: TrainerConfig) -> torch.optim.AdamW:
    """AdamW over :func:`build_param_groups`."""
    groups = build_param_groups(model, config)
    if not groups:
        raise ValueError("The model has no trainable parameters (all requires_grad=False).")
    return torch.optim.AdamW(
        groups, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay
    )


def lr_factor(
    step: int, warmup_steps: int, total_steps: int, schedule: str, min_lr_ratio: float = 0.0
) -> float:
    """Learning-rate multiplier at 0-based optimizer step ``step`` (formula: module docstring)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, progress))
    if schedule == "cosine":
        decay = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "linear":
        decay = 1.0 - progress
    else:
        raise ValueError(f"Unknown schedule {schedule!r}; use cosine, linear or constant.")
    return min_lr_ratio + (1.0 - min_lr_ratio) * decay


def make_lr_lambda(config: TrainerConfig, total_steps: int) -> Callable[[int], float]:
    """The schedule of ``config`` over ``total_steps`` as a function of the step."""
    warmup = config.warmup_steps(total_steps)
    schedule = config.schedule
    min_ratio = config.min_lr_ratio

    def factor(step: int) -> float:
        return lr_factor(step, warmup, total_steps, schedule, min_ratio)

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainerConfig, total_steps: int
) -> LambdaLR:
    """``LambdaLR`` with :func:`make_lr_lambda`; step it once per optimizer step."""
    return LambdaLR(optimizer, make_lr_lambda(config, total_steps))
