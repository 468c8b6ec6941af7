"""Task metrics on hand-built cases: VQA split, OOV, macro-F1, ranks, bootstrap, mCE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from robust_mmr_pipeline.tasks import (
    OOV_LABEL,
    bootstrap_ci,
    corruption_error,
    macro_f1,
    mean_corruption_error,
    mean_rank_degradation,
    performance_drop,
    rank_metrics,
    ranks_from_scores,
    vqa_accuracy,
    vqa_metrics,
)
from robust_mmr_pipeline.tasks.evaluation import classification_metrics
from robust_mmr_pipeline.tasks.metrics import (
    macro_f1_batched,
    mean_statistic,
    ranks_from_order,
    recall_statistic,
)


def test_vqa_accuracy_splits_closed_and_open() -> None:
    # 4 closed (3 right), 3 open (1 right)
    pred = [0, 1, 1, 0, 2, 3, 4]
    true = [0, 1, 1, 1, 2, 0, 0]
    types = ["closed", "closed", "closed", "closed", "open", "open", "open"]
    out = vqa_accuracy(pred, true, types)
    assert out["closed"] == pytest.approx(3 / 4)
    assert out["open"] == pytest.approx(1 / 3)
    assert out["overall"] == pytest.approx(4 / 7)
    assert (out["n"], out["n_closed"], out["n_open"], out["n_oov"]) == (7, 4, 3, 0)
    ids = [0, 0, 0, 0, 1, 1, 1]  # the same with answer-type ids (0 closed, 1 open)
    assert vqa_accuracy(pred, true, ids) == out


def test_out_of_vocabulary_answers_count_as_wrong() -> None:
    pred = np.array([0, 1, 2, 3])
    true = np.array([0, OOV_LABEL, 2, OOV_LABEL])  # two answers unseen in training
    out = vqa_accuracy(pred, true, ["open"] * 4)
    assert out["overall"] == 0.5 and out["open"] == 0.5  # not 2 / 2: nothing is dropped
    assert out["n"] == 4 and out["n_oov"] == 2
    logits = torch.nn.functional.one_hot(torch.tensor(pred), 5).float()
    with_ci = vqa_metrics(logits, true, [1, 1, 1, 1], n_boot=50)
    assert with_ci["overall"] == 0.5 and math.isnan(with_ci["closed"])
    cls = classification_metrics(pred, true, num_classes=5, n_boot=50)
    assert cls["accuracy"] == 0.5 and cls["n_oov"] == 2


def test_macro_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 200)
    pred = np.where(rng.random(200) < 0.6, true, rng.integers(0, 5, 200))
    expected = f1_score(true, pred, average="macro")
    assert macro_f1(pred, true) == pytest.approx(expected)
    # vectorised version used by the bootstrap: row by row equal to sklearn
    idx = rng.integers(0, 200, (6, 200))
    batched = macro_f1_batched(pred[idx], true[idx], 5)
    for row in range(6):
        reference = f1_score(true[idx[row]], pred[idx[row]], average="macro")
        assert batched[row] == pytest.approx(reference)
    # OOV labels: a false positive for the predicted class, no class of their own
    true_oov = true.copy()
    true_oov[:20] = OOV_LABEL
    classes = sorted(set(true_oov[true_oov >= 0]) | set(pred))
    reference = f1_score(true_oov, pred, labels=classes, average="macro", zero_division=0)
    assert macro_f1(pred, true_oov) == pytest.approx(reference)
    assert macro_f1_batched(pred[None], true_oov[None], 5)[0] == pytest.approx(reference)


def test_ranks_recall_mean_and_median_on_a_hand_built_matrix() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.3, 0.2],  # true 0 -> rank 1
            [0.5, 0.4, 0.6, 0.1],  # true 1 -> rank 3
            [0.2, 0.8, 0.1, 0.3],  # true 2 -> rank 4
            [0.1, 0.2, 0.3, 0.4],  # true 3 -> rank 1
        ]
    )
    positives = torch.eye(4, dtype=torch.bool)
    ranks = ranks_from_scores(scores, positives)
    assert ranks.tolist() == [1, 3, 4, 1]
    out = rank_metrics(ranks, ks=(1, 2, 3))
    assert out["r@1"] == 0.5 and out["r@2"] == 0.5 and out["r@3"] == 0.75
    assert out["mean_rank"] == pytest.approx(9 / 4)
    assert out["median_rank"] == pytest.approx(2.0)
    # several positives: the first one found counts; ties broken by candidate index
    multi = torch.tensor([[False, True, True, False]])
    assert ranks_from_scores(torch.tensor([[1.0, 0.5, 0.5, 2.0]]), multi).tolist() == [3]
    order = torch.tensor([[3, 2, 1, 0]])
    assert ranks_from_order(order, multi).tolist() == [2]


def test_bootstrap_ci_contains_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(1)
    small = (rng.random(100) < 0.7).astype(float)
    large = (rng.random(4000) < 0.7).astype(float)
    ci_small = bootstrap_ci(mean_statistic, small, n_boot=500, seed=0)
    ci_large = bootstrap_ci(mean_statistic, large, n_boot=500, seed=0)
    for ci, data in ((ci_small, small), (ci_large, large)):
        assert ci.estimate == pytest.approx(data.mean())
        assert ci.low <= ci.estimate <= ci.high
    assert ci_large.width < ci_small.width / 3  # ~ 1 / sqrt(n): sqrt(40) ≈ 6.3
    again = bootstrap_ci(mean_statistic, small, n_boot=500, seed=0)
    assert again == ci_small  # seeded
    ranks = rng.integers(1, 30, 300).astype(float)
    recall = bootstrap_ci(recall_statistic(10), ranks, n_boot=300, seed=2)
    assert recall.low <= float(np.mean(ranks <= 10)) <= recall.high


def test_mean_corruption_error_hand_computed() -> None:
    model = {"noise": [0.1, 0.2, 0.3], "blur": [0.2, 0.2, 0.2]}
    base = {"noise": [0.2, 0.4, 0.6], "blur": [0.1, 0.2, 0.3]}
    out = mean_corruption_error(model, base)
    # noise: 0.6 / 1.2 = 0.5; blur: 0.6 / 0.6 = 1.0; mCE = 0.75
    assert out["per_corruption"]["noise"] == pytest.approx(0.5)
    assert out["per_corruption"]["blur"] == pytest.approx(1.0)
    assert out["mce"] == pytest.approx(0.75)
    relative = corruption_error([0.1, 0.2, 0.3], [0.2, 0.4, 0.6], 0.05, 0.1)
    assert relative == pytest.approx((0.6 - 0.15) / (1.2 - 0.3))
    with pytest.raises(ValueError, match="lack"):
        mean_corruption_error({"jpeg": [0.1]}, base)


def test_drop_and_mean_rank_degradation() -> None:
    assert performance_drop(0.8, 0.6) == pytest.approx(0.2)
    assert performance_drop(0.8, 0.6, relative=True) == pytest.approx(0.25)
    out = mean_rank_degradation([1, 2, 3], [4, 4, 7])
    assert out["clean_mean_rank"] == 2 and out["perturbed_mean_rank"] == 5
    assert out["degradation"] == 3 and out["ratio"] == 2.5
