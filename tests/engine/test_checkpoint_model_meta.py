"""A tampered ``model.json`` fails naming the checkpoint folder, the file and the key path.

Nothing in model.json is silently ignored: an unknown top-level key, an unknown key anywhere in
the model's config (parsed by the registered class's typed config, nested ones included) and a
config value of the wrong type each raise CheckpointError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from engine_test_support import make_model

from robust_mmr_pipeline.engine import CheckpointContents, load_model, save_checkpoint
from robust_mmr_pipeline.engine.checkpoint import CheckpointError


def _tamper(path: Path, edit: Any) -> Path:
    meta = json.loads((path / "model.json").read_text())
    edit(meta)
    (path / "model.json").write_text(json.dumps(meta))
    return path


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    return save_checkpoint(tmp_path, 1, make_model(), CheckpointContents(trainer_state={"step": 1}))


def test_unknown_top_level_key_names_folder_file_and_key(tiny_checkpoint: Path) -> None:
    _tamper(tiny_checkpoint, lambda meta: meta.update(shortcut="x"))
    with pytest.raises(CheckpointError) as caught:
        load_model(tiny_checkpoint)
    message = str(caught.value)
    assert str(tiny_checkpoint) in message
    assert "unknown key 'model.json.shortcut'" in message
    assert "Fix:" in message


def test_unknown_config_key_names_its_path(tiny_checkpoint: Path) -> None:
    _tamper(tiny_checkpoint, lambda meta: meta["config"].update(hiddn=16))
    with pytest.raises(
        CheckpointError, match=r"unknown key 'model\.json\.config\.hiddn' \(did you mean 'hidden'"
    ):
        load_model(tiny_checkpoint)


def test_config_value_that_does_not_build_is_a_checkpoint_error(tiny_checkpoint: Path) -> None:
    _tamper(tiny_checkpoint, lambda meta: meta["config"].update(hidden="wide"))
    with pytest.raises(CheckpointError) as caught:
        load_model(tiny_checkpoint)
    assert str(tiny_checkpoint) in str(caught.value)
    assert "model.json.config.hidden = 'wide'" in str(caught.value)


def test_nested_config_key_of_the_real_model(tmp_path: Path) -> None:
    from robust_mmr_pipeline.model.config import ModelConfig
    from robust_mmr_pipeline.model.mmr import MMRModel

    path = save_checkpoint(
        tmp_path, 1, MMRModel(ModelConfig()), CheckpointContents(trainer_state={"step": 1})
    )
    _tamper(path, lambda meta: meta["config"]["vision"].update(patch_sise=8))
    with pytest.raises(CheckpointError) as caught:
        load_model(path)
    message = str(caught.value)
    assert str(path) in message and "model.json" in message
    assert "'model.json.config.vision.patch_sise' (did you mean 'patch_size'?)" in message
