"""Checkpoint round trip, atomicity, registry allow-list and pickle-free loading."""

from __future__ import annotations

import json
import pickle
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from engine_test_support import TinyModel, make_model, make_tokenizer

from robust_mmr_pipeline.engine import (
    CheckpointContents,
    CheckpointError,
    ModelClassNotAllowedError,
    TrainerConfig,
    latest_checkpoint,
    list_checkpoints,
    load_model,
    resolve_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from robust_mmr_pipeline.engine import checkpoint as ckpt
from robust_mmr_pipeline.engine.checkpoint import (
    load_training_contents,
    optimizer_state_from_files,
    optimizer_state_to_files,
)
from robust_mmr_pipeline.engine.registry import (
    build_model,
    register_model_class,
    registered_model_classes,
    resolve_model_class,
)
from robust_mmr_pipeline.engine.rng import capture_rng_state, restore_rng_state


def _draws() -> tuple[list[float], float, float]:
    return torch.rand(3).tolist(), float(np.random.rand()), random.random()


def _contents(step: int) -> CheckpointContents:
    return CheckpointContents(trainer_state={"step": step}, rng_states=[capture_rng_state()])


def test_round_trip_weights_tied_weights_tokenizer_and_rng(tmp_path: Path) -> None:
    model = make_model(seed=3, tie=True)
    assert model.out.weight is model.embed.weight
    tokenizer = make_tokenizer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(
        {"x": torch.randn(2, 4), "y": torch.randn(2, 3)},
    ).loss.backward()
    optimizer.step()

    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    rng = capture_rng_state()
    expected_draws = _draws()
    contents = CheckpointContents(
        trainer_state={"step": 5, "history": [{"step": 5.0, "loss": 0.25}]},
        optimizer_state=optimizer.state_dict(),
        rng_states=[rng],
    )
    path = save_checkpoint(tmp_path, 5, model, contents, tokenizer=tokenizer)

    assert path.name == "step-00000005"
    assert (path / "tokenizer" / "tokenizer.json").is_file()
    meta = json.loads((path / "model.json").read_text())
    assert meta["model_class"] == "engine_test_support.TinyModel"
    assert meta["config"]["tie"] is True

    loaded, loaded_tokenizer, info = load_model(tmp_path)
    assert isinstance(loaded, TinyModel)
    assert loaded.out.weight is loaded.embed.weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert not loaded.training
    assert info["trainer_state"]["step"] == 5
    text = "no acute findings chest"
    assert loaded_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]

    restored = load_training_contents(path)
    reference = torch.optim.AdamW(make_model(seed=3, tie=True).parameters(), lr=1e-2)
    reference.load_state_dict(restored.optimizer_state)
    for key, value in optimizer.state_dict()["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, reference.state_dict()["state"][key][name])

    _draws()  # advance the streams, then restore from the checkpoint
    restore_rng_state(restored.rng_states[0])
    assert _draws() == expected_draws


def test_optimizer_flattening_is_lossless() -> None:
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    model({"x": torch.randn(2, 4), "y": torch.randn(2, 3)}).loss.backward()
    optimizer.step()
    tensors, meta = optimizer_state_to_files(optimizer.state_dict())
    json.dumps(meta)
    rebuilt = optimizer_state_from_files(tensors, meta)
    assert rebuilt["param_groups"][0]["betas"] == (0.8, 0.9)
    assert set(rebuilt["state"]) == set(optimizer.state_dict()["state"])


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path: Path) -> None:
    model = make_model()
    first = save_checkpoint(tmp_path, 1, model, _contents(1), keep_last=2)
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}

    def crash(folder: Path) -> None:
        assert (folder / "model.safetensors").is_file()  # everything written, not yet renamed
        raise OSError("disk full (simulated)")

    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, 2, model, _contents(2), keep_last=2, before_commit=crash)

    assert not (tmp_path / "step-00000002").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
    assert latest_checkpoint(tmp_path) == first
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == before
    verify_checkpoint(first)


def test_crash_inside_a_file_write_and_hard_kill_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model()
    first = save_checkpoint(tmp_path, 1, model, _contents(1))

    def half_written(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        Path(filename).write_bytes(b"\x00" * 7)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", half_written)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, model, _contents(2))
    monkeypatch.undo()
    assert not (tmp_path / "step-00000002").exists()
    assert resolve_checkpoint(tmp_path) == first

    # A hard kill (no cleanup) leaves only a hidden temporary folder: ignored, then cleaned.
    leftover = tmp_path / ".tmp-step-00000003-deadbeef"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    assert [step for step, _ in list_checkpoints(tmp_path)] == [1]
    assert latest_checkpoint(tmp_path) == first
    removed = ckpt.clean_stale_temporaries(tmp_path)
    assert leftover in removed and not leftover.exists()


def test_keep_last_and_last_pointer(tmp_path: Path) -> None:
    model = make_model()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model, _contents(step), keep_last=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    assert resolve_checkpoint(tmp_path / "last").name == "step-00000004"
    # re-saving an existing step replaces it atomically
    save_checkpoint(tmp_path, 4, model, _contents(4), keep_last=2)
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 4]


def test_verify_detects_truncated_files(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, 1, make_model(), _contents(1))
    (path / "model.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(CheckpointError, match="unreadable"):
        verify_checkpoint(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="incomplete"):
        verify_checkpoint(path)
    with pytest.raises(CheckpointError, match="No checkpoint found"):
        resolve_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "model_class",
    [
        "os.system",
        "collections.OrderedDict",
        "definitely_not_imported_module_xyz.Evil",
        "robust_mmr_pipeline.schema.SchemaError",
    ],
)
def test_load_refuses_classes_outside_the_registry(tmp_path: Path, model_class: str) -> None:
    path = save_checkpoint(tmp_path, 1, make_model(), _contents(1))
    meta = json.loads((path / "model.json").read_text())
    meta["model_class"] = model_class
    (path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelClassNotAllowedError, match="not in the model registry"):
        load_model(path)
    assert "definitely_not_imported_module_xyz" not in sys.modules


def test_registry_builders_and_validation() -> None:
    assert resolve_model_class("engine_test_support.TinyModel") is TinyModel
    assert "engine_test_support.TinyModel" in registered_model_classes()
    with pytest.raises(TypeError):
        register_model_class(dict)  # type: ignore[arg-type]

    @register_model_class(name="tests.CustomBuilt", from_config=lambda cfg: make_model(**cfg))
    class CustomBuilt(TinyModel):
        pass

    built = build_model("tests.CustomBuilt", {"hidden": 5})
    assert built.config.hidden == 5


def test_loading_never_unpickles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(tie=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model({"x": torch.randn(2, 4), "y": torch.randn(2, 3)}).loss.backward()
    optimizer.step()
    contents = CheckpointContents(
        trainer_state={"step": 1, "config": TrainerConfig().to_dict()},
        optimizer_state=optimizer.state_dict(),
        scheduler_state=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0).state_dict(),
        rng_states=[capture_rng_state()],
    )
    path = save_checkpoint(tmp_path, 1, model, contents, tokenizer=make_tokenizer())
    suffixes = {p.suffix for p in path.rglob("*") if p.is_file()}
    assert suffixes <= {".safetensors", ".json", ".txt", ".model", ""}, suffixes

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle-based loading was used")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    loaded, _tokenizer, _meta = load_model(path)
    contents = load_training_contents(path)
    assert contents.optimizer_state is not None and contents.rng_states
    assert torch.equal(loaded.encoder.weight, model.encoder.weight)
