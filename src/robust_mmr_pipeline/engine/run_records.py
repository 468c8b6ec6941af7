"""What a run records: each checkpoint's ``trainer_state.json``, its logged params and metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import accelerate
import torch
from accelerate import Accelerator
from torch import nn

from robust_mmr_pipeline.engine.checkpoint import model_metadata
from robust_mmr_pipeline.engine.config import TrainerConfig
from robust_mmr_pipeline.engine.sharding import BatchStream


class RunState(Protocol):
    """What these records read of a run in progress (the trainer's run object)."""

    config: TrainerConfig
    accelerator: Accelerator
    raw_model: nn.Module
    stream: BatchStream
    step: int
    max_steps: int
    world: int
    samples_seen: int
    batches_per_epoch: int
    history: list[dict[str, float]]
    eval_history: list[dict[str, float]]
    flops_per_sample: float | None
    resumed_from: Path | None


def ordered_like(template: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with the keys of ``template`` first, in its order, then any others."""
    ordered = {key: record[key] for key in template if key in record}
    ordered.update({key: value for key, value in record.items() if key not in ordered})
    return ordered


def model_flops(model: nn.Module) -> float | None:
    provider = getattr(model, "flops_per_sample", None)
    if not callable(provider):
        return None
    try:
        value = float(provider())
    except (TypeError, ValueError, RuntimeError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def trainer_state(
    run: RunState, reason: str, position: tuple[int, int], samples: list[list[int]]
) -> dict[str, Any]:
    tail = run.config.history_tail
    return {
        "step": run.step,
        "epoch": position[0],
        "batch_in_epoch": position[1],
        "batches_per_epoch": run.batches_per_epoch,
        "samples_seen": run.samples_seen,
        "max_steps": run.max_steps,
        "world_size": run.world,
        "mixed_precision": run.accelerator.mixed_precision,
        "reason": reason,
        "history": run.history[-tail:] if tail else [],
        "eval_history": run.eval_history[-tail:] if tail else [],
        "config": run.config.to_dict(),
        # which samples made the step (one list per process): to re-run a step, or to see
        # how a multi-process run split its global batches
        "step_samples": {
            "step": run.step + (1 if reason == "last_good_before_non_finite" else 0),
            "by_process": samples,
        },
        "versions": {"torch": torch.__version__, "accelerate": accelerate.__version__},
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def step_metrics(
    run: RunState, record: Mapping[str, float], grad_norm: Any, samples_per_s: float
) -> dict[str, float]:
    metrics = {f"train/{k}": v for k, v in record.items() if k != "step"}
    if grad_norm is not None:
        metrics["train/grad_norm"] = float(grad_norm)
    metrics["throughput/samples_per_s"] = samples_per_s
    if run.flops_per_sample:
        metrics["throughput/flops_per_s"] = run.flops_per_sample * samples_per_s
    metrics["train/epoch"] = float(run.stream.epoch)
    return metrics


def run_params(run: RunState) -> dict[str, Any]:
    meta = model_metadata(run.raw_model, warn=False)
    return {
        "trainer": run.config.to_dict(),
        "model_class": meta["model_class"],
        "model": meta["config"],
        "world_size": run.world,
        "mixed_precision": str(run.accelerator.mixed_precision),
        "num_parameters": sum(p.numel() for p in run.raw_model.parameters()),
        "max_steps": run.max_steps,
        "resumed_from": str(run.resumed_from) if run.resumed_from else "",
    }
