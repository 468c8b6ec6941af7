"""MMRModel end to end: every preset's losses, outputs for downstream use, pass structure."""

from __future__ import annotations

import pytest
import torch

from robust_mmr_pipeline.model import PRESETS, MMRModel
from robust_mmr_pipeline.model.masking import eligible_tokens
from robust_mmr_pipeline.model.views import build_degraded_batch


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_forward_backward(config_factory, batch_factory, name: str) -> None:
    torch.manual_seed(0)
    model = MMRModel(config_factory(name))
    out = model(batch_factory(model.config, 4), progress=0.5)
    enabled = list(model.config.objectives.enabled())
    degraded = ["mim_degraded", "mlm_degraded"] if model.config.needs_perturbed_views else []
    # every objective, and the degraded view's reconstruction terms on their own (per pass)
    assert sorted(out.losses) == sorted(enabled + degraded)
    assert all(torch.isfinite(v) and not v.requires_grad for v in out.losses.values())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert all(isinstance(v, float) for v in out.metrics.values())
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad  # no parameter left out of the graph (DDP-safe)


def test_total_is_the_weighted_sum_with_ramps(config_factory, batch_factory) -> None:
    torch.manual_seed(0)
    model = MMRModel(config_factory("robust_mmr_mpma", {"objectives": {"domain_align": True}}))
    obj, alpha = model.config.objectives, model.config.robust.degraded_weight
    out = model(batch_factory(model.config, 4), progress=0.05)  # ramp_fraction 0.1 -> half
    robust = ("domain_consistency", "domain_align", "modality_resilience")

    def weight(name: str) -> float:
        if name.endswith("_degraded"):  # α · r(t) · w of the clean objective
            return alpha * 0.5 * obj.weight(name.removesuffix("_degraded"))
        return obj.weight(name) * (0.5 if name in robust else 1.0)

    expected = sum(weight(k) * v for k, v in out.losses.items())
    assert out.loss.item() == pytest.approx(float(expected), rel=1e-5)
    assert out.metrics["weight_domain_consistency"] == pytest.approx(0.5 * 0.5)
    assert out.metrics["weight_mim_degraded"] == pytest.approx(alpha * 0.5)
    # the clean reconstruction keeps MMR's full weight (never diluted by the degraded view)
    assert "weight_mim" not in out.metrics and weight("mim") == obj.mim_weight


def test_m3ae_style_gives_the_same_losses(config_factory, batch_factory) -> None:
    torch.manual_seed(0)
    model = MMRModel(config_factory("mmr", {"m3ae_style": True}))
    batch = batch_factory(model.config, 4)
    out = model(batch)
    assert list(out.losses) == ["mim", "mlm", "itm"]
    out.loss.backward()
    joint = model.forward_joint(batch)  # same weights, our joint pass
    assert list(joint.losses) == list(out.losses)


def test_randomness_is_torch_global_rng(config_factory, batch_factory) -> None:
    model = MMRModel(config_factory("robust_mmr_mpma"))
    batch = batch_factory(model.config, 4)
    torch.manual_seed(123)
    a = model(batch)
    torch.manual_seed(123)
    b = model(batch)
    assert all(torch.equal(a.losses[k], b.losses[k]) for k in a.losses)


def test_downstream_outputs(config_factory, batch_factory) -> None:
    model = MMRModel(config_factory("mpma")).eval()
    batch = batch_factory(model.config, 3)
    pix, ids, attn = batch["pixel_values"], batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        enc = model.encode(pix, ids, attn)
        image, text = model.contrastive_embeddings(pix, ids, attn)
        only_text = model.contrastive_embeddings(input_ids=ids, attention_mask=attn)
        score = model.itm_score(pix, ids, attn)
    n, length, d = model.config.vision.num_patches, model.config.text.max_length, 32
    assert enc.image_tokens.shape == (3, 1 + n, d)
    assert enc.text_tokens.shape == (3, length, d)
    assert enc.image_pooled.shape == enc.text_pooled.shape == (3, d)
    assert enc.fused.shape == (3, 2 * d)
    assert torch.equal(enc.fused, torch.cat([enc.text_pooled, enc.image_pooled], -1))
    assert image.shape == text.shape == (3, 16)  # contrastive_dim
    assert torch.allclose(image.norm(dim=-1), torch.ones(3))
    assert only_text[0] is None and torch.allclose(only_text[1], text)
    assert score.shape == (3,) and bool(((score > 0) & (score < 1)).all())
    # without GLA the retrieval embedding falls back to the fusion projections
    plain = MMRModel(config_factory("mmr")).eval()
    with torch.no_grad():
        assert plain.contrastive_embeddings(pix)[0].shape == (3, d)


def test_modality_dropping_only_runs_dropped_samples(config_factory, batch_factory) -> None:
    config = config_factory(
        "mmr",
        {"objectives": {"modality_resilience": True},
         "robust": {"drop_text_prob": 0.4, "drop_image_prob": 0.4}},
    )  # fmt: skip
    batch = batch_factory(config, 32)
    torch.manual_seed(0)
    view = build_degraded_batch(batch, config)
    assert view is not None and view.view == "none"
    assert bool(view.dropped.all()) and 0 < len(view.rows) < 32
    t = config.text
    dropped_text = view.input_ids[view.drop_text]
    assert bool((dropped_text[:, 0] == t.cls_token_id).all())
    assert bool((dropped_text[:, 1] == t.sep_token_id).all())
    assert int(view.attention_mask[view.drop_text].sum()) == 2 * int(view.drop_text.sum())
    assert bool((view.pixel_values[view.drop_image] == 0.5).all())  # the mean image
    kept_text = ~view.drop_text
    assert torch.equal(view.input_ids[kept_text], batch["input_ids"][view.rows][kept_text])
    model = MMRModel(config)
    out = model(batch)
    assert list(out.losses) == [
        "mim", "mlm", "itm", "modality_resilience", "mim_degraded", "mlm_degraded"
    ]  # fmt: skip
    assert out.losses["modality_resilience"] > 0


@pytest.mark.parametrize("view", ["image", "text", "both"])
def test_perturbed_views(config_factory, batch_factory, view: str) -> None:
    probs = {"image": [1.0, 0.0, 0.0], "text": [0.0, 1.0, 0.0], "both": [0.0, 0.0, 1.0]}[view]
    config = config_factory(
        "robust_mmr",
        {"objectives": {"modality_resilience": False},
         "robust": {"view_probs": probs, "severity_min": 5, "perturbed_image_mask_ratio": 0.85}},
    )  # fmt: skip
    batch = batch_factory(config, 8)
    torch.manual_seed(0)
    degraded = build_degraded_batch(batch, config)
    assert degraded is not None and degraded.view == view
    assert len(degraded.rows) == 8
    image_changed = not torch.equal(degraded.pixel_values, batch["pixel_values"])
    assert image_changed == (view in ("image", "both"))
    assert bool(degraded.perturbed_image.all()) == (view in ("image", "both"))
    # a text view takes the collator's style-shifted text (re-tokenised), never token noise
    expected = batch["degraded_input_ids"] if view != "image" else batch["input_ids"]
    assert torch.equal(degraded.input_ids, expected)
    assert bool(degraded.clean_text.all()) == (view == "image")
    assert degraded.pixel_values.min() >= 0 and degraded.pixel_values.max() <= 1
    out = MMRModel(config)(batch)
    if view in ("image", "both"):  # higher masking ratio on perturbed images
        assert out.metrics["degraded_mask_ratio"] == pytest.approx(14 / 16)  # keep int(16 * .15)
    assert torch.isfinite(out.loss)
    # a hand-built batch without degraded_clean_targets: degraded texts get no MLM (fallback)
    assert (out.losses["mlm_degraded"] == 0) == (view != "image")


def _with_aligned_targets(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the collator adds: conftest's degraded text substitutes every regular token one
    for one, so each degraded position aligns with the clean token at the same position."""
    regular = batch["attention_mask"].bool() & ~batch["special_tokens_mask"].bool()
    targets = torch.where(regular, batch["input_ids"], torch.full_like(batch["input_ids"], -100))
    return {**batch, "degraded_clean_targets": targets}


def test_degraded_mlm_restores_the_clean_text(config_factory, batch_factory) -> None:
    config = config_factory(
        "robust_mmr",
        {"objectives": {"modality_resilience": False}, "robust": {"view_probs": [0.0, 1.0, 0.0]}},
    )
    batch = _with_aligned_targets(batch_factory(config, 8))
    torch.manual_seed(0)
    view = build_degraded_batch(batch, config)
    assert view is not None and not bool(view.clean_text.any())  # every text is shifted
    assert torch.equal(view.input_ids, batch["degraded_input_ids"])
    assert torch.equal(view.clean_targets, batch["degraded_clean_targets"])  # the CLEAN ids
    torch.manual_seed(0)
    model = MMRModel(config)
    out = model(batch)
    loss = out.losses["mlm_degraded"]
    assert torch.isfinite(loss) and loss > 1.0  # ~ln(64) at init; 0 before alignment
    assert out.metrics["degraded_text_aligned"] == 1.0
    out.loss.backward()
    assert model.mlm_head is not None


@pytest.mark.parametrize("view", ["image", "text"])
def test_degraded_mlm_on_clean_texts_is_unchanged(config_factory, batch_factory, view) -> None:
    """Clean and dropped texts: the same masked tokens and labels as before the alignment
    (``eligible & clean_text``, own tokens as labels), and the same losses as the fallback."""
    config = config_factory(
        "robust_mmr",
        {"robust": {"view_probs": [1.0, 0.0, 0.0] if view == "image" else [0.0, 1.0, 0.0],
                    "drop_text_prob": 0.3, "severity_curriculum_fraction": 0.5}},
    )  # fmt: skip
    batch = batch_factory(config, 8)
    # progress 0 caps the severity at 1: a text view keeps every text of severity 2 clean
    batch["degraded_severity"] = torch.full((8,), 2)
    aligned = _with_aligned_targets(batch)
    torch.manual_seed(1)
    view_ = build_degraded_batch(aligned, config, progress=0.0)
    assert view_ is not None and bool(view_.drop_text.any())
    assert torch.equal(view_.clean_text, ~view_.drop_text)
    model = MMRModel(config)
    eligible = eligible_tokens(view_.attention_mask, view_.special_tokens_mask)
    torch.manual_seed(2)
    before = model._text_mask(view_.input_ids, eligible & view_.clean_text[:, None])
    torch.manual_seed(2)
    now = model._text_mask(
        view_.input_ids, eligible & (view_.clean_targets != -100), view_.clean_targets
    )
    assert torch.equal(before.input_ids, now.input_ids)
    assert torch.equal(before.labels, now.labels)
    losses = []
    for case in (batch, aligned):
        torch.manual_seed(1)
        losses.append(model(case, progress=0.0).losses)
    assert losses[0].keys() == losses[1].keys()
    for name in losses[0]:
        assert torch.equal(losses[0][name], losses[1][name]), name
    assert losses[0]["mlm_degraded"] > 0


def test_curriculum_caps_the_severity_early_in_training(config_factory, batch_factory) -> None:
    config = config_factory(
        "robust_mmr",
        {"objectives": {"modality_resilience": False},
         "robust": {"view_probs": [0.0, 1.0, 0.0], "severity_curriculum_fraction": 0.5}},
    )  # fmt: skip
    batch = batch_factory(config, 32)
    torch.manual_seed(0)
    early = build_degraded_batch(batch, config, progress=0.0)
    late = build_degraded_batch(batch, config, progress=0.9)
    assert early.severity_max == 1 and late.severity_max == 5
    severity = batch["degraded_severity"]
    assert torch.equal(~early.clean_text, severity <= 1)
    assert bool((~late.clean_text).all())


def test_switches_of_the_degraded_view(config_factory, batch_factory) -> None:
    batch = batch_factory(config_factory("robust_mmr"), 6)
    # degraded-view reconstruction off, consistency terms still on
    config = config_factory("robust_mmr", {"robust": {"degraded_reconstruction": False}})
    torch.manual_seed(0)
    out = MMRModel(config)(batch)
    assert "mim_degraded" not in out.losses and "mlm_degraded" not in out.losses
    assert {"domain_consistency", "modality_resilience"} <= set(out.losses)
    # the consistency target: an extra unmasked clean pass (no grad), or the masked pass
    for target in ("unmasked", "masked"):
        config = config_factory("robust_mmr", {"robust": {"consistency_target": target}})
        torch.manual_seed(0)
        model = MMRModel(config)
        out = model(batch)
        out.loss.backward()
        assert torch.isfinite(out.loss)


@pytest.mark.parametrize("method", ["coral", "mmd"])
def test_domain_alignment_objective(config_factory, batch_factory, method: str) -> None:
    config = config_factory(
        "mmr", {"objectives": {"domain_align": True}, "robust": {"domain_align_method": method}}
    )
    model = MMRModel(config)
    batch = batch_factory(config, 6)  # domain ids 0, 1, 0, 1, 0, 1
    out = model(batch)
    assert out.losses["domain_align"] > 0
    out.loss.backward()
    del batch["domain_ids"]  # optional key: no domains, no alignment signal
    assert model(batch).losses["domain_align"] == 0


def test_unknown_perturbation_names_fail_at_build(config_factory) -> None:
    from robust_mmr_pipeline.model import ConfigError

    bad = config_factory("robust_mmr", {"robust": {"image_perturbations": ["gaussian_nose"]}})
    with pytest.raises(ConfigError, match="gaussian_nose"):
        MMRModel(bad)
    texts = config_factory("robust_mmr", {"robust": {"text_perturbations": ["shuffle"]}})
    with pytest.raises(ConfigError, match="text_perturbations"):
        MMRModel(texts)
