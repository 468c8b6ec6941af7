"""Encoders, fusion, memory and heads in isolation: shapes, patch dropping, tying, loading."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file, save_model

from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.model.config_sections import MemoryConfig
from robust_mmr_pipeline.model.flops import training_flops_per_sample
from robust_mmr_pipeline.model.heads import sincos_2d
from robust_mmr_pipeline.model.masking import random_patch_mask
from robust_mmr_pipeline.model.memory import CrossModalMemory
from robust_mmr_pipeline.model.text import TextEncoder
from robust_mmr_pipeline.model.vision import VisionEncoder
from robust_mmr_pipeline.model.weights import WeightFileError


def test_vision_encoder_drops_masked_patches(config_factory) -> None:
    config = config_factory()
    encoder = VisionEncoder(config.vision).eval()
    n = config.vision.num_patches  # 16
    images = torch.rand(3, 1, 16, 16)
    seen: list[int] = []
    encoder.vit.blocks[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    mask = random_patch_mask(3, n, 0.75)
    out = encoder(images, mask.keep_ids)
    assert out.shape == (3, 1 + n // 4, 32)
    assert seen == [1 + n // 4]  # the blocks see CLS + kept patches only
    # keeping every patch in order is the plain ViT forward
    all_ids = torch.arange(n).expand(3, -1)
    assert torch.allclose(encoder(images, all_ids), encoder(images), atol=1e-6)
    assert torch.allclose(encoder(images), encoder.vit.forward_features(
        (images - encoder.pixel_mean) / encoder.pixel_std), atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "wrapped_pt", "mmr_checkpoint"])
def test_vision_pretrained_path(config_factory, tmp_path: Path, fmt: str) -> None:
    config = config_factory()
    source = MMRModel(config)
    state = source.vision.vit.state_dict()
    path = tmp_path / f"vit.{'safetensors' if fmt in ('safetensors', 'mmr_checkpoint') else 'pt'}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "pt":
        torch.save(state, path)
    elif fmt == "wrapped_pt":
        torch.save({"model": state, "epoch": 3}, path)
    else:  # a whole MMR checkpoint as the engine writes it (tied weights handled)
        save_model(source, str(path))
    loaded = VisionEncoder(
        config_factory(overrides={"vision": {"pretrained_path": str(path)}}).vision
    )
    for key, value in state.items():
        assert torch.equal(loaded.vit.state_dict()[key], value), key


def test_pretrained_path_errors(config_factory, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        VisionEncoder(config_factory(overrides={"vision": {"pretrained_path": "/no/such"}}).vision)
    bad = tmp_path / "bad.pt"
    torch.save({"something": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="no ViT weight"):
        VisionEncoder(config_factory(overrides={"vision": {"pretrained_path": str(bad)}}).vision)
    # pickled objects besides tensors: refused with the fix, never unpickled
    pickled = tmp_path / "pickled.pt"
    torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=1.0)}, pickled)
    with pytest.raises(WeightFileError, match="holds pickled Python objects") as caught:
        VisionEncoder(
            config_factory(overrides={"vision": {"pretrained_path": str(pickled)}}).vision
        )
    assert "weights_only" not in str(caught.value) and "Fix:" in str(caught.value)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightFileError, match="not a readable safetensors file"):
        VisionEncoder(
            config_factory(overrides={"vision": {"pretrained_path": str(garbage)}}).vision
        )


def test_text_pretrained_path(config_factory, tmp_path: Path) -> None:
    config = config_factory()
    source = TextEncoder(config.text)
    folder = tmp_path / "hf"
    source.model.save_pretrained(folder)
    file = tmp_path / "bert.pt"
    torch.save({f"bert.{k}": v for k, v in source.model.state_dict().items()}, file)
    for path in (folder, file):
        text_cfg = config_factory(overrides={"text": {"pretrained_path": str(path)}}).text
        loaded = TextEncoder(text_cfg)
        for key, value in source.model.state_dict().items():
            assert torch.equal(loaded.model.state_dict()[key], value), (path, key)


def test_mlm_head_is_tied_to_word_embeddings(config_factory) -> None:
    model = MMRModel(config_factory())
    assert model.mlm_head is not None
    assert model.mlm_head.decoder.weight is model.text.word_embeddings.weight
    names = [n for n, _ in model.named_parameters()]
    assert "mlm_head.decoder.weight" not in names  # counted once, as the embedding


def test_fusion_ignores_padding(config_factory, batch_factory) -> None:
    model = MMRModel(config_factory()).eval()
    batch = batch_factory(model.config, 3)
    ids = batch["input_ids"].clone()
    ids[batch["attention_mask"] == 0] = 7  # garbage behind the padding mask
    with torch.no_grad():
        a = model.encode(batch["pixel_values"], batch["input_ids"], batch["attention_mask"])
        b = model.encode(batch["pixel_values"], ids, batch["attention_mask"])
    assert torch.allclose(a.fused, b.fused, atol=1e-5)
    assert torch.allclose(a.image_tokens, b.image_tokens, atol=1e-5)


def test_memory_reads_only_top_k_slots() -> None:
    torch.manual_seed(0)
    memory = CrossModalMemory(8, MemoryConfig(enabled=True, num_slots=32, top_k=3, num_heads=1))
    x = torch.randn(1, 1, 8)
    out = memory(x)
    assert out.shape == (1, 1, 8)
    out.pow(2).sum().backward()
    touched = (memory.slots.grad.abs().sum(1) > 0).sum()
    assert int(touched) == 3
    batch = memory(torch.randn(4, 5, 8))
    assert batch.shape == (4, 5, 8)
    assert torch.allclose(batch.mean(-1), torch.zeros(4, 5), atol=1e-5)  # X' = LN(X + r)


def test_sincos_positions() -> None:
    pos = sincos_2d(16, 4)
    assert pos.shape == (17, 16)
    assert torch.equal(pos[0], torch.zeros(16))
    assert len({tuple(row.tolist()) for row in pos[1:]}) == 16  # distinct positions


def test_param_groups_cover_every_parameter_once(config_factory) -> None:
    model = MMRModel(config_factory("robust_mmr_mpma"))
    groups = model.param_groups(weight_decay=0.05, head_lr_mult=5.0, base_lr=1e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone_decay"]["lr"] == pytest.approx(1e-4)
    assert by_name["head_decay"]["lr"] == pytest.approx(5e-4)
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    for name, param in model.named_parameters():
        if param.ndim < 2 or "embeddings" in name or name.endswith(("pos_embed", "cls_token")):
            assert id(param) in no_decay, name
    assert id(model.fusion.memory.slots) in no_decay
    assert id(model.logit_scale) in no_decay
    torch.optim.AdamW(groups)  # accepted as is


def test_flops_joint_pass_is_cheaper_than_m3ae(config_factory) -> None:
    from robust_mmr_pipeline.model import apply_preset

    joint = training_flops_per_sample(apply_preset("mmr"))
    m3ae = training_flops_per_sample(apply_preset("mmr", {"m3ae_style": True}))
    assert joint > 0 and m3ae / joint >= 2.0
    base = apply_preset("mmr", size="base")
    assert 3e10 < training_flops_per_sample(base) < 1e12
    assert MMRModel(config_factory()).flops_per_sample() > 0


def test_roberta_text_encoder_and_length_check(config_factory, batch_factory) -> None:
    config = config_factory("mmr", {"text": {"arch": "roberta"}})
    model = MMRModel(config)
    batch = batch_factory(config, 2)
    out = model(batch)
    assert torch.isfinite(out.loss)
    too_long = torch.ones(2, config.text.max_length + 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"exceeds text.max_length"):
        model.text(too_long, too_long)
