"""Fine-tuning a pre-trained backbone reads text with the tokenizer stored with its checkpoint,
also when the catalog's tokenizer has been refitted since (a real Kedro run, test env)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robust_mmr_pipeline.engine import tokenizer_fingerprint
from robust_mmr_pipeline.engine.checkpoint import load_tokenizer
from robust_mmr_pipeline.model.tokenizer import save_tokenizer, train_tokenizer


@pytest.mark.slow
def test_finetuning_uses_the_tokenizer_of_the_backbone_checkpoint(
    chain_project: Path, run_kedro
) -> None:
    manifest = json.loads((chain_project / "data/06_models/pretrain_checkpoint.json").read_text())
    backbone = load_tokenizer(chain_project / manifest["checkpoint"])
    assert backbone is not None
    refitted = train_tokenizer(["a later corpus with other words"] * 3, 64, 1, 32)
    save_tokenizer(refitted, chain_project / "data/06_models/tokenizer")
    assert tokenizer_fingerprint(refitted) != tokenizer_fingerprint(backbone)

    run_kedro("finetune", params={"finetune": {"tasks": ["vqa"]}})
    tasks = json.loads((chain_project / "data/06_models/finetune_manifest.json").read_text())
    used = load_tokenizer(chain_project / tasks["tasks"]["vqa"]["checkpoint"])
    assert tokenizer_fingerprint(used) == tokenizer_fingerprint(backbone)


@pytest.mark.slow
def test_an_unknown_key_in_the_backbone_model_json_names_the_checkpoint_file(
    chain_project: Path,
) -> None:
    import os
    import subprocess
    import sys

    manifest = json.loads((chain_project / "data/06_models/pretrain_checkpoint.json").read_text())
    meta_file = chain_project / manifest["checkpoint"] / "model.json"
    meta = json.loads(meta_file.read_text())
    meta["config"]["fusion"]["num_layer"] = 1  # a misspelt key
    meta_file.write_text(json.dumps(meta))
    env = {**os.environ, "PYTHONPATH": str(chain_project / "src"), "COLUMNS": "200"}
    env.pop("ROBUST_MMR_TRACEBACK", None)
    kedro = str(Path(sys.executable).with_name("kedro"))
    result = subprocess.run(
        [kedro, "run", "--env=test", "--pipelines=finetune", "--params=finetune.tasks=[vqa]"],
        cwd=chain_project, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in output, output[-3000:]
    error = " ".join(output[output.index("Error: ") :].split())
    assert "Error: CheckpointError: Checkpoint " in error
    assert "unknown key 'model.json.config.fusion.num_layer'" in error
    assert "did you mean 'num_layers'?" in error
    assert f"{manifest['checkpoint']}/model.json" in error and "Fix:" in error
