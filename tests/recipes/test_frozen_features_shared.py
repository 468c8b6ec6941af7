"""LP-FT's frozen train features are saved beside the fine-tuned checkpoint and reused by the
evaluation's frozen-backbone probe, bit for bit, only when computed from the same backbone,
tokenizer, images and rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from robust_mmr_pipeline.engine.checkpoint import save_best
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.recipes import finetune as recipe
from robust_mmr_pipeline.recipes import pretrain as pretrain_recipe
from robust_mmr_pipeline.recipes.evaluate import (
    TaskEvaluator,
    _LinearProbeScorer,
    frozen_backbone_scorer,
)
from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad
from robust_mmr_pipeline.tasks.frozen_features import FEATURES_FILE, load_features, save_features

TINY_MODEL = {
    "vision": {"image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "text": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
             "max_length": 24},
    "fusion": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "decoder": {"hidden_size": 32, "depth": 1, "num_heads": 2},
}  # fmt: skip
TRAINER = {"max_steps": 2, "batch_size": 8, "lr": 1e-3, "eval_every": 1, "log_every": 1,
           "progress_bar": False, "seed": 0}  # fmt: skip


def _backbone(root: Path, config: object, tokenizer: object, seed: int) -> str:
    torch.manual_seed(seed)
    save_best(root, 0, MMRModel(config), {}, tokenizer, True)
    return str(next(root.glob("step-*")))


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shared")
    tables = write_synthrad(SynthRadConfig(n_studies=24, image_size=32, seed=2), root / "raw")
    cache = pretrain_recipe.build_image_cache(
        tables.images, {"synthrad": str(root / "raw")}, str(root / "cache"),
        image_size=32, channels=1, resize_mode="pad", workers=0,
    )  # fmt: skip
    tokenizer = pretrain_recipe.fit_tokenizer(tables.pairs["text"].tolist(), 300, 1, 24)
    config = pretrain_recipe.build_model_config("mmr", "small", TINY_MODEL, tokenizer)
    vqa = tables.vqa.merge(tables.images[["image_id", "domain"]], on="image_id")
    order = np.random.default_rng(0).permutation(vqa["image_id"].unique())
    split = {image: ("val" if i % 4 == 0 else "train") for i, image in enumerate(order)}
    vqa["split"] = vqa["image_id"].map(split)
    train = vqa[vqa["split"] == "train"].reset_index(drop=True)
    val = vqa[vqa["split"] == "val"].reset_index(drop=True)
    backbone = _backbone(root / "backbone", config, tokenizer, seed=0)
    summary = recipe.finetune_task(
        "vqa", train, val, cache["cache_dir"], None, backbone, None, {}, TRAINER,
        str(root / "finetune"), log_to_mlflow=False, linear_probe_epochs=1,
    )  # fmt: skip
    return {"root": root, "cache": cache["cache_dir"], "tokenizer": tokenizer, "config": config,
            "train": train, "val": val, "backbone": backbone,
            "checkpoint": summary.checkpoint}  # fmt: skip


def _probe(
    release: dict, features_from: str | None, backbone: str | None = None,
    train: pd.DataFrame | None = None,
) -> _LinearProbeScorer:  # fmt: skip
    ours = TaskEvaluator("vqa", release["checkpoint"], release["cache"], n_boot=0)
    train = release["train"] if train is None else train
    _frozen, probe = frozen_backbone_scorer(
        "vqa", backbone or release["backbone"], ours, train, release["val"], 0,
        features_from=features_from,
    )  # fmt: skip
    assert probe is not None
    return probe


def test_lpft_features_are_saved_and_the_probe_reuses_them_bit_for_bit(release: dict) -> None:
    assert (Path(release["checkpoint"]) / FEATURES_FILE).is_file()
    shared = _probe(release, release["checkpoint"])
    fresh = _probe(release, None)
    assert shared.reused_train_features and not fresh.reused_train_features
    # the saved features are exactly what the probe encodes itself: the same fitted probe
    ours = TaskEvaluator("vqa", release["checkpoint"], release["cache"], n_boot=0)
    encoded = fresh._features(ours.inputs(release["train"]))
    saved = fresh._train_features(release["train"], release["checkpoint"])
    np.testing.assert_array_equal(saved, encoded)
    np.testing.assert_array_equal(shared.probe[-1].coef_, fresh.probe[-1].coef_)


def test_features_of_other_rows_or_another_backbone_are_not_reused(release: dict) -> None:
    fewer = release["train"].iloc[1:].reset_index(drop=True)
    assert not _probe(release, release["checkpoint"], train=fewer).reused_train_features
    edited = release["train"].copy()
    edited.loc[0, "question"] = edited.loc[0, "question"] + " really"
    assert not _probe(release, release["checkpoint"], train=edited).reused_train_features
    other = _backbone(release["root"] / "other_backbone", release["config"],
                      release["tokenizer"], seed=1)  # fmt: skip
    assert not _probe(release, release["checkpoint"], backbone=other).reused_train_features


def test_a_stale_or_damaged_file_is_recomputed_not_read(tmp_path: Path) -> None:
    features = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    save_features(tmp_path, features, "key-a")
    assert torch.equal(load_features(tmp_path, "key-a"), features)
    assert load_features(tmp_path, "key-b") is None  # stale: another key
    assert load_features(None, "key-a") is None and load_features(tmp_path / "x", "key-a") is None
    (tmp_path / FEATURES_FILE).write_bytes(b"not safetensors")
    assert load_features(tmp_path, "key-a") is None
