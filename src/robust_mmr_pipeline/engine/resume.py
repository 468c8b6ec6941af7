"""Resume policy: which checkpoint a run continues from, and how its saved settings meet the new.

A fresh run refuses an ``output_dir`` holding checkpoints; ``resume`` continues the latest,
``resume_from`` a named one. On resume the data-order settings are checked (a warning where the
run cannot reproduce the uninterrupted one) and the current config's optimizer settings win.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robust_mmr_pipeline.engine.checkpoint import list_checkpoints, verify_checkpoint
from robust_mmr_pipeline.engine.config import TrainerConfig, TrainerConfigError

LOGGER = logging.getLogger(__name__)


def resume_dir(config: TrainerConfig, root: Path) -> Path | None:
    """The checkpoint a run continues from (verified), None for a fresh start; refuses to start
    fresh over an earlier run's checkpoints (a replacement goes through ``start_run``)."""
    if config.resume_from:
        return verify_checkpoint(config.resume_from)
    existing = list_checkpoints(root)
    if config.resume:
        if existing:
            return verify_checkpoint(root)
        LOGGER.info("resume=True but no checkpoint under %s: starting fresh.", root)
        return None
    if existing:
        raise TrainerConfigError(
            f"{root} already holds checkpoints ({existing[-1][1].name} ...) from an "
            "earlier run. Set resume: true to continue it, or use a new output_dir (or delete "
            "the folder) to start over; engine.start_run gives a fresh run that replaces it "
            "once finished."
        )
    return None


def check_compatible(config: TrainerConfig, state: Mapping[str, Any], world: int) -> None:
    """Warn where the resumed run's settings cannot reproduce the uninterrupted one."""
    saved = state.get("config", {})
    for key in ("batch_size", "grad_accum", "seed", "shuffle"):
        if key in saved and saved[key] != getattr(config, key):
            LOGGER.warning(
                "Resuming with %s=%r but the checkpoint used %r: the run continues, but "
                "will not reproduce the uninterrupted one.",
                key,
                getattr(config, key),
                saved[key],
            )
    if int(state.get("world_size", world)) != world:
        LOGGER.warning(
            "Resuming on %d process(es); the checkpoint was written by %s: data order is "
            "unchanged, model random streams are not.",
            world,
            state.get("world_size"),
        )


def apply_config_hyperparameters(
    config: TrainerConfig,
    optimizer: Any,
    scheduler: Any,
    fresh: list[dict[str, Any]],
    state: Mapping[str, Any],
) -> None:
    """Let the current config's lr / weight decay / betas / eps win over the checkpoint's.

    Unchanged settings give bit-identical values (exact resume); changed ones (e.g. a lower
    lr after a non-finite loss) take effect from the resumed step on.
    """
    groups = optimizer.param_groups
    for group, new in zip(groups, fresh, strict=True):
        for key in ("initial_lr", "lr_mult", "weight_decay", "betas", "eps"):
            if key in new:
                group[key] = new[key]
    scheduler.base_lrs = [new["initial_lr"] for new in fresh]
    for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in groups]
    saved = state.get("config", {})
    changed = [
        key
        for key in ("lr", "head_lr_mult", "weight_decay", "betas", "eps", "schedule")
        if key in saved and saved[key] != config.to_dict()[key]
    ]
    if changed:
        LOGGER.info("Resuming with changed optimizer settings %s: using the new values.", changed)
