"""Loss formulas against hand-computed small cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robust_mmr_pipeline.model import objectives as O


def test_info_nce_two_by_two() -> None:
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    row = -0.5 * (
        math.log(math.e**2 / (math.e**2 + 1)) + math.log(math.e**3 / (math.e + math.e**3))
    )
    col = -0.5 * (
        math.log(math.e**2 / (math.e**2 + math.e)) + math.log(math.e**3 / (1 + math.e**3))
    )
    assert O.info_nce(logits).item() == pytest.approx(0.5 * (row + col), rel=1e-6)


def test_gla_global_uses_scaled_cosine() -> None:
    t = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=-1)
    v = F.normalize(torch.tensor([[1.0, 1.0], [0.0, 1.0]]), dim=-1)
    scale = torch.tensor(10.0)
    expected = O.info_nce(10.0 * t @ v.t())
    assert O.gla_global_loss(t, v, scale).item() == pytest.approx(expected.item())


def test_filip_similarity_by_hand() -> None:
    # text 0: tokens e1, e2 (+ a padding token that must be ignored); text 1: token e2 only
    e1, e2, e3 = torch.eye(3)
    text = torch.stack([torch.stack([e1, e2, e3]), torch.stack([e2, e3, e3])])
    valid = torch.tensor([[True, True, False], [True, False, False]])
    # image 0: patches e1, e3; image 1: patches e2, e2
    image = torch.stack([torch.stack([e1, e3]), torch.stack([e2, e2])])
    s_t2v, s_v2t = O.filip_similarity(text, valid, image)
    # t->v: mean over valid tokens of the best patch
    assert s_t2v.tolist() == [[0.5, 0.5], [0.0, 1.0]]
    # v->t: mean over patches of the best valid token
    assert s_v2t.tolist() == [[0.5, 1.0], [0.0, 1.0]]
    loss = O.gla_local_loss(text, valid, image, torch.tensor(1.0))
    labels = torch.arange(2)
    expected = 0.5 * (F.cross_entropy(s_t2v, labels) + F.cross_entropy(s_v2t.t(), labels))
    assert loss.item() == pytest.approx(expected.item())


def test_filip_chunking_matches_one_block() -> None:
    torch.manual_seed(0)
    t = F.normalize(torch.randn(5, 4, 8), dim=-1)
    v = F.normalize(torch.randn(3, 6, 8), dim=-1)
    valid = torch.rand(5, 4) > 0.3
    full = O.filip_similarity(t, valid, v)
    chunked = O.filip_similarity(t, valid, v, chunk_elements=1)
    assert all(torch.allclose(a, b) for a, b in zip(full, chunked, strict=True))


def test_consistency_stops_the_target_gradient() -> None:
    from robust_mmr_pipeline.model.heads import ConsistencyHead

    torch.manual_seed(0)
    head = ConsistencyHead(4, 8, 4)
    z_view = torch.randn(3, 4, requires_grad=True)
    z_clean = torch.randn(3, 4, requires_grad=True)
    loss = O.consistency_loss(head(z_view), head.project(z_clean))
    # the term's own head: predictor q over projector p online, p alone on the target
    online = head.predictor(head.projector(z_view))
    expected = (1 - F.cosine_similarity(online, head.projector(z_clean), dim=-1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert z_clean.grad is None  # stop-gradient on the clean branch
    assert z_view.grad is not None and float(z_view.grad.abs().sum()) > 0
    # identical branches give zero loss
    same = head.project(z_clean).detach()
    assert O.consistency_loss(same, same).item() == pytest.approx(0.0, abs=1e-6)


def test_coral_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0], [2.0, 0.0]])  # cov [[2, 0], [0, 0]]
    b = torch.tensor([[0.0, 0.0], [0.0, 2.0]])  # cov [[0, 0], [0, 2]]
    feats = torch.cat([a, b])
    ids = torch.tensor([0, 0, 1, 1])
    # ||C_a - C_b||_F^2 = 4 + 4 = 8, / (4 d^2) = 8 / 16
    assert O.coral_loss(feats, ids).item() == pytest.approx(0.5)
    assert O.coral_loss(feats, torch.zeros(4, dtype=torch.long)).item() == 0.0  # one domain
    # singleton domains are skipped
    assert O.coral_loss(feats, torch.tensor([0, 0, 1, 2])).item() == 0.0


def test_mmd_separates_shifted_domains() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    same = O.mmd_loss(torch.cat([x, x]), torch.tensor([0] * 16 + [1] * 16))
    shifted = O.mmd_loss(torch.cat([x, x + 3.0]), torch.tensor([0] * 16 + [1] * 16))
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    assert shifted.item() > 0.1


def test_mim_loss_and_targets() -> None:
    images = torch.zeros(1, 1, 4, 4)
    images[..., :2, :2] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    target = O.pixel_targets(images, 2, norm_pix=True)
    p0 = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert torch.allclose(target[0, 0], (p0 - p0.mean()) / (p0.var() + 1e-6).sqrt())
    assert torch.allclose(target[0, 1], torch.zeros(4))  # constant patch -> 0
    pred = torch.zeros(1, 4, 4)
    pred[0, 1] = 2.0  # error 4 per pixel on patch 1
    mask = torch.tensor([[False, True, True, False]])
    assert O.mim_loss(pred, target, mask).item() == pytest.approx(2.0)  # (4 + 0) / 2
    assert O.mim_loss(pred, target, mask, torch.tensor([0.0])).item() == 0.0


def test_mlm_itm_and_ramp() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, -100])
    expected = -math.log(math.e**2 / (math.e**2 + 2))
    assert O.mlm_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert O.mlm_loss(logits, torch.tensor([-100, -100])).item() == 0.0
    assert O.itm_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([1])).item() == pytest.approx(
        math.log(2)
    )
    assert O.ramp(0.05, 0.1) == pytest.approx(0.5)
    assert O.ramp(0.5, 0.1) == 1.0 and O.ramp(0.0, 0.0) == 1.0


def test_centring_removes_the_constant_projection_solution() -> None:
    z_view, z_clean = torch.randn(4, 3), torch.randn(4, 3)
    constant = torch.ones(4, 3)  # a collapsed head: the same output for every input
    # METHOD.md's formula verbatim: a constant projection is a perfect (trivial) solution
    assert O.consistency_loss(constant, constant).item() == pytest.approx(0, abs=1e-6)
    centre = O.consistency_center(constant)
    assert torch.equal(centre, torch.ones(3))
    centred = O.consistency_loss(constant, constant, centre)
    assert centred.item() == pytest.approx(1.0)  # cos(0, 0) := 0
    g = torch.nn.Linear(3, 3)
    c = O.consistency_center(g(z_clean))
    expected = (1 - F.cosine_similarity(g(z_view) - c, g(z_clean) - c, dim=-1)).mean()
    assert O.consistency_loss(g(z_view), g(z_clean), c).item() == pytest.approx(
        expected.item(), rel=1e-6
    )
