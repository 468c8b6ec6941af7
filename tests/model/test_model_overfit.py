"""Short overfitting runs on 8 fixed, structured samples: every objective's loss goes down.

Losses are measured before and after training as the mean of several forward passes with fixed
seeds (the same masks, views and dropped modalities each time), so the comparison is not
drowned by the step-to-step randomness of masking. ITM and GLA-global start on a plateau
(the CLS tokens of randomly initialised encoders barely differ between samples), so they get
runs of their own where they are not starved by the reconstruction losses.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robust_mmr_pipeline.model import MMRModel, ModelConfig


def structured_batch(config: ModelConfig, n: int = 8) -> dict[str, torch.Tensor]:
    """Sample i: stripes (orientation i % 2, frequency i // 2) and its own 6–8 word ids."""
    gen = torch.Generator().manual_seed(0)
    v, t = config.vision, config.text
    size, length = v.image_size, t.max_length
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.empty(n, 1, size, size)
    ids = torch.full((n, length), t.pad_token_id)
    attn = torch.zeros(n, length, dtype=torch.long)
    special = torch.ones(n, length, dtype=torch.long)
    for i in range(n):
        axis = xx if i % 2 else yy
        stripes = torch.sin(axis.float() * (1 + i // 2) * torch.pi / 6)
        images[i, 0] = 0.5 + 0.4 * stripes + 0.05 * torch.rand(size, size, generator=gen)
        row = [t.cls_token_id, *[5 + 7 * i + k for k in range(6 + i % 3)], t.sep_token_id]
        ids[i, : len(row)] = torch.tensor(row)
        attn[i, : len(row)] = 1
        special[i, 1 : len(row) - 1] = 0
    regular = attn.bool() & ~special.bool()
    return {
        "pixel_values": images.clamp(0, 1),
        "input_ids": ids,
        "attention_mask": attn,
        "special_tokens_mask": special,
        "domain_ids": torch.arange(n) % 2,
        # the collator's style-shifted text (TextDegrader): other words, same layout here
        "degraded_input_ids": torch.where(regular, ids + 1, ids),
        "degraded_attention_mask": attn.clone(),
        "degraded_special_tokens_mask": special.clone(),
        "degraded_severity": torch.full((n,), 3),
    }


def _evaluate(model: MMRModel, batch: dict[str, torch.Tensor], repeats: int = 32) -> dict:
    totals: dict[str, float] = {}
    state = torch.get_rng_state()
    with torch.no_grad():
        for k in range(repeats):
            torch.manual_seed(1000 + k)
            for name, value in model(batch).losses.items():
                totals[name] = totals.get(name, 0.0) + float(value) / repeats
    torch.set_rng_state(state)
    return totals


RUNS: dict[str, tuple[str, dict[str, Any], float, float, int]] = {
    # preset, overrides, lr, head lr multiplier, steps
    "reconstruction_and_robust": (
        "robust_mmr",
        {"objectives": {"itm": False},
         "robust": {"drop_text_prob": 0.3, "drop_image_prob": 0.3}},
        1e-3, 2.0, 200,
    ),
    "contrastive": (
        "mpma", {"objectives": {"mim": False, "mlm": False, "itm": False}}, 2e-3, 1.0, 60
    ),
    "itm": ("mmr", {"objectives": {"mim": False, "mlm": False}}, 2e-3, 1.0, 100),
}  # fmt: skip


@pytest.mark.parametrize("run", sorted(RUNS))
def test_overfitting_reduces_every_loss(config_factory, run: str) -> None:
    preset, overrides, lr, head_mult, steps = RUNS[run]
    torch.manual_seed(0)
    model = MMRModel(config_factory(preset, overrides))
    batch = structured_batch(model.config)
    before = _evaluate(model, batch)
    optimizer = torch.optim.AdamW(model.param_groups(0.0, head_mult, base_lr=lr))
    for step in range(steps):
        out = model(batch, progress=step / steps)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    after = _evaluate(model, batch)
    # every objective, and (Robust-MMR) the degraded view's own reconstruction terms
    assert set(before) >= set(model.config.objectives.enabled())
    for name in before:
        assert after[name] < 0.9 * before[name], (name, before[name], after[name])
