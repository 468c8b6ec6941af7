"""A TaskModel trains with the engine, checkpoints, rebuilds, and starts from pre-training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tasks_test_support import (
    MAX_LENGTH,
    build_cache,
    caption,
    tiny_config,
    tiny_tokenizer,
    vqa_rows,
)
from torch.utils.data import DataLoader

from robust_mmr_pipeline.engine import (
    CheckpointContents,
    TrainerConfig,
    load_model,
    save_checkpoint,
    train,
)
from robust_mmr_pipeline.engine.registry import registered_name
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks import (
    RetrievalPairDataset,
    TaskCollator,
    TaskModel,
    VQADataset,
    answer_vocabulary,
    evaluate_vqa,
)


def _trainer(tmp_path: Path, name: str, **overrides: object) -> TrainerConfig:
    settings: dict[str, object] = {
        "max_steps": 40,
        "batch_size": 16,
        "lr": 3e-3,
        "head_lr_mult": 1.0,
        "warmup_fraction": 0.05,
        "schedule": "constant",
        "weight_decay": 0.0,
        "log_every": 5,
        "progress_bar": False,
        "cpu": True,
        "seed": 3,
        "output_dir": str(tmp_path / name),
    }
    settings.update(overrides)
    return TrainerConfig(**settings)


def test_vqa_task_model_trains_checkpoints_and_reloads(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 32)
    rows = vqa_rows(ids, left)
    vocab = answer_vocabulary(rows)
    tokenizer = tiny_tokenizer()
    dataset = VQADataset(rows, cache, vocab)
    collate = TaskCollator(tokenizer, MAX_LENGTH)
    torch.manual_seed(0)
    labels = sorted(vocab, key=vocab.__getitem__)
    model = TaskModel.from_scratch(
        tiny_config(vocab_size=len(tokenizer)), "vqa", label_names=labels
    )
    result = train(model, dataset, _trainer(tmp_path, "vqa"), collate, tokenizer=tokenizer)
    curve = result.loss_curve()
    assert len(curve) == 40 and all(np.isfinite(curve))
    assert np.mean(curve[-8:]) < 0.8 * np.mean(curve[:8])  # ln 4 ≈ 1.39 at the start

    loader = DataLoader(dataset, batch_size=16, collate_fn=collate)
    metrics = evaluate_vqa(model, loader, n_boot=50)
    assert metrics["n"] == 64 and metrics["n_closed"] == 32 and metrics["n_oov"] == 0
    assert metrics["closed_ci_low"] <= metrics["closed"] <= metrics["closed_ci_high"]

    # the engine's checkpoint rebuilds the same model (class from the registry, config,
    # weights, tokenizer)
    assert registered_name(TaskModel) is not None
    rebuilt, saved_tokenizer, info = load_model(result.checkpoint_dir)
    assert isinstance(rebuilt, TaskModel) and info["config"]["task"] == "vqa"
    assert rebuilt.label_names == tuple(labels) and rebuilt.backbone.mim_decoder is None
    assert saved_tokenizer is not None and len(saved_tokenizer) == len(tokenizer)
    model.eval()
    batch = collate([dataset[i] for i in range(8)])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.predict(batch), model.predict(batch))


def test_from_pretrained_mmr_checkpoint_and_retrieval_steps(tmp_path: Path) -> None:
    assert registered_name(MMRModel) is not None  # the model package registers it
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    pretrained = MMRModel(tiny_config(vocab_size=len(tokenizer)))
    folder = save_checkpoint(
        tmp_path / "pretrain",
        5,
        pretrained,
        CheckpointContents(trainer_state={"step": 5}),
        tokenizer=tokenizer,
    )
    model, loaded_tokenizer = TaskModel.from_pretrained(folder, "retrieval")
    assert loaded_tokenizer is not None and model.training
    for name, param in model.backbone.vision.state_dict().items():
        torch.testing.assert_close(param, pretrained.vision.state_dict()[name])
    classifier, _ = TaskModel.from_pretrained(folder, "classification", 3)
    assert classifier.head.num_classes == 3 and classifier.backbone.itm_head is None

    cache, left, ids = build_cache(tmp_path, 16)
    pairs = pd.DataFrame({"image_id": ids, "text": [caption(bool(x)) for x in left]})
    dataset = RetrievalPairDataset(pairs, cache)
    config = _trainer(tmp_path, "retrieval", max_steps=3, batch_size=8)
    result = train(model, dataset, config, TaskCollator(tokenizer, MAX_LENGTH))
    assert result.step == 3
    assert {"loss", "itm", "contrastive"} <= set(result.losses[-1])
    rebuilt, _, _ = load_model(result.checkpoint_dir)
    assert isinstance(rebuilt, TaskModel) and rebuilt.task == "retrieval"
    assert rebuilt.logit_scale is not None
    assert rebuilt.logit_scale.item() == pytest.approx(model.logit_scale.item())
