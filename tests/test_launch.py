"""Which process of a launch this is, read from the launcher's environment (no torch needed)."""

from __future__ import annotations

import pytest

from robust_mmr_pipeline.launch import broadcast_from_main, launched_process, main_process_first


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (0, 1, False, True)),  # a plain run
        ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (1, 2, True, False)),
        ({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}, (0, 4, True, True)),
        # a second machine of a multi-node launch: global rank 3, first process on its machine
        ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}, (3, 4, True, False)),
        ({"RANK": "1", "WORLD_SIZE": "1"}, (0, 1, False, True)),  # one process: always main
    ],
)
def test_place_in_the_launch(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple
) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    process = launched_process()
    assert (process.rank, process.world_size, process.launched, process.is_main) == expected


def test_collective_helpers_do_nothing_outside_a_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert broadcast_from_main({"a": 1}) == {"a": 1}
    ran = []
    with main_process_first():
        ran.append(True)
    assert ran == [True]
