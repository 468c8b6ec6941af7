"""Nothing good is deleted before the new thing exists: a pre-training or fine-tuning run whose
model cannot be built leaves the earlier run's checkpoints (and what points at them) intact; a
run that works replaces them once it has finished."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robust_mmr_pipeline.engine import (
    list_checkpoints,
    load_model,
    read_trainer_state,
    retire_replaced,
    verify_checkpoint,
)
from robust_mmr_pipeline.recipes import finetune as finetune_recipe
from robust_mmr_pipeline.recipes import pretrain as recipe
from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad

TINY_MODEL = {
    "vision": {"image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "text": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
             "max_length": 24},
    "fusion": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "decoder": {"hidden_size": 32, "depth": 1, "num_heads": 2},
}  # fmt: skip
TRAINER = {"max_steps": 2, "batch_size": 8, "checkpoint_every": 1, "keep_last": 0,
           "log_every": 1, "progress_bar": False, "seed": 0}  # fmt: skip


@pytest.fixture(scope="module")
def synthrad(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("synthrad")
    tables = write_synthrad(SynthRadConfig(n_studies=32, image_size=32, seed=2), root / "raw")
    cache = recipe.build_image_cache(
        tables.images, {"synthrad": str(root / "raw")}, str(root / "cache"),
        image_size=32, channels=1, resize_mode="pad", workers=0,
    )  # fmt: skip
    pairs = tables.pairs.merge(tables.images[["image_id", "domain"]], on="image_id")
    tokenizer = recipe.fit_tokenizer(pairs["text"].tolist(), 300, 1, 24)
    vqa = tables.vqa.merge(tables.images[["image_id", "domain"]], on="image_id")
    order = np.random.default_rng(0).permutation(vqa["image_id"].unique())
    split = {image: ("val" if i % 4 == 0 else "train") for i, image in enumerate(order)}
    vqa["split"] = vqa["image_id"].map(split)
    return {"cache": cache["cache_dir"], "tokenizer": tokenizer, "pairs": pairs, "vqa": vqa}


def _config(synthrad: dict, **vision: object) -> object:
    model = {**TINY_MODEL, "vision": {**TINY_MODEL["vision"], **vision}}
    return recipe.build_model_config("mmr", "small", model, synthrad["tokenizer"])


def _pretrain(synthrad: dict, run_dir: Path, config: object, **trainer: object):
    return recipe.run_pretraining(
        synthrad["pairs"], synthrad["cache"], synthrad["tokenizer"], config,
        {**TRAINER, **trainer}, str(run_dir), log_to_mlflow=False,
    )  # fmt: skip


def test_pretraining_with_a_bad_pretrained_path_keeps_the_earlier_checkpoints(
    synthrad: dict, tmp_path: Path
) -> None:
    run_dir = tmp_path / "pretrain"
    summary, _ = _pretrain(synthrad, run_dir, _config(synthrad))
    manifest = tmp_path / "pretrain_checkpoint.json"  # what the pipeline's catalog writes
    manifest.write_text(json.dumps(summary.as_dict()))
    root = run_dir / "checkpoints"
    before = [path.name for _, path in list_checkpoints(root)]
    assert before == ["step-00000001", "step-00000002"]

    missing = tmp_path / "no_such_vit.safetensors"
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        _pretrain(synthrad, run_dir, _config(synthrad, pretrained_path=str(missing)))
    assert [path.name for _, path in list_checkpoints(root)] == before
    pointed = json.loads(manifest.read_text())["checkpoint"]
    assert verify_checkpoint(pointed) == Path(pointed)
    model, tokenizer, _meta = load_model(pointed)
    assert tokenizer is not None and len(tokenizer) == model.config.text.vocab_size

    # a run that works replaces them once finished; the earlier run's folders go once the
    # manifest names the new checkpoint (the pipeline's hook retires them after saving it)
    summary, _ = _pretrain(synthrad, run_dir, _config(synthrad), max_steps=3, checkpoint_every=3)
    assert verify_checkpoint(pointed) == Path(pointed)
    manifest.write_text(json.dumps(summary.as_dict()))
    retire_replaced(run_dir)
    assert [path.name for _, path in list_checkpoints(root)] == ["step-00000003"]
    assert summary.checkpoint == str(root / "step-00000003")


def test_finetuning_with_a_missing_backbone_keeps_the_earlier_checkpoints_and_best(
    synthrad: dict, tmp_path: Path
) -> None:
    vqa = synthrad["vqa"]
    train, val = vqa[vqa["split"] == "train"], vqa[vqa["split"] == "val"]
    out = tmp_path / "vqa"

    def finetune(backbone: str | None, **trainer: object):
        return finetune_recipe.finetune_task(
            "vqa", train, val, synthrad["cache"], synthrad["tokenizer"], backbone,
            _config(synthrad), {"answer_min_count": 1},
            {**TRAINER, "eval_every": 1, **trainer}, str(out), log_to_mlflow=False,
        )  # fmt: skip

    first = finetune(None)
    kept = sorted(str(p.relative_to(out)) for p in out.glob("*/step-*"))
    assert "best/" + Path(first.checkpoint).name in kept and len(kept) >= 3

    with pytest.raises(Exception, match="no_such_backbone"):
        finetune(str(tmp_path / "no_such_backbone"))
    assert sorted(str(p.relative_to(out)) for p in out.glob("*/step-*")) == kept
    assert verify_checkpoint(first.checkpoint) == Path(first.checkpoint)

    second = finetune(None, max_steps=3, checkpoint_every=3)
    retire_replaced(out)  # what the pipeline's hook does once the manifest is saved
    left = sorted(str(p.relative_to(out)) for p in out.glob("*/step-*"))
    assert left == sorted(["checkpoints/step-00000003", "best/" + Path(second.checkpoint).name])


def test_an_interrupted_finetuning_rerun_keeps_the_finished_run(
    synthrad: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robust_mmr_pipeline.recipes.evaluate import TaskEvaluator

    vqa = synthrad["vqa"]
    train, val = vqa[vqa["split"] == "train"], vqa[vqa["split"] == "val"]
    out = tmp_path / "vqa"

    def finetune(**trainer: object):
        return finetune_recipe.finetune_task(
            "vqa", train, val, synthrad["cache"], synthrad["tokenizer"], None,
            _config(synthrad), {"answer_min_count": 1},
            {**TRAINER, "eval_every": 1, **trainer}, str(out), log_to_mlflow=False,
        )  # fmt: skip

    def folders() -> dict:  # each checkpoint folder, as written (state and inode)
        return {p: (read_trainer_state(p), p.stat().st_ino) for p in out.glob("*/step-*")}

    first = finetune()
    kept = folders()
    evaluate = TaskEvaluator.evaluate
    calls = []

    def interrupted(self, *args, **kwargs):  # Ctrl-C during the second validation
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(TaskEvaluator, "evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune(max_steps=4)
    # the replacement had written a checkpoint and a best/ of its own, beside the finished run
    assert list((out / ".next-run" / "best").glob("step-*"))
    assert folders() == kept
    assert verify_checkpoint(first.checkpoint) == Path(first.checkpoint)
