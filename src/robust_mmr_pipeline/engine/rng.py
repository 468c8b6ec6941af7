"""Capture and restore every global random stream training touches, without pickle.

State covered: torch CPU generator, all CUDA generators, numpy's legacy global ``RandomState``
and Python's ``random``. On disk the torch states are uint8 tensors in a safetensors file and
the numpy / Python states are JSON (integers only), one entry per process rank.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class RngState:
    """The global RNG state of one process."""

    torch_cpu: torch.Tensor
    cuda: list[torch.Tensor] = field(default_factory=list)
    numpy: dict[str, Any] = field(default_factory=dict)
    python: list[Any] = field(default_factory=list)


def capture_rng_state() -> RngState:
    """Snapshot torch (CPU and CUDA), numpy and Python RNG states of this process."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    cuda = (
        [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_initialized() else []
    )
    return RngState(
        torch_cpu=torch.get_rng_state().clone(),
        cuda=cuda,
        numpy={
            "kind": str(np_state[0]),
            "keys": [int(k) for k in np_state[1]],
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        python=[py_state[0], [int(v) for v in py_state[1]], py_state[2]],
    )


def restore_rng_state(state: RngState) -> None:
    """Set this process's global RNGs to ``state``."""
    torch.set_rng_state(state.torch_cpu.to(torch.uint8).cpu())
    if state.cuda and torch.cuda.is_available():
        count = min(len(state.cuda), torch.cuda.device_count())
        for index in range(count):
            torch.cuda.set_rng_state(state.cuda[index].to(torch.uint8).cpu(), index)
    if state.numpy:
        np.random.set_state(
            (
                state.numpy["kind"],
                np.asarray(state.numpy["keys"], dtype=np.uint32),
                state.numpy["pos"],
                state.numpy["has_gauss"],
                state.numpy["cached_gaussian"],
            )
        )
    if state.python:
        version, internal, gauss_next = state.python
        random.setstate((version, tuple(internal), gauss_next))


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Run a block (evaluation, logging) without advancing the training random streams."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def rng_states_to_files(
    states: list[RngState],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten per-rank states into safetensors tensors plus JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, Any] = {"world_size": len(states), "ranks": []}
    for rank, state in enumerate(states):
        tensors[f"rank{rank}.torch_cpu"] = state.torch_cpu.to(torch.uint8).contiguous()
        for index, cuda_state in enumerate(state.cuda):
            tensors[f"rank{rank}.cuda.{index}"] = cuda_state.to(torch.uint8).contiguous()
        meta["ranks"].append(
            {"cuda_devices": len(state.cuda), "numpy": state.numpy, "python": state.python}
        )
    return tensors, meta


def rng_state_from_files(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], rank: int
) -> RngState | None:
    """The state saved for ``rank``, or None when the checkpoint has no entry for it."""
    ranks = meta.get("ranks", [])
    if rank >= len(ranks) or f"rank{rank}.torch_cpu" not in tensors:
        return None
    entry = ranks[rank]
    return RngState(
        torch_cpu=tensors[f"rank{rank}.torch_cpu"],
        cuda=[tensors[f"rank{rank}.cuda.{i}"] for i in range(int(entry["cuda_devices"]))],
        numpy=dict(entry["numpy"]),
        python=list(entry["python"]),
    )
