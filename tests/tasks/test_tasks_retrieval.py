"""Retrieval: two-stage search vs the full cross-encoder, re-ranking order, inputs from pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from tasks_test_support import MAX_LENGTH, build_cache, caption, tiny_config, tiny_tokenizer

from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.tasks import (
    ITMScorer,
    RetrievalInputs,
    TaskModel,
    contrastive_search,
    cross_encoder_search,
    encode_inputs,
    evaluate_retrieval,
    two_stage_search,
)
from robust_mmr_pipeline.tasks.retrieval import rerank_order


def _random_inputs(config, n_images: int = 7, seed: int = 0) -> RetrievalInputs:
    """Random images and texts; images 0 and 3 have two texts each."""
    gen = torch.Generator().manual_seed(seed)
    text_to_image = torch.tensor([*range(n_images), 0, 3])
    n_texts, t = len(text_to_image), config.text
    lengths = torch.randint(3, MAX_LENGTH + 1, (n_texts,), generator=gen)
    pos = torch.arange(MAX_LENGTH)[None]
    attn = (pos < lengths[:, None]).long()
    ids = torch.randint(5, t.vocab_size, (n_texts, MAX_LENGTH), generator=gen)
    ids[:, 0] = t.cls_token_id
    ids = torch.where(attn.bool(), ids, torch.full_like(ids, t.pad_token_id))
    size = config.vision.image_size
    images = torch.randint(0, 256, (n_images, 1, size, size), generator=gen, dtype=torch.uint8)
    return RetrievalInputs(images, ids, attn, text_to_image)


@pytest.mark.parametrize("preset", ["mmr", "mpma"])
def test_two_stage_with_k_equal_n_matches_the_cross_encoder(preset: str) -> None:
    torch.manual_seed(0)
    config = tiny_config(preset)
    model = MMRModel(config).eval()
    inputs = _random_inputs(config)
    full = cross_encoder_search(model, inputs, batch_size=16)
    assert full.itm_pairs == inputs.num_images * inputs.num_texts  # the matrix once
    k = max(inputs.num_images, inputs.num_texts)
    two = two_stage_search(model, inputs, k=k, batch_size=16)
    assert two.itm_pairs == full.itm_pairs  # pairs proposed by both directions scored once
    assert torch.equal(two.i2t_ranks, full.i2t_ranks)
    assert torch.equal(two.t2i_ranks, full.t2i_ranks)
    # the uncached path (MMRModel.encode on every pair) ranks identically
    uncached = cross_encoder_search(model, inputs, batch_size=16, reuse_unimodal=False)
    assert torch.equal(uncached.i2t_ranks, full.i2t_ranks)
    assert torch.equal(uncached.t2i_ranks, full.t2i_ranks)
    # and its scores are the model's ITM probabilities
    scorer = ITMScorer(model, inputs, batch_size=4)
    pairs_i, pairs_t = torch.tensor([0, 1, 2]), torch.tensor([4, 1, 7])
    probability = model.itm_score(
        inputs.pixel_values(pairs_i), inputs.input_ids[pairs_t], inputs.attention_mask[pairs_t]
    )
    torch.testing.assert_close(torch.sigmoid(scorer(pairs_i, pairs_t)), probability)


def test_two_stage_keeps_contrastive_order_outside_the_top_k() -> None:
    order = torch.tensor([[3, 1, 0, 2, 4], [0, 1, 2, 3, 4]])
    scores = torch.tensor([[0.1, 0.9], [0.5, 0.5]])  # the second row ties: contrastive order
    assert rerank_order(order, scores).tolist() == [[1, 3, 0, 2, 4], [0, 1, 2, 3, 4]]
    torch.manual_seed(0)
    config = tiny_config()
    model = MMRModel(config).eval()
    inputs = _random_inputs(config)
    encoding = encode_inputs(model, inputs)
    stage_one = contrastive_search(model, inputs, encoding=encoding)
    two = two_stage_search(model, inputs, k=2, encoding=encoding)
    assert 0 < two.itm_pairs <= 2 * (inputs.num_images + inputs.num_texts)  # shared pairs once
    # a true item outside the contrastive top-2 keeps its contrastive rank
    outside = stage_one.i2t_ranks > 2
    assert torch.equal(two.i2t_ranks[outside], stage_one.i2t_ranks[outside])
    assert bool((two.i2t_ranks[~outside] <= 2).all())
    outside = stage_one.t2i_ranks > 2
    assert torch.equal(two.t2i_ranks[outside], stage_one.t2i_ranks[outside])


def test_query_subsets_and_inputs_from_pairs(tmp_path: Path) -> None:
    cache, left, ids = build_cache(tmp_path, 6)
    pairs = pd.DataFrame(
        {
            "image_id": [*ids, ids[1]],
            "text": [caption(bool(x)) for x in left] + ["the left half of the image is bright"],
        }
    )
    inputs = RetrievalInputs.from_pairs(pairs, cache, tiny_tokenizer(), max_length=MAX_LENGTH)
    assert inputs.num_images == 6 and inputs.num_texts == 7
    assert inputs.text_to_image.tolist() == [0, 1, 2, 3, 4, 5, 1]
    assert inputs.positives_for_images(torch.tensor([1]))[0].nonzero()[:, 0].tolist() == [1, 6]
    torch.manual_seed(0)
    model = TaskModel.from_scratch(
        tiny_config(vocab_size=len(tiny_tokenizer())), "retrieval"
    ).eval()
    full = cross_encoder_search(model, inputs)
    subset = cross_encoder_search(model, inputs, image_queries=[4, 1], text_queries=[6])
    assert subset.itm_pairs == 2 * 7 + 6 * 1
    assert subset.i2t_ranks.tolist() == full.i2t_ranks[[4, 1]].tolist()
    assert subset.t2i_ranks.tolist() == full.t2i_ranks[[6]].tolist()
    skip_texts = two_stage_search(model, inputs, k=3, text_queries=[])
    assert len(skip_texts.t2i_ranks) == 0 and "t2i_r@1" not in skip_texts.metrics()
    metrics, result = evaluate_retrieval(model, inputs, method="two_stage", k=3, n_boot=100)
    for key in ("i2t_r@1", "i2t_r@10", "t2i_mean_rank", "t2i_median_rank", "rsum"):
        assert key in metrics
    assert metrics["i2t_r@10"] == 1.0  # 7 texts: everything is in the top 10
    low, high = metrics["i2t_mean_rank_ci_low"], metrics["i2t_mean_rank_ci_high"]
    assert low <= metrics["i2t_mean_rank"] <= high
    assert result.k == 3 and result.method == "two_stage"
