"""ModelConfig: presets, sizes, JSON round trip and validation errors."""

from __future__ import annotations

import json

import pytest

from robust_mmr_pipeline.model import PRESETS, ConfigError, ModelConfig, apply_preset

EXPECTED = {
    "mmr": {"mim", "mlm", "itm"},
    "mpma": {"mim", "mlm", "itm", "gla_global", "gla_local"},
    "robust_mmr": {"mim", "mlm", "itm", "domain_consistency", "modality_resilience"},
    "robust_mmr_mpma": {"mim", "mlm", "itm", "gla_global", "gla_local", "domain_consistency",
                        "modality_resilience"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_enable_exactly_their_objectives(name: str) -> None:
    config = apply_preset(name)
    assert set(config.objectives.enabled()) == EXPECTED[name]
    assert config.preset == name
    assert config.memory.enabled == ("mpma" in name)
    assert config.robust.perturbation_aware_masking == name.startswith("robust")


def test_default_sizes_are_small_and_base_is_m3ae_sized() -> None:
    small = apply_preset("mmr")
    assert (small.vision.image_size, small.vision.patch_size, small.vision.depth) == (64, 8, 4)
    assert small.text.max_length == 48 and small.fusion.num_layers == 2
    base = apply_preset("robust_mmr_mpma", size="base")
    assert base.vision.embed_dim == base.text.hidden_size == base.fusion.hidden_size == 768
    assert (base.vision.depth, base.text.num_layers, base.fusion.num_layers) == (12, 12, 6)
    assert base.decoder_read_layer == 3  # M3AE: after fusion layer 3 of 6
    assert base.objectives.gla_global  # the preset survives the size


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_round_trip_through_json(name: str) -> None:
    config = apply_preset(name, {"robust": {"view_probs": [0.5, 0.5, 0.0]}})
    data = json.loads(json.dumps(config.to_dict()))
    again = ModelConfig.from_dict(data)
    assert again == config
    assert again.robust.view_probs == (0.5, 0.5, 0.0)
    assert isinstance(again.robust.image_perturbations, tuple)


def test_overrides_win_over_the_preset() -> None:
    config = apply_preset("robust_mmr", {"objectives": {"domain_consistency_weight": 0.3}})
    assert config.objectives.domain_consistency_weight == 0.3
    assert config.objectives.modality_resilience


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"vision": {"image_size": 60}}, "divisible by vision.patch_size"),
        ({"vision": {"depth": 0}}, "vision.depth must be a positive int"),
        ({"fusion": {"num_heads": 3}}, "fusion: width 128 must be divisible"),
        ({"objectives": {"mim_mask_ratio": 1.2}}, "mim_mask_ratio"),
        ({"objectives": {"itm_weight": -1.0}}, "itm_weight"),
        ({"robust": {"view_probs": [0.5, 0.2, 0.2]}}, "view_probs"),
        ({"robust": {"severity_max": 7}}, "severity"),
        ({"memory": {"top_k": 999}}, "memory.top_k"),
        ({"decoder": {"read_layer": 5}}, "decoder.read_layer"),
        ({"m3ae_style": True, "objectives": {"gla_global": True}}, "m3ae_style"),
        ({"vision": {"pixel_mean": [0.5, 0.5]}}, "pixel_mean"),
        ({"objectives": {"mim": False, "mlm": False, "itm": False}}, "at least one objective"),
    ],
)
def test_validation_names_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_preset("mmr", overrides)


def test_unknown_keys_and_names_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'model\.objectives\.mask_ratio'"):
        apply_preset("mmr", {"objectives": {"mask_ratio": 0.5}})
    with pytest.raises(ConfigError, match="unknown preset"):
        apply_preset("m3ae")
    with pytest.raises(ConfigError, match="unknown size"):
        apply_preset("mmr", size="huge")
