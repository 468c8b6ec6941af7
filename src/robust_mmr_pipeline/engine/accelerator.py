"""Device setup for a run: the Accelerator, the CPU precision ``auto`` measures, peak memory."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs
from torch import nn
from torch.utils.data import Dataset

from robust_mmr_pipeline.engine.config import TrainerConfig
from robust_mmr_pipeline.engine.rng import preserved_rng_state


def make_accelerator(config: TrainerConfig, measured_precision: str | None = None) -> Accelerator:
    """An ``Accelerator`` for ``config`` (mixed precision resolved for the hardware;
    ``measured_precision``: what ``auto`` measured on the CPU, see :func:`train`).

    Accelerate keeps a process-wide state that refuses a second, different mixed precision;
    several runs in one process (Optuna trials, notebooks) may legitimately differ, so the
    state is reset in that case (the process group, if any, is kept).
    """
    cuda = torch.cuda.is_available() and not config.cpu
    mixed_precision = measured_precision or config.effective_mixed_precision(cuda)
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=mixed_precision,
        # Accelerate sets up multi-process CPU (gloo) only when told it runs on CPU.
        cpu=config.cpu or not torch.cuda.is_available(),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)
        ],
    )


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process in MiB: CUDA peak allocated, else max resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:
        return float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def measured_cpu_precision(
    model: nn.Module,
    dataset: Dataset,
    config: TrainerConfig,
    collate_fn: Callable[[list[Any]], Any] | None,
) -> str:
    """``auto`` on the CPU: bf16 or fp32, whichever trains this model faster here (measured on
    the first batch; the training RNG streams are left as they were)."""
    from torch.utils.data import default_collate

    from robust_mmr_pipeline.engine.precision import decide_cpu_precision

    size = min(config.batch_size, len(dataset))  # type: ignore[arg-type]
    batch = (collate_fn or default_collate)([dataset[i] for i in range(size)])
    was_training = model.training
    model.train()
    try:
        with preserved_rng_state():
            return decide_cpu_precision(model, batch, config.batch_size)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- inference helpers
