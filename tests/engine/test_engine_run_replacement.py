"""Replacing, resuming and killing runs: earlier checkpoints survive until the new run has one,
a resumed run keeps its checkpoint's tokenizer, a SIGKILL right after a checkpoint is injected
deterministically, and throughput is timed by an injectable clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from engine_test_support import RADIOLOGY_WORDS, RegressionDataset, make_model, make_tokenizer

from robust_mmr_pipeline.engine import (
    CheckpointError,
    TrainerConfig,
    TrainerConfigError,
    latest_checkpoint,
    list_checkpoints,
    read_trainer_state,
    supersede_checkpoints,
    tokenizer_fingerprint,
    train,
)
from robust_mmr_pipeline.engine.checkpoint import SUPERSEDED_FILE, superseded_checkpoints
from robust_mmr_pipeline.engine.trainer import FAULT_KILL_AFTER_CHECKPOINT

HERE = Path(__file__).resolve().parent


def _config(tmp_path: Path, **overrides: Any) -> TrainerConfig:
    base: dict[str, Any] = {
        "max_steps": 4,
        "batch_size": 4,
        "lr": 5e-2,
        "log_every": 1,
        "checkpoint_every": 2,
        "keep_last": 0,
        "progress_bar": False,
        "output_dir": str(tmp_path / "run"),
        "seed": 3,
    }
    base.update(overrides)
    return TrainerConfig(**base)


def _steps(root: Path) -> list[int]:
    return [step for step, _ in list_checkpoints(root)]


class _BrokenDataset(RegressionDataset):
    """Fails on the first item read: the run dies before its first checkpoint."""

    def __getitem__(self, index: int) -> dict:
        raise RuntimeError("bad input file")


def test_a_replacing_run_that_fails_early_leaves_the_earlier_checkpoints(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path))
    root = tmp_path / "run" / "checkpoints"
    before = latest_checkpoint(root)
    assert _steps(root) == [2, 4] and before is not None and before.name == "step-00000004"

    assert supersede_checkpoints(root) == 2
    with pytest.raises(RuntimeError, match="bad input file"):
        train(make_model(), _BrokenDataset(n=16), _config(tmp_path, max_steps=6))
    assert _steps(root) == [2, 4] and latest_checkpoint(root) == before
    assert (root / SUPERSEDED_FILE).is_file()  # still marked: the next fresh run replaces them

    # the replacing run writes step 2 again (same name, new folder), then steps 4 and 6
    result = train(make_model(seed=1), data, _config(tmp_path, max_steps=6))
    assert _steps(root) == [2, 4, 6] and result.checkpoint_dir == root / "step-00000006"
    assert not (root / SUPERSEDED_FILE).exists()
    for step in (2, 4, 6):  # every folder left is the new run's (its config says 6 steps)
        assert read_trainer_state(root / f"step-{step:08d}")["max_steps"] == 6


def test_superseded_folders_go_right_after_the_first_new_checkpoint(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path, max_steps=6))
    root = tmp_path / "run" / "checkpoints"
    extra = tmp_path / "run" / "best"
    train(make_model(), data, _config(tmp_path, max_steps=2, output_dir=str(tmp_path / "b")))
    extra.mkdir()
    (tmp_path / "b" / "checkpoints" / "step-00000002").rename(extra / "step-00000002")
    assert supersede_checkpoints(root, extra_roots=[extra]) == 4

    seen: list[list[int]] = []

    class _Watcher:
        def log_params(self, params: Any) -> None: ...

        def log_metrics(self, metrics: Any, step: int) -> None: ...

        def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
            seen.append(_steps(root))

    train(make_model(), data, _config(tmp_path, max_steps=3, checkpoint_every=1), logger=_Watcher())
    # after the first new checkpoint (step 1) the earlier run's 2, 4, 6 and best/ are gone
    assert seen == [[1], [1, 2], [1, 2, 3]]
    assert _steps(extra) == []


def test_resume_continues_the_earlier_run_when_the_replacement_wrote_nothing(
    tmp_path: Path,
) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path, max_steps=2))
    root = tmp_path / "run" / "checkpoints"
    supersede_checkpoints(root)
    resumed = train(make_model(), data, _config(tmp_path, max_steps=4, resume=True))
    assert resumed.resumed_from == root / "step-00000002" and resumed.step == 4
    assert _steps(root) == [2, 4] and not (root / SUPERSEDED_FILE).exists()
    assert superseded_checkpoints(root) == []


def test_unmarked_checkpoints_of_another_run_still_need_resume(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path, max_steps=2))
    with pytest.raises(TrainerConfigError, match="resume"):
        train(make_model(), data, _config(tmp_path, max_steps=2))


def test_a_resumed_run_must_use_the_tokenizer_of_its_checkpoint(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    stored = make_tokenizer()
    train(make_model(), data, _config(tmp_path, max_steps=2), tokenizer=stored)
    other = make_tokenizer(words=(*RADIOLOGY_WORDS, "pet"))
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(stored)
    with pytest.raises(CheckpointError, match="not the one saved with it"):
        train(make_model(), data, _config(tmp_path, max_steps=4, resume=True), tokenizer=other)
    again = make_tokenizer()  # a new object, the same tokenizer
    assert tokenizer_fingerprint(again) == tokenizer_fingerprint(stored)
    result = train(make_model(), data, _config(tmp_path, max_steps=4, resume=True), tokenizer=again)
    assert result.step == 4


def test_fault_injection_kills_the_process_right_after_the_named_checkpoint(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from engine_test_support import RegressionDataset, make_model
        from robust_mmr_pipeline.engine import TrainerConfig, train
        config = TrainerConfig(max_steps=6, batch_size=4, checkpoint_every=2, keep_last=0,
                               progress_bar=False, output_dir={str(tmp_path / "run")!r})
        train(make_model(), RegressionDataset(n=16), config)
        print("finished")
        """
    )
    env = {**os.environ, FAULT_KILL_AFTER_CHECKPOINT: "4"}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "finished" not in proc.stdout
    root = tmp_path / "run" / "checkpoints"
    assert _steps(root) == [2, 4] and latest_checkpoint(root) == root / "step-00000004"


def test_bad_fault_injection_value_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_KILL_AFTER_CHECKPOINT, "after-two")
    with pytest.raises(TrainerConfigError, match=FAULT_KILL_AFTER_CHECKPOINT):
        train(make_model(), RegressionDataset(n=16), _config(tmp_path, max_steps=2))


def test_throughput_is_timed_by_the_injected_clock(tmp_path: Path) -> None:
    ticks = iter(range(1000))

    def clock() -> float:  # every call advances a quarter of a second
        return 0.25 * next(ticks)

    result = train(
        make_model(), RegressionDataset(n=16), _config(tmp_path, max_steps=4), clock=clock
    )
    # each step is timed by two calls: 0.25 s per step of 4 samples
    assert result.train_time_s == pytest.approx(1.0)
    assert result.samples_per_s == pytest.approx(16.0)
    assert result.flops_per_s == pytest.approx(16.0 * make_model().flops_per_sample())
