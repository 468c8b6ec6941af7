"""Sharding: seeded global micro-batches split over processes, and a resumable stream of them.

:class:`GlobalBatchSampler` draws global micro-batches from a seeded permutation per epoch
(``seed``, ``epoch``) and gives each process a contiguous slice of every global batch, so the
global batch of a step is the same samples whatever the number of processes. Its position
``(epoch, batch)`` is part of a checkpoint; resuming skips the consumed batches without loading
them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from robust_mmr_pipeline.seeding import stride_seed


class GlobalBatchSampler(Sampler[list[int]]):
    """Global micro-batches from a seeded per-epoch permutation; this rank's slice of each.

    Epoch ``e`` uses ``torch.randperm(n)`` from a generator seeded with
    ``seed * 1_000_003 + e`` (identity order when ``shuffle`` is False). Global batch ``b`` is
    ``perm[b * B:(b + 1) * B]`` and rank ``r`` of ``W`` yields its ``[r * B/W:(r + 1) * B/W]``
    part. The final incomplete global batch of an epoch is dropped. :meth:`set_position`
    chooses the epoch and first batch of the next iteration (resume).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} (global) must be divisible by the number of "
                f"processes ({world_size})."
            )
        if num_samples < batch_size:
            raise ValueError(
                f"The dataset has {num_samples} samples, fewer than one global batch "
                f"(batch_size={batch_size}); lower batch_size."
            )
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.local_batch_size = self.batch_size // self.world_size
        self.epoch = 0
        self.start_batch = 0
        self._perm_epoch: int | None = None
        self._perm: torch.Tensor | None = None

    @property
    def batches_per_epoch(self) -> int:
        """Global micro-batches per epoch."""
        return self.num_samples // self.batch_size

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration yield epoch ``epoch`` from global batch ``start_batch``."""
        self.epoch = int(epoch)
        self.start_batch = int(start_batch)

    def permutation(self, epoch: int) -> torch.Tensor:
        """Sample order of ``epoch`` (the last one asked for is kept)."""
        if self._perm_epoch == epoch and self._perm is not None:
            return self._perm
        if not self.shuffle:
            perm = torch.arange(self.num_samples)
        else:
            generator = torch.Generator().manual_seed(stride_seed(self.seed, epoch))
            perm = torch.randperm(self.num_samples, generator=generator)
        self._perm_epoch, self._perm = epoch, perm
        return perm

    def global_batch(self, epoch: int, batch: int) -> list[int]:
        """All sample indices of global batch ``batch`` of ``epoch`` (every rank's share)."""
        perm = self.permutation(epoch)
        return perm[batch * self.batch_size : (batch + 1) * self.batch_size].tolist()

    def local_batch(self, epoch: int, batch: int) -> list[int]:
        """This rank's sample indices of global batch ``batch`` of ``epoch``."""
        start = batch * self.batch_size + self.rank * self.local_batch_size
        return self.permutation(epoch)[start : start + self.local_batch_size].tolist()

    def describe(self) -> str:
        """Which part of every global batch this rank reads (for the log of a launch)."""
        lo = self.rank * self.local_batch_size
        return (
            f"samples [{lo}, {lo + self.local_batch_size}) of each global batch of "
            f"{self.batch_size}, {self.batches_per_epoch} global batches per epoch of "
            f"{self.num_samples} samples, one order for all ranks (seed {self.seed})"
        )

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        for batch in range(self.start_batch, self.batches_per_epoch):
            yield self.local_batch(epoch, batch)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)


class BatchStream:
    """An endless stream of this rank's micro-batches over epochs, with a resumable position.

    ``position`` is ``(epoch, batches consumed in that epoch)``; it is what a checkpoint stores.
    ``last_indices``: the dataset indices of the micro-batch :meth:`next` returned last (this
    rank's). One ``DataLoader`` is reused across epochs (persistent workers stay alive).
    """

    def __init__(
        self, loader: DataLoader, sampler: GlobalBatchSampler, epoch: int = 0, batch: int = 0
    ) -> None:
        self.loader = loader
        self.sampler = sampler
        self.epoch = int(epoch)
        self.batch = int(batch)
        self.last_indices: list[int] = []
        self._iterator: Iterator[Any] | None = None

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, batches consumed in the epoch)``."""
        return self.epoch, self.batch

    def next(self) -> Any:
        """The next micro-batch, moving to the next epoch when one ends."""
        for _attempt in range(2):
            if self._iterator is None:
                self.sampler.set_position(self.epoch, self.batch)
                self._iterator = iter(self.loader)
            try:
                item = next(self._iterator)
            except StopIteration:
                self._iterator = None
                self.epoch += 1
                self.batch = 0
                continue
            self.last_indices = self.sampler.local_batch(self.epoch, self.batch)
            self.batch += 1
            return item
        raise RuntimeError("The data loader yielded no batch for a whole epoch.")
