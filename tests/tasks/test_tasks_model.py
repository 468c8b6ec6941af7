"""ClassifierHead, TaskModel forward / predict / param groups / config, split encoding."""

from __future__ import annotations

import json

import pytest
import torch
from tasks_test_support import MAX_LENGTH, tiny_config
from torch import nn

from robust_mmr_pipeline.engine import TrainerConfig, build_param_groups
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks import (
    OOV_LABEL,
    ClassifierHead,
    TaskConfig,
    TaskConfigError,
    TaskModel,
    TaskOptions,
)
from robust_mmr_pipeline.tasks.retrieval import itm_log_odds


def _batch(config, b: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    v, t = config.vision, config.text
    lengths = torch.tensor([MAX_LENGTH, 5, 7, 4, 9, 6][:b])
    pos = torch.arange(MAX_LENGTH)[None]
    attn = (pos < lengths[:, None]).long()
    ids = torch.randint(5, t.vocab_size, (b, MAX_LENGTH), generator=gen)
    ids[:, 0] = t.cls_token_id
    ids = torch.where(pos == lengths[:, None] - 1, torch.full_like(ids, t.sep_token_id), ids)
    ids = torch.where(attn.bool(), ids, torch.full_like(ids, t.pad_token_id))
    return {
        "pixel_values": torch.rand(b, v.in_chans, v.image_size, v.image_size, generator=gen),
        "input_ids": ids,
        "attention_mask": attn,
        "labels": torch.tensor([0, 2, OOV_LABEL, 1, 0, 1][:b]),
        "group_ids": torch.tensor([0, 1, 1, 2, 3, 4][:b]),
        "text_group_ids": torch.tensor([0, 1, 2, 3, 0, 4][:b]),
    }


def test_classifier_head_shapes_and_structure() -> None:
    head = ClassifierHead(64, 7)
    assert head(torch.randn(5, 64)).shape == (5, 7)
    assert [type(m) for m in (head.dense, head.norm, head.act, head.classifier)] == [
        nn.Linear,
        nn.LayerNorm,
        nn.GELU,
        nn.Linear,
    ]
    assert head.dense.weight.shape == (64, 64)  # M3AE: Linear(d, d)
    narrow = ClassifierHead(64, 3, hidden_dim=16, dropout=0.1)
    assert narrow(torch.randn(2, 64)).shape == (2, 3) and narrow.dense.out_features == 16
    with pytest.raises(ValueError):
        ClassifierHead(64, 0)


@pytest.mark.parametrize("task", ["vqa", "classification"])
def test_classifier_task_forward_predict_and_oov(task: str) -> None:
    torch.manual_seed(0)
    config = tiny_config()
    model = TaskModel.from_scratch(config, task, 3, label_names=["yes", "no", "left"])
    assert model.backbone.mim_decoder is None and model.backbone.itm_head is None  # pruned
    batch = _batch(config)
    out = model(batch, 0.5)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert set(out.losses) == {task} and out.logits.shape == (4, 3)
    assert model.predict(batch).shape == (4, 3)
    # the OOV row takes no part in the loss
    reference = nn.functional.cross_entropy(out.logits[[0, 1, 3]], batch["labels"][[0, 1, 3]])
    assert out.loss.item() == pytest.approx(reference.item(), rel=1e-5)
    # a batch of OOV answers only: zero loss, still backward-able
    only_oov = {**batch, "labels": torch.full((4,), OOV_LABEL)}
    loss = model(only_oov).loss
    loss.backward()
    assert loss.item() == 0.0
    bce = TaskModel.from_scratch(config, "vqa", 3, options=TaskOptions(vqa_loss="bce"))
    assert torch.isfinite(bce(batch).loss)


def test_retrieval_task_forward_and_temperature() -> None:
    torch.manual_seed(0)
    plain = tiny_config("mmr")  # no GLA projections: the task owns a temperature
    model = TaskModel.from_scratch(plain, "retrieval")
    assert model.head is None and model.logit_scale is not None
    batch = _batch(plain, b=5)
    out = model(batch)
    assert set(out.losses) == {"contrastive", "itm"} and out.logits.shape == (5, 2)
    out.loss.backward()
    assert model.logit_scale.grad is not None and model.backbone.itm_head.fc.weight.grad is not None
    gla_config = tiny_config("mmr", {"objectives": {"gla_global": True}})
    gla = TaskModel.from_scratch(gla_config, "retrieval")
    assert gla.logit_scale is None and gla.backbone.image_contrastive is not None
    assert torch.isfinite(gla(batch).loss)
    with pytest.raises(TaskConfigError, match="ITM"):
        TaskModel.from_scratch(tiny_config("mmr", {"objectives": {"itm": False}}), "retrieval")


def test_param_groups_split_backbone_fusion_and_head() -> None:
    options = TaskOptions(fusion_lr_mult=2.0)
    model = TaskModel.from_scratch(tiny_config(), "vqa", 4, options=options)
    groups = model.param_groups(0.01, head_lr_mult=10.0, base_lr=1e-3)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == sum(1 for p in model.parameters() if p.requires_grad)
    by_name = {g["name"]: g for g in groups}
    head_ids = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in by_name["task_head_decay"]["params"]} | {
        id(p) for p in by_name["task_head_no_decay"]["params"]
    } == head_ids
    assert by_name["task_head_decay"]["lr"] == pytest.approx(1e-2)
    assert by_name["task_head_no_decay"]["weight_decay"] == 0.0
    vision_ids = {id(p) for p in model.backbone.vision.parameters()}
    fusion_ids = {id(p) for p in model.backbone.fusion.parameters()}
    for group in groups:
        ids = {id(p) for p in group["params"]}
        if ids & vision_ids:
            assert group["lr_mult"] == 1.0
        if ids & fusion_ids:
            assert group["lr_mult"] == 2.0 and group["name"].startswith("fusion_")
    engine_groups = build_param_groups(model, TrainerConfig(lr=1e-3, head_lr_mult=10.0))
    assert sorted(g["lr"] for g in engine_groups)[-1] == pytest.approx(1e-2)
    retrieval = TaskModel.from_scratch(tiny_config(), "retrieval")
    names = {g["name"]: g for g in retrieval.param_groups(0.01, head_lr_mult=5.0)}
    itm_ids = {id(p) for p in retrieval.backbone.itm_head.parameters()}
    head_groups = [g for n, g in names.items() if n.startswith("task_head")]
    head_group_ids = {id(p) for g in head_groups for p in g["params"]}
    assert itm_ids <= head_group_ids and id(retrieval.logit_scale) in head_group_ids


def test_task_config_round_trip_and_validation() -> None:
    model = TaskModel.from_scratch(
        tiny_config("robust_mmr"),
        "classification",
        label_names=["a", "b", "c"],
        head_hidden_dim=24,
        head_dropout=0.1,
        options=TaskOptions(label_smoothing=0.1, fusion_lr_mult=3.0),
    )
    data = json.loads(json.dumps(model.config.to_dict()))
    config = TaskConfig.from_dict(data)
    assert config.to_dict() == data
    assert config.num_classes == 3 and config.label_names == ("a", "b", "c")
    rebuilt = TaskModel.from_config(data)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    assert rebuilt.head.hidden_dim == 24 and rebuilt.options.fusion_lr_mult == 3.0
    for bad in (
        {**data, "task": "segmentation"},
        {**data, "num_classes": 0},
        {**data, "label_names": ["a"]},
        {**data, "unknown": 1},
        {**data, "options": {"vqa_loss": "focal"}},
    ):
        with pytest.raises(TaskConfigError):
            TaskConfig.from_dict(bad)


@pytest.mark.parametrize("preset", ["mmr", "mpma"])
def test_split_encoding_equals_the_joint_encoding(preset: str) -> None:
    torch.manual_seed(1)
    config = tiny_config(preset)  # mpma: MA-CMF memory and GLA projections
    backbone = MMRModel(config).eval()
    batch = _batch(config, b=3)
    px, ids, attn = batch["pixel_values"], batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        v0, image_emb = backbone.embed_images(px)
        t0, text_emb = backbone.embed_texts(ids, attn)
        fused = backbone.fuse(v0, t0, attn)
        reference = backbone.encode(px, ids, attn).fused
        ref_image, ref_text = backbone.contrastive_embeddings(px, ids, attn)
        score = torch.sigmoid(itm_log_odds(backbone.itm_logits(fused)))
        ref_score = backbone.itm_score(px, ids, attn)
    torch.testing.assert_close(fused, reference)
    torch.testing.assert_close(image_emb, ref_image)
    torch.testing.assert_close(text_emb, ref_text)
    torch.testing.assert_close(score, ref_score)
