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
