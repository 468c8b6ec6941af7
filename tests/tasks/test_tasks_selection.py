"""Model selection reads validation metrics only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from robust_mmr_pipeline.tasks import select_best
from robust_mmr_pipeline.tasks.selection import mentions_test


class _SpyRecord(dict):
    """A record that remembers which fields were read."""

    read: set[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def values(self) -> Any:
        self.read.add("*values*")
        return super().values()

    def items(self) -> Any:
        self.read.add("*items*")
        return super().items()

    def __iter__(self) -> Iterator[str]:
        return super().__iter__()


def test_selection_follows_validation_and_never_reads_test() -> None:
    # test accuracy peaks at epoch 3, validation at epoch 2: epoch 2 must win
    history = [
        _SpyRecord({"epoch": 1, "val/overall": 0.60, "test/overall": 0.55, "val_loss": 0.9}),
        _SpyRecord({"epoch": 2, "val/overall": 0.72, "test/overall": 0.61, "val_loss": 0.7}),
        _SpyRecord({"epoch": 3, "val/overall": 0.70, "test/overall": 0.80, "val_loss": 0.8}),
    ]
    chosen = select_best(history, "val/overall", step_key="epoch")
    assert (chosen.index, chosen.step, chosen.value) == (1, 2.0, 0.72)
    assert "test/overall" not in chosen.record and chosen.record["val_loss"] == 0.7
    for record in history:
        assert not any(mentions_test(key) for key in record.read)
        assert "*values*" not in record.read and "*items*" not in record.read
    assert select_best(history, "val_loss", mode="min", step_key="epoch").step == 2.0


def test_selection_refuses_test_metrics_and_handles_gaps() -> None:
    history = [{"step": 10, "val/acc": float("nan")}, {"step": 20}, {"step": 30, "val/acc": 0.5}]
    assert select_best(history, "val/acc").step == 30.0
    for name in ("test/acc", "acc_test", "Test-F1"):
        with pytest.raises(ValueError, match="test"):
            select_best(history, name)
    with pytest.raises(ValueError, match="no record"):
        select_best(history, "val/f1")
    ties = [{"step": 1, "val/acc": 0.5}, {"step": 2, "val/acc": 0.5}]
    assert select_best(ties, "val/acc").step == 1.0  # earliest wins a tie
    assert not mentions_test("attestation_rate") and mentions_test("test")
