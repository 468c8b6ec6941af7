"""Which process of a multi-process launch this is, and what only one of them does.

``accelerate launch --num_processes N -m robust_mmr_pipeline run ...`` (or ``torchrun``) starts
N copies of the same Kedro run; every copy runs every node, because training steps are
collective. The launcher tells each copy its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``); :func:`launched_process` reads it without importing torch, so
the Kedro hooks can ask it in every run. Process 0 (the main process) alone writes the project's
outputs, tracks to MLflow and holds the run lock (``robust_mmr_pipeline.hooks``); the others
keep their node outputs in memory. Collective helpers (:func:`broadcast_from_main`,
:func:`main_process_first`) use Accelerate's process state, set up as the trainer sets it up
(gloo on CPU, NCCL on GPUs), and do nothing outside a launch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class LaunchedProcess:
    """``rank`` of ``world_size`` processes (``local_rank`` on its machine)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def launched(self) -> bool:
        """Whether this is one of several processes of a launch."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"process {self.rank} of {self.world_size} (pid {os.getpid()})"


def launched_process() -> LaunchedProcess:
    """This process's place, from the launcher's environment (a plain run: 0 of 1)."""

    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "").strip()
        return int(value) if value.isdigit() else default

    world = number("WORLD_SIZE", 1)
    return LaunchedProcess(
        rank=number("RANK", number("LOCAL_RANK", 0)) if world > 1 else 0,
        world_size=world,
        local_rank=number("LOCAL_RANK", 0),
    )


def process_state() -> Any:
    """Accelerate's ``PartialState``, initialised as :func:`engine.make_accelerator` does
    (``cpu`` when the launcher says so or there is no GPU), so the trainer finds it ready."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    cpu = parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available()
    return PartialState(cpu=cpu)


def broadcast_from_main(value: T) -> T:
    """Process 0's ``value`` on every process of the launch (``value`` itself outside one)."""
    if not launched_process().launched:
        return value
    from accelerate.utils import broadcast_object_list

    process_state()
    payload = [value]
    broadcast_object_list(payload, from_process=0)
    return payload[0]


@contextmanager
def main_process_first() -> Iterator[None]:
    """Process 0 runs the block first, the others after it (they then find its files): for
    work that writes shared files, e.g. the image cache."""
    if not launched_process().launched:
        yield
        return
    with process_state().main_process_first():
        yield
