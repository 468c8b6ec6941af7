"""Config validation, learning-rate schedule values and AdamW parameter groups."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from engine_test_support import GroupedModel, TinyConfig, make_model

from robust_mmr_pipeline.engine import (
    TrainerConfig,
    TrainerConfigError,
    build_optimizer,
    build_param_groups,
    build_scheduler,
    lr_factor,
)
from robust_mmr_pipeline.engine.optim import no_decay_parameter_names


def test_config_rejects_unknown_and_invalid_values() -> None:
    with pytest.raises(TrainerConfigError, match=r"unknown key 'trainer\.learning_rate'"):
        TrainerConfig.from_dict({"lr": 1e-3, "learning_rate": 1e-3})
    with pytest.raises(TrainerConfigError, match=r"TrainerConfig.lr = -1"):
        TrainerConfig.from_dict({"lr": -1})
    with pytest.raises(TrainerConfigError, match="schedule"):
        TrainerConfig.from_dict({"schedule": "step"})
    with pytest.raises(TrainerConfigError, match="mixed_precision"):
        TrainerConfig.from_dict({"mixed_precision": "fp8"})
    with pytest.raises(TrainerConfigError, match="max_steps"):
        TrainerConfig.from_dict({"max_steps": None, "epochs": None})
    config = TrainerConfig.from_dict({"betas": [0.9, 0.95], "backbone_prefixes": ["enc."]})
    assert config.betas == (0.9, 0.95)
    assert config.backbone_prefixes == ("enc.",)
    assert TrainerConfig.from_dict(config.to_dict()) == config


def test_total_steps_from_epochs_drops_incomplete_batches() -> None:
    config = TrainerConfig(epochs=3, batch_size=4, grad_accum=2)
    # 26 samples -> 6 full global batches per epoch -> 18 micro-batches -> 9 steps
    assert config.total_steps(26) == 9
    assert TrainerConfig(max_steps=5).total_steps(26) == 5
    with pytest.raises(TrainerConfigError, match="less than one optimizer step"):
        TrainerConfig(epochs=1, batch_size=4, grad_accum=8).total_steps(8)


def test_bf16_request_on_cpu_falls_back_to_fp32(caplog: pytest.LogCaptureFixture) -> None:
    config = TrainerConfig(mixed_precision="bf16")
    with caplog.at_level(logging.WARNING, logger="robust_mmr_pipeline.engine.config"):
        assert config.effective_mixed_precision(cuda_available=False) == "no"
    assert "bf16" in caplog.text and "fp32" in caplog.text
    assert config.effective_mixed_precision(cuda_available=True) == "bf16"
    assert TrainerConfig(mixed_precision="fp16", cpu=True).effective_mixed_precision(True) == "no"


def test_warmup_then_cosine_and_linear_values() -> None:
    total, warmup = 10, 2
    assert lr_factor(0, warmup, total, "cosine") == pytest.approx(0.5)
    assert lr_factor(1, warmup, total, "cosine") == pytest.approx(1.0)
    assert lr_factor(2, warmup, total, "cosine") == pytest.approx(1.0)
    # halfway through the decay: cosine 0.5, linear 0.5; with min ratio 0.1 -> 0.55
    assert lr_factor(6, warmup, total, "cosine") == pytest.approx(0.5)
    assert lr_factor(6, warmup, total, "linear") == pytest.approx(0.5)
    assert lr_factor(6, warmup, total, "cosine", 0.1) == pytest.approx(0.55)
    assert lr_factor(4, warmup, total, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_factor(4, warmup, total, "linear") == pytest.approx(0.75)
    assert lr_factor(10, warmup, total, "linear") == pytest.approx(0.0)
    assert lr_factor(7, warmup, total, "constant") == 1.0
    assert lr_factor(0, 0, total, "linear") == pytest.approx(1.0)


def test_scheduler_drives_optimizer_learning_rate() -> None:
    config = TrainerConfig(lr=1e-3, warmup_fraction=0.2, schedule="linear", head_lr_mult=5.0)
    model = make_model()
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, total_steps=10)
    seen = []
    for _ in range(10):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    # name-based groups without backbone prefixes: every group at lr
    expected = [1e-3 * lr_factor(s, 2, 10, "linear") for s in range(10)]
    assert [lrs[0] for lrs in seen] == pytest.approx(expected)
    assert all(len(set(lrs)) == 1 for lrs in seen)


def test_name_based_groups_multipliers_and_no_decay_sets() -> None:
    model = make_model()
    config = TrainerConfig(
        lr=2e-4, weight_decay=0.05, head_lr_mult=5.0, backbone_prefixes=("encoder.", "embed.")
    )
    groups = build_param_groups(model, config)
    by_name = {group["name"]: group for group in groups}
    names = {id(p): n for n, p in model.named_parameters()}
    members = {key: {names[id(p)] for p in group["params"]} for key, group in by_name.items()}
    assert members["backbone_decay"] == {"encoder.weight"}
    assert members["backbone_no_decay"] == {"encoder.bias", "embed.weight"}
    assert members["head_decay"] == {"head.weight", "out.weight"}
    assert members["head_no_decay"] == {"head.bias", "norm.weight", "norm.bias"}
    assert by_name["backbone_decay"]["lr"] == pytest.approx(2e-4)
    assert by_name["head_decay"]["lr"] == pytest.approx(1e-3)
    assert by_name["head_decay"]["weight_decay"] == pytest.approx(0.05)
    assert by_name["head_no_decay"]["weight_decay"] == 0.0
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0
    assert no_decay_parameter_names(model) >= {"embed.weight", "norm.weight", "head.bias"}
    total = sum(len(g["params"]) for g in groups)
    assert total == len(list(model.parameters()))


def test_frozen_parameters_are_left_out() -> None:
    model = make_model()
    model.encoder.weight.requires_grad_(False)
    groups = build_param_groups(model, TrainerConfig())
    assert all(p is not model.encoder.weight for g in groups for p in g["params"])


def test_model_param_groups_take_precedence() -> None:
    torch.manual_seed(0)
    model = GroupedModel(TinyConfig())
    config = TrainerConfig(lr=1e-4, weight_decay=0.01, head_lr_mult=3.0)
    optimizer = build_optimizer(model, config)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    decays = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    assert lrs == pytest.approx({"bb": 1e-4, "hd": 3e-4, "nd": 3e-4})
    assert decays == pytest.approx({"bb": 0.01, "hd": 0.01, "nd": 0.0})
