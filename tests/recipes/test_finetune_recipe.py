"""The finetune recipe on real (tiny) SynthRad data: selection on validation only, metrics with
CIs, perturbed evaluation, and the API the tuning code builds on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from robust_mmr_pipeline.recipes import evaluate as evaluate_recipe
from robust_mmr_pipeline.recipes import finetune as recipe
from robust_mmr_pipeline.recipes import pretrain as pretrain_recipe
from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad

TINY_MODEL = {
    "vision": {"image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "text": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64,
             "max_length": 24},
    "fusion": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "decoder": {"hidden_size": 32, "depth": 1, "num_heads": 2},
}  # fmt: skip
TRAINER = {"max_steps": 4, "batch_size": 8, "lr": 1e-3, "eval_every": 1, "log_every": 1,
           "progress_bar": False, "seed": 0}  # fmt: skip


@pytest.fixture(scope="module")
def synthrad(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("synthrad")
    tables = write_synthrad(SynthRadConfig(n_studies=48, image_size=32, seed=1), root / "raw")
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
    return {"cache": cache["cache_dir"], "tokenizer": tokenizer, "config": config, "vqa": vqa}


def test_vqa_selects_the_best_validation_step_and_evaluates_with_cis(
    synthrad: dict, tmp_path: Path
) -> None:
    vqa = synthrad["vqa"]
    train, val = vqa[vqa["split"] == "train"], vqa[vqa["split"] == "val"]
    summary = recipe.finetune_task(
        "vqa", train, val, synthrad["cache"], synthrad["tokenizer"], None, synthrad["config"],
        {"answer_min_count": 1}, TRAINER, str(tmp_path / "vqa"), log_to_mlflow=False,
    )  # fmt: skip
    assert [r["step"] for r in summary.history] == [1, 2, 3, 4]
    values = [r["val/overall"] for r in summary.history]
    assert summary.best_step == values.index(max(values)) + 1
    assert summary.val_metrics["overall"] == max(values)
    assert Path(summary.checkpoint).name == f"step-{summary.best_step:08d}"
    assert summary.as_dict()["from_scratch"] is True and summary.num_classes > 1

    clean = evaluate_recipe.evaluate_task(
        "vqa", summary.checkpoint, val, synthrad["cache"], None, None, 16, 200, 0
    )
    # the selected checkpoint reproduces its validation accuracy
    assert clean["overall"] == pytest.approx(summary.val_metrics["overall"])
    noisy = evaluate_recipe.evaluate_task(
        "vqa", summary.checkpoint, val, synthrad["cache"], synthrad["tokenizer"],
        {"modality": "image", "perturbation": "gaussian_noise", "severity": 5, "seed": 3},
        16, 200, 0,
    )  # fmt: skip
    for metrics in (clean, noisy):
        for name in ("overall", "closed", "open"):
            assert (
                0 <= metrics[f"{name}_ci_low"] <= metrics[name] <= metrics[f"{name}_ci_high"] <= 1
            )
        assert metrics["n"] == len(val)


def test_selection_refuses_test_rows_and_unknown_options(synthrad: dict, tmp_path: Path) -> None:
    vqa = synthrad["vqa"]
    train = vqa[vqa["split"] == "train"]
    leaked = vqa[vqa["split"] == "val"].assign(split="test")
    args = (synthrad["cache"], synthrad["tokenizer"], None, synthrad["config"])
    with pytest.raises(ValueError, match="validation rows only"):
        recipe.finetune_task("vqa", train, leaked, *args, {}, TRAINER, str(tmp_path / "a"))
    with pytest.raises(ValueError, match=r"unknown key 'finetune\.task_options\.vqa\.vqa_los'"):
        recipe.finetune_task(
            "vqa", train, vqa[vqa["split"] == "val"], *args, {"vqa_los": "ce"}, TRAINER,
            str(tmp_path / "b"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="train rows only"):
        recipe.task_vocabulary("vqa", vqa)


def test_retrieval_finetunes_and_ranks(synthrad: dict, tmp_path: Path) -> None:
    vqa = synthrad["vqa"]
    split = vqa.drop_duplicates("image_id").set_index("image_id")["split"]
    captions = pd.DataFrame(
        {"image_id": split.index, "text": [f"study {i} {s}" for i, s in enumerate(split)]}
    )
    captions["split"] = captions["image_id"].map(split)
    train = captions[captions["split"] == "train"]
    val = captions[captions["split"] == "val"]
    summary = recipe.finetune_task(
        "retrieval", train, val, synthrad["cache"], synthrad["tokenizer"], None,
        synthrad["config"], {"retrieval_k": 4}, {**TRAINER, "max_steps": 2}, str(tmp_path),
        log_to_mlflow=False,
    )  # fmt: skip
    assert summary.selection_metric == "rsum" and summary.num_classes == 0
    metrics = evaluate_recipe.evaluate_task(
        "retrieval", summary.checkpoint, val, synthrad["cache"], None,
        {"modality": "text", "perturbation": "typos", "severity": 3, "seed": 0}, 16, 100, 0,
        retrieval_k=4,
    )  # fmt: skip
    assert 1 <= metrics["t2i_mean_rank"] <= len(val)
    assert metrics["t2i_r@10_ci_low"] <= metrics["t2i_r@10"] <= metrics["t2i_r@10_ci_high"]


def test_wise_ft_keeps_the_best_interpolant_on_validation(synthrad: dict, tmp_path: Path) -> None:
    """WiSE-FT after LP-FT: every alpha scored on val, the fine-tuned end point among them; the
    kept checkpoint is the chosen interpolant and reproduces its validation accuracy."""
    import torch

    from robust_mmr_pipeline.engine.checkpoint import save_checkpoint
    from robust_mmr_pipeline.engine.checkpoint_layout import CheckpointContents
    from robust_mmr_pipeline.model import MMRModel

    torch.manual_seed(0)
    backbone = save_checkpoint(
        tmp_path / "pretrain", 0, MMRModel(synthrad["config"]),
        CheckpointContents(trainer_state={"step": 0}), tokenizer=synthrad["tokenizer"],
    )  # fmt: skip
    vqa = synthrad["vqa"]
    train, val = vqa[vqa["split"] == "train"], vqa[vqa["split"] == "val"]
    summary = recipe.finetune_task(
        "vqa", train, val, synthrad["cache"], None, str(backbone), synthrad["config"],
        {"answer_min_count": 1}, TRAINER, str(tmp_path / "vqa"), log_to_mlflow=False,
        linear_probe_epochs=5, wise_ft_alphas=(0.0, 0.5),
    )  # fmt: skip
    wise = summary.wise_ft
    assert wise is not None and set(wise["val"]) == {"0", "0.5", "1"}
    # alpha 1 is the selected fine-tuning step itself; alpha 0 the probed start (step 0)
    assert wise["val"]["1"] == pytest.approx(max(r["val/overall"] for r in summary.history))
    assert wise["val"]["0"] == pytest.approx(summary.history[0]["val/overall"])
    assert wise["val"][f"{wise['alpha']:g}"] == max(wise["val"].values())
    assert summary.val_metrics["overall"] == pytest.approx(max(wise["val"].values()))
    kept = evaluate_recipe.evaluate_task(
        "vqa", summary.checkpoint, val, synthrad["cache"], None, None, 16, 0, 0
    )
    assert kept["overall"] == pytest.approx(summary.val_metrics["overall"])


def test_on_eval_sees_every_validation_pass_and_can_stop_the_run(
    synthrad: dict, tmp_path: Path
) -> None:
    """Optuna's pruning hook: called after each validation pass; what it raises stops the run."""

    class Stop(Exception):
        pass

    seen: list[int] = []

    def on_eval(step: int, values: dict) -> None:
        assert "overall" in values
        seen.append(step)
        if step == 2:
            raise Stop

    vqa = synthrad["vqa"]
    with pytest.raises(Stop):
        recipe.finetune_task(
            "vqa", vqa[vqa["split"] == "train"], vqa[vqa["split"] == "val"], synthrad["cache"],
            synthrad["tokenizer"], None, synthrad["config"], {}, TRAINER, str(tmp_path),
            log_to_mlflow=False, on_eval=on_eval,
        )  # fmt: skip
    assert seen == [1, 2]
