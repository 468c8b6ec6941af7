"""The fine-tuning recipe for pre-trained backbones: label budgets, layer-wise lr decay, LP-FT,
and the split encoding of a backbone whose GLA projections a task model pruned."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from tasks_test_support import (
    build_cache,
    tiny_config,
    tiny_tokenizer,
    vqa_rows,
)

from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks import TaskModel, VQADataset, answer_vocabulary
from robust_mmr_pipeline.tasks.budgets import budget_label, budget_rows
from robust_mmr_pipeline.tasks.inputs import EvalInputs, fused_features
from robust_mmr_pipeline.tasks.probe import fit_head_on_frozen_features


def _rows(n_images: int, per_image: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [f"img{i:03d}" for i in range(n_images) for _ in range(per_image)],
            "qid": [f"q{i:03d}-{k}" for i in range(n_images) for k in range(per_image)],
        }
    )


def test_label_budgets_are_nested_by_image_and_reach_their_share() -> None:
    rows = _rows(200, 5)
    small, medium, full = (budget_rows(rows, f, seed=3) for f in (0.01, 0.1, 1.0))
    assert full is rows
    assert set(small["qid"]) < set(medium["qid"]) < set(full["qid"])
    # whole images, at least the budget's share of the rows (never less, at most one image more)
    for part, fraction in ((small, 0.01), (medium, 0.1)):
        assert part.groupby("image_id").size().eq(5).all()
        assert fraction * len(rows) <= len(part) < fraction * len(rows) + 5
    # the same seed gives the same rows; another seed other ones
    assert budget_rows(rows, 0.1, seed=3)["qid"].tolist() == medium["qid"].tolist()
    assert budget_rows(rows, 0.1, seed=4)["qid"].tolist() != medium["qid"].tolist()
    assert budget_label(0.1) == "10%" and budget_label(1.0) == "100%"
    with pytest.raises(ValueError, match="fraction"):
        budget_rows(rows, 0.0, seed=0)


def test_layer_decay_scales_the_backbone_by_depth_and_leaves_the_head_at_full_rate() -> None:
    torch.manual_seed(0)
    model = TaskModel.from_scratch(tiny_config("mmr", vocab_size=64), "vqa", num_classes=3)
    plain = model.param_groups(0.01, 10.0, 1e-3)
    decayed = model.param_groups(0.01, 10.0, 1e-3, layer_decay=0.5)
    # every trainable parameter once, in either grouping
    ids = [id(p) for g in decayed for p in g["params"]]
    assert len(ids) == len(set(ids)) == sum(p.requires_grad for p in model.parameters())
    # no decay: the groups (and so the optimizer) are what they were before layer decay existed
    assert {g["name"] for g in plain} == {
        "backbone_decay", "backbone_no_decay", "fusion_decay", "fusion_no_decay",
        "task_head_decay", "task_head_no_decay",
    }  # fmt: skip
    lr_of = {id(p): g["lr"] for g in decayed for p in g["params"]}
    backbone = model.backbone
    top = backbone.num_depths()
    for name, param in backbone.named_parameters():
        depth = backbone.layer_depth(name)
        assert 0 <= depth < top, name
        base = 1.0 if name.startswith(("vision.", "text.")) else model.options.fusion_lr_mult
        assert lr_of[id(param)] == pytest.approx(1e-3 * base * 0.5 ** (top - depth)), name
    embed = backbone.layer_depth("vision.vit.patch_embed.proj.weight")
    first_block = backbone.layer_depth("vision.vit.blocks.0.attn.qkv.weight")
    fusion = backbone.layer_depth("fusion.text_layers.0.ffn.0.weight")
    assert embed == 0 < first_block < fusion < top
    for param in model.head.parameters():
        assert lr_of[id(param)] == pytest.approx(1e-3 * 10.0)


def test_linear_probe_fits_the_head_on_frozen_features(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 24)
    tokenizer = tiny_tokenizer()
    rows = vqa_rows(ids, left)
    vocab = answer_vocabulary(rows)
    torch.manual_seed(0)
    model = TaskModel.from_scratch(
        tiny_config("mmr", vocab_size=len(tokenizer)),
        "vqa",
        label_names=sorted(vocab, key=vocab.__getitem__),
    )
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    labels = torch.tensor(VQADataset(rows, cache, vocab).labels)
    fit = fit_head_on_frozen_features(
        model, rows, labels, cache, tokenizer, text_column="question", epochs=60, lr=1e-2,
        weight_decay=0.0, batch_size=16, seed=0,
    )  # fmt: skip
    # the head learned (the question alone tells yes/no from left/right: above the 0.25 of
    # guessing among 4 answers; observed 0.42-0.55 of the first loss, 0.54-0.79 accuracy over
    # 3 seeds x 1-2 threads) ...
    assert fit.last_loss < 0.75 * fit.first_loss
    assert fit.train_accuracy >= 0.45
    # ... and the backbone did not move
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key


def test_a_pruned_gla_backbone_still_encodes_split(tmp_path: Path) -> None:
    """A VQA model on an MPMA backbone drops the GLA projections; split encoding (evaluation,
    LP-FT) then embeds with the fusion projections instead of failing."""
    cache, left, ids = build_cache(tmp_path, 4)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    backbone = MMRModel(tiny_config("mpma", vocab_size=len(tokenizer)))
    model = TaskModel.from_backbone(backbone, "vqa", num_classes=2).eval()
    assert getattr(model.backbone, "image_contrastive", None) is None
    rows = vqa_rows(ids, left)
    inputs = EvalInputs.from_rows(rows, cache, text_column="question")
    split = fused_features(model.backbone, inputs, tokenizer, 12)
    encoded = tokenizer(inputs.texts, max_length=12, padding="longest", truncation=True,
                        return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        whole = model.backbone.encode(
            inputs.row_pixels(), encoded["input_ids"], encoded["attention_mask"]
        ).fused
    torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-5)
