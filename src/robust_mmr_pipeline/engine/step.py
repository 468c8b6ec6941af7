"""One optimizer step's forward and backward passes over its micro-batches, under Accelerate."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device
from torch import nn

from robust_mmr_pipeline.engine.inference import scalar_tensor
from robust_mmr_pipeline.engine.sharding import BatchStream


def forward_backward(
    accelerator: Accelerator,
    train_model: Any,
    prepared_model: nn.Module,
    stream: BatchStream,
    grad_accum: int,
    progress: float,
    pin_memory: bool,
) -> tuple[list[str], list[float], list[int]]:
    """Forward and backward of one optimizer step's ``grad_accum`` micro-batches.

    Returns the logged terms' names, their values (averaged over micro-batches, then over
    processes) and the dataset indices this process read.
    """
    acc, ga = accelerator, grad_accum
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    step_samples: list[int] = []
    for micro in range(ga):
        batch = send_to_device(stream.next(), acc.device, non_blocking=pin_memory)
        step_samples += stream.last_indices
        sync = acc.no_sync(prepared_model) if micro < ga - 1 else nullcontext()
        with sync:
            try:
                output = train_model(batch, progress)
            except RuntimeError as exc:
                if "find_unused_parameters" in str(exc):
                    raise RuntimeError(
                        "DDP found parameters without gradients: set TrainerConfig."
                        "ddp_find_unused_parameters: true (or make every parameter take part "
                        f"in the loss). DDP said: {exc}"
                    ) from exc
                raise
            loss = getattr(output, "loss", None)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TypeError(
                    "model.forward(batch, progress) must return an object whose .loss is a "
                    f"scalar tensor; got {type(output).__name__}.loss = {type(loss).__name__}"
                )
            acc.backward(loss.reshape(()) / ga)
        terms = {"loss": loss}
        terms.update({k: v for k, v in dict(getattr(output, "losses", {}) or {}).items()})
        # a model's diagnostics (same keys every step) are recorded beside its losses
        terms.update(dict(getattr(output, "diagnostics", {}) or {}))
        for name, value in terms.items():
            scalar = scalar_tensor(value, acc.device)
            sums[name] = sums[name] + scalar if name in sums else scalar
            counts[name] = counts.get(name, 0) + 1
    names = list(sums)
    vector = torch.stack([sums[name] / counts[name] for name in names])
    if acc.num_processes > 1:
        vector = acc.reduce(vector, reduction="mean")
    return names, [float(v) for v in vector.tolist()], step_samples
