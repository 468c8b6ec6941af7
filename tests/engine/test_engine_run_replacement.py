"""Replacing, resuming and killing runs: earlier checkpoints survive until the new run is finished,
a resumed run keeps its checkpoint's tokenizer, a SIGKILL right after a checkpoint is injected
deterministically, and throughput is timed by an injectable clock."""

from __future__ import annotations

import dataclasses
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
    RunTarget,
    TrainerConfig,
    TrainerConfigError,
    latest_checkpoint,
    list_checkpoints,
    read_trainer_state,
    retire_replaced,
    start_run,
    tokenizer_fingerprint,
    train,
)
from robust_mmr_pipeline.engine.checkpoint import NEXT_RUN_DIRNAME, REPLACED_FILE
from robust_mmr_pipeline.engine.fault_injection import FAULT_KILL_AFTER_CHECKPOINT, FAULT_SIGNAL

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


def _replacement(tmp_path: Path, **overrides: Any) -> tuple[RunTarget, TrainerConfig]:
    """The target and trainer config of a fresh run replacing the one in ``tmp_path/run``."""
    config = _config(tmp_path, **overrides)
    target = start_run(config.output_dir, resume=config.resume, resume_from=config.resume_from)
    return target, dataclasses.replace(config, output_dir=str(target.write_dir))


def test_a_replacing_run_that_fails_early_leaves_the_earlier_checkpoints(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path))
    root = tmp_path / "run" / "checkpoints"
    before = latest_checkpoint(root)
    assert _steps(root) == [2, 4] and before is not None and before.name == "step-00000004"

    target, config = _replacement(tmp_path, max_steps=6)
    assert target.staged and target.write_dir == tmp_path / "run" / NEXT_RUN_DIRNAME
    with pytest.raises(RuntimeError, match="bad input file"):
        train(make_model(), _BrokenDataset(n=16), config)
    assert _steps(root) == [2, 4] and latest_checkpoint(root) == before

    # the replacing run writes step 2 again (same name, new folder), then steps 4 and 6
    target, config = _replacement(tmp_path, max_steps=6)
    result = train(make_model(seed=1), data, config)
    assert _steps(root) == [2, 4]  # untouched until the new run is published
    assert target.publish() == []  # every earlier folder was replaced by name
    assert target.final_path(result.checkpoint_dir) == root / "step-00000006"
    assert _steps(root) == [2, 4, 6] and latest_checkpoint(root) == root / "step-00000006"
    assert not target.write_dir.exists() and not (tmp_path / "run" / REPLACED_FILE).exists()
    for step in (2, 4, 6):  # every folder left is the new run's (its config says 6 steps)
        assert read_trainer_state(root / f"step-{step:08d}")["max_steps"] == 6


def test_the_earlier_run_stays_whole_until_the_replacement_is_published(tmp_path: Path) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path, max_steps=6))
    root = tmp_path / "run" / "checkpoints"
    extra = tmp_path / "run" / "best"
    train(make_model(), data, _config(tmp_path, max_steps=2, output_dir=str(tmp_path / "b")))
    extra.mkdir()
    (tmp_path / "b" / "checkpoints" / "step-00000002").rename(extra / "step-00000002")
    old_final = root / "step-00000006"
    earlier = {path: read_trainer_state(path)["saved_at"] for _s, path in list_checkpoints(root)}

    config = _config(tmp_path, max_steps=3, checkpoint_every=1)
    target = start_run(config.output_dir, folders=("checkpoints", "best"))
    config = dataclasses.replace(config, output_dir=str(target.write_dir))
    seen: list[list[int]] = []

    class _Watcher:
        def log_params(self, params: Any) -> None: ...

        def log_metrics(self, metrics: Any, step: int) -> None: ...

        def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
            seen.append(_steps(root) + _steps(extra))

    train(make_model(), data, config, logger=_Watcher())
    # while the new run trains, the earlier run's 2, 4, 6 and best/ stay as they were
    assert seen == [[2, 4, 6, 2]] * 3
    assert {path: read_trainer_state(path)["saved_at"] for path in earlier} == earlier
    assert latest_checkpoint(root) == old_final

    leftover = target.publish()
    # the new run's 1, 2, 3 are in place (2 exchanged by name); the earlier 4, 6 and best/
    # (the new run wrote none) wait for the manifest naming the new run
    left = ["best/step-00000002", "checkpoints/step-00000004", "checkpoints/step-00000006"]
    assert sorted(str(p.relative_to(tmp_path / "run")) for p in leftover) == left
    assert latest_checkpoint(root) == root / "step-00000003"
    assert read_trainer_state(root / "step-00000002")["max_steps"] == 3
    assert old_final.is_dir() and _steps(extra) == [2]
    retired = retire_replaced(tmp_path / "run")
    assert sorted(str(p.relative_to(tmp_path / "run")) for p in retired) == left
    assert _steps(root) == [1, 2, 3] and _steps(extra) == []
    assert not (tmp_path / "run" / REPLACED_FILE).exists()


def test_resume_continues_an_unfinished_replacement_and_a_fresh_run_discards_it(
    tmp_path: Path,
) -> None:
    data = RegressionDataset(n=16)
    train(make_model(), data, _config(tmp_path, max_steps=2))
    root = tmp_path / "run" / "checkpoints"
    # a replacement interrupted after its step-2 checkpoint (never published)
    target, config = _replacement(tmp_path, max_steps=2)
    train(make_model(seed=1), data, config)
    staged = target.write_dir / "checkpoints"
    assert _steps(staged) == [2] and _steps(root) == [2]

    target, config = _replacement(tmp_path, max_steps=4, resume=True)
    assert target.write_dir == staged.parent
    resumed = train(make_model(), data, config)
    assert resumed.resumed_from == staged / "step-00000002" and resumed.step == 4
    target.publish()
    assert _steps(root) == [2, 4] and not staged.exists()

    # resuming with nothing staged continues the run in place
    target, config = _replacement(tmp_path, max_steps=6, resume=True)
    assert not target.staged
    assert train(make_model(), data, config).resumed_from == root / "step-00000004"

    # a fresh run discards an unfinished replacement, never the published run
    target, config = _replacement(tmp_path, max_steps=2)
    train(make_model(), data, config)
    fresh, _config_again = _replacement(tmp_path, max_steps=2)
    assert fresh.staged and not fresh.write_dir.exists()
    assert _steps(root) == [2, 4, 6]


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


def test_bad_fault_signal_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_KILL_AFTER_CHECKPOINT, "2")
    monkeypatch.setenv(FAULT_SIGNAL, "SIGHUP")
    with pytest.raises(TrainerConfigError, match=FAULT_SIGNAL):
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


def test_a_last_pointer_copied_as_a_folder_is_refused_before_training(tmp_path: Path) -> None:
    train(make_model(), RegressionDataset(n=16), _config(tmp_path, max_steps=2))
    root = tmp_path / "run" / "checkpoints"
    (root / "last").unlink()
    (root / "last").mkdir()  # what a copy that follows symbolic links leaves
    with pytest.raises(CheckpointError, match=r"is a real folder.*delete it"):
        start_run(tmp_path / "run")
