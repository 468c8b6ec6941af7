"""Patch and token masking: MAE conventions, perturbation-aware bias, BERT 80/10/10."""

from __future__ import annotations

import torch

from robust_mmr_pipeline.model.masking import (
    IGNORE_INDEX,
    num_kept,
    patch_deviation,
    perturbation_aware_patch_mask,
    perturbation_aware_probs,
    perturbation_aware_token_mask,
    random_patch_mask,
    random_token_mask,
)
from robust_mmr_pipeline.model.vision import patchify, unpatchify


def test_random_patch_mask_is_consistent() -> None:
    torch.manual_seed(0)
    pm = random_patch_mask(5, 64, 0.75)
    assert pm.keep_ids.shape == (5, 16) and num_kept(64, 0.75) == 16
    assert bool((pm.mask.sum(1) == 48).all())
    # kept patches are exactly the unmasked ones
    kept = torch.zeros_like(pm.mask).scatter(1, pm.keep_ids, True)
    assert torch.equal(kept, ~pm.mask)
    # ids_restore inverts the shuffle: the first K restored positions are the kept ones
    assert bool((pm.ids_restore.gather(1, pm.keep_ids) < 16).all())


def test_patchify_round_trip() -> None:
    x = torch.rand(2, 3, 16, 16)
    patches = patchify(x, 4)
    assert patches.shape == (2, 16, 48)
    assert torch.equal(unpatchify(patches, 4, 3), x)
    assert torch.equal(patches[0, 1], x[0, :, 0:4, 4:8].permute(1, 2, 0).reshape(-1))


def test_perturbation_aware_probs_formula() -> None:
    d = torch.tensor([[0.0, 1.0, 3.0, 0.0]])
    expected = 0.5 / 4 + 0.5 * torch.softmax(d / d.mean(), dim=1)
    assert torch.allclose(perturbation_aware_probs(d), expected)
    assert torch.allclose(perturbation_aware_probs(torch.zeros(1, 4)), torch.full((1, 4), 0.25))


def test_perturbation_aware_masking_prefers_changed_patches() -> None:
    torch.manual_seed(0)
    clean = torch.rand(400, 1, 32, 32)
    perturbed = clean.clone()
    perturbed[:, :, :16, :16] += 0.5  # patches 0, 1, 4, 5 of the 4x4 grid (patch 8)
    d = patch_deviation(clean, perturbed, 8)
    changed = d[0] > 0
    assert changed.sum() == 4
    ratio = 0.5
    pm = perturbation_aware_patch_mask(d, ratio)
    freq = pm.mask.float().mean(0)
    assert bool((pm.mask.sum(1) == 8).all())
    assert float(freq[changed].mean()) > 0.8  # chance would be 0.5 (formula: ~0.88)
    assert float(freq[~changed].mean()) < ratio
    # clean images (d = 0) fall back to uniform masking
    uniform = perturbation_aware_patch_mask(torch.zeros(400, 16), ratio).mask.float().mean(0)
    assert float((uniform - ratio).abs().max()) < 0.12


def _tokens(b: int = 512, length: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, 100, (b, length))
    eligible = torch.ones(b, length, dtype=torch.bool)
    eligible[:, 0] = eligible[:, -3:] = False  # [CLS] and [SEP] / padding
    return ids, eligible


def test_random_token_mask_80_10_10() -> None:
    torch.manual_seed(0)
    ids, eligible = _tokens()
    tm = random_token_mask(
        ids, eligible, probability=0.15, mask_token_id=4, vocab_size=100, first_regular_id=5
    )
    selected = tm.labels != IGNORE_INDEX
    assert not bool((selected & ~eligible).any())
    assert bool(selected.any(1).all())  # at least one per text
    assert torch.equal(tm.labels[selected], ids[selected])
    assert torch.equal(tm.input_ids[~selected], ids[~selected])
    rate = float(selected.float().sum() / eligible.float().sum())
    assert abs(rate - 0.15) < 0.02
    as_mask = float((tm.input_ids[selected] == 4).float().mean())
    unchanged = float((tm.input_ids[selected] == ids[selected]).float().mean())
    assert abs(as_mask - 0.8) < 0.04
    assert 0.07 < unchanged < 0.16  # 10 % kept + random draws of the same id


def test_perturbation_aware_token_mask() -> None:
    torch.manual_seed(0)
    ids, eligible = _tokens()
    changed = (torch.rand(ids.shape) < 0.1) & eligible
    perturbed = torch.where(changed, (ids + 1) % 100 + 5, ids)
    tm = perturbation_aware_token_mask(
        ids, perturbed, changed, eligible, probability=0.15, changed_probability=0.5,
        mask_token_id=4, vocab_size=100, first_regular_id=5,
    )  # fmt: skip
    selected = tm.labels != IGNORE_INDEX
    assert torch.equal(tm.labels[selected], ids[selected])  # targets are the CLEAN ids
    changed_rate = float(selected[changed].float().mean())
    assert abs(changed_rate - 0.5) < 0.06
    total_rate = float(selected.float().sum() / eligible.float().sum())
    assert abs(total_rate - 0.15) < 0.03
    # unselected changed tokens keep the perturbed id as input
    keep = changed & ~selected
    assert torch.equal(tm.input_ids[keep], perturbed[keep])
