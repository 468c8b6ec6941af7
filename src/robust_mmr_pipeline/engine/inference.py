"""Inference over a data loader with Accelerate: :func:`predict` and :func:`evaluate`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader

ForwardFn = Callable[[nn.Module, Any], Any]


def scalar_tensor(value: Any, device: torch.device) -> torch.Tensor:
    tensor = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    return tensor.to(device=device, dtype=torch.float32).reshape(())


def _tensor_fields(output: Any) -> dict[str, torch.Tensor]:
    if isinstance(output, torch.Tensor):
        items: Any = [("output", output)]
    elif isinstance(output, Mapping):
        items = output.items()
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        items = [(f.name, getattr(output, f.name)) for f in dataclasses.fields(output)]
    elif isinstance(output, tuple) and hasattr(output, "_asdict"):
        items = output._asdict().items()
    else:
        items = vars(output).items() if hasattr(output, "__dict__") else []
    return {k: v for k, v in items if isinstance(v, torch.Tensor) and v.ndim >= 1}


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim >= 1:
                return int(value.shape[0])
    if isinstance(batch, list | tuple):
        for value in batch:
            if isinstance(value, torch.Tensor) and value.ndim >= 1:
                return int(value.shape[0])
    raise ValueError("Cannot infer the batch size: the batch holds no tensor with a batch dim.")


def _run_inference(
    model: nn.Module,
    dataloader: DataLoader,
    *,
    accelerator: Accelerator | None,
    forward_fn: ForwardFn | None,
    keys: tuple[str, ...] | None,
    collect: bool,
) -> tuple[dict[str, torch.Tensor], dict[str, float], int]:
    accelerator = accelerator if accelerator is not None else Accelerator()
    net = accelerator.unwrap_model(model)
    net.to(accelerator.device)
    loader = accelerator.prepare_data_loader(dataloader)
    was_training = net.training
    net.eval()
    gathered: dict[str, list[torch.Tensor]] = {}
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=accelerator.device)
    try:
        with torch.no_grad():
            for batch in loader:
                output = forward_fn(net, batch) if forward_fn is not None else net(batch)
                size = _batch_size(batch)
                count += size
                loss = getattr(output, "loss", None)
                terms = {"loss": loss} if isinstance(loss, torch.Tensor) else {}
                terms.update(dict(getattr(output, "losses", {}) or {}))
                for name, value in terms.items():
                    weighted = scalar_tensor(value, accelerator.device) * size
                    sums[name] = sums[name] + weighted if name in sums else weighted
                if collect:
                    tensors = _tensor_fields(output)
                    if keys is not None:
                        tensors = {k: v for k, v in tensors.items() if k in keys}
                    tensors = {k: v.contiguous() for k, v in tensors.items()}
                    for name, value in accelerator.gather_for_metrics(tensors).items():
                        gathered.setdefault(name, []).append(value.detach().cpu())
    finally:
        net.train(was_training)
    names = sorted(sums)
    if names:
        vector = torch.stack([sums[n] for n in names] + [count])
        if accelerator.num_processes > 1:
            vector = accelerator.reduce(vector, reduction="sum")
        total = float(vector[-1])
        means = {n: float(vector[i]) / max(total, 1.0) for i, n in enumerate(names)}
    else:
        total_tensor = (
            accelerator.reduce(count, reduction="sum") if accelerator.num_processes > 1 else count
        )
        total, means = float(total_tensor), {}
    outputs = {name: torch.cat(parts) for name, parts in gathered.items()}
    return outputs, means, int(total)


def predict(
    model: nn.Module,
    dataloader: DataLoader,
    *,
    accelerator: Accelerator | None = None,
    forward_fn: ForwardFn | None = None,
    keys: tuple[str, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``model`` in eval mode over ``dataloader``; outputs of all processes, in order.

    ``forward_fn(model, batch)`` (default ``model(batch)``) returns a tensor, a mapping, a
    dataclass or an object; every tensor field with a batch dimension is collected (``keys``
    restricts them), gathered across processes with ``accelerator.gather_for_metrics`` (padding
    duplicates of the last batch are dropped) and concatenated on CPU. Tensors must have the
    same trailing shape on every process. The loader is sharded by Accelerate; the model's
    train/eval mode is restored afterwards.
    """
    outputs, _means, _count = _run_inference(
        model, dataloader, accelerator=accelerator, forward_fn=forward_fn, keys=keys, collect=True
    )
    return outputs


def evaluate(
    model: nn.Module,
    dataloader: DataLoader,
    *,
    accelerator: Accelerator | None = None,
    forward_fn: ForwardFn | None = None,
    metric_fn: Callable[[dict[str, torch.Tensor]], Mapping[str, float]] | None = None,
    keys: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Mean ``.loss`` / ``.losses`` terms over ``dataloader`` plus ``metric_fn(predictions)``.

    Loss means are weighted by batch size and summed across processes (in multi-process runs
    the padding duplicates Accelerate adds to the last batch count too); ``metric_fn`` gets
    the de-duplicated predictions of :func:`predict`. Adds ``num_samples``.
    """
    outputs, means, count = _run_inference(
        model,
        dataloader,
        accelerator=accelerator,
        forward_fn=forward_fn,
        keys=keys,
        collect=metric_fn is not None,
    )
    result = dict(means)
    result["num_samples"] = float(count)
    if metric_fn is not None:
        result.update({k: float(v) for k, v in dict(metric_fn(outputs)).items()})
    return result
