"""Registry lookup and config spec parsing; the benchmark script runs end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from robust_mmr_pipeline import perturb
from robust_mmr_pipeline.perturb import (
    IMAGE_PERTURBATIONS,
    SEVERITIES,
    TEXT_PERTURBATIONS,
    PerturbationSpec,
    get_perturbation,
    list_image_perturbations,
    list_perturbations,
    list_text_perturbations,
    parse_perturbation_specs,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_public_api_is_exported() -> None:
    for name in (
        "perturb_image",
        "perturb_text",
        "perturb_token_ids",
        "IMAGE_PERTURBATIONS",
        "TEXT_PERTURBATIONS",
        "list_image_perturbations",
        "list_text_perturbations",
        "parse_perturbation_specs",
    ):
        assert hasattr(perturb, name) and name in perturb.__all__


def test_names_are_unique_across_kinds() -> None:
    assert not set(IMAGE_PERTURBATIONS) & set(TEXT_PERTURBATIONS)
    assert list_perturbations() == list_image_perturbations() + list_text_perturbations()
    assert list_perturbations("text") == list_text_perturbations()


def test_model_config_defaults_are_registered() -> None:
    """The names the Robust-MMR config uses by default exist."""
    for name in ("gaussian_noise", "gaussian_blur", "contrast", "jpeg", "pixelate"):
        assert name in IMAGE_PERTURBATIONS
    for name in ("bias_field", "speckle_noise", "shot_noise", "gamma"):
        assert name in IMAGE_PERTURBATIONS


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"unknown perturbation 'gausian_noise'.*gaussian_noise"):
        get_perturbation("gausian_noise")
    with pytest.raises(ValueError, match="typos"):
        parse_perturbation_specs([{"name": "gausian_noise"}])
    with pytest.raises(ValueError, match="unknown image perturbation 'typos'"):
        parse_perturbation_specs(["typos"], kind="image")
    with pytest.raises(KeyError, match="known: gaussian_noise"):
        IMAGE_PERTURBATIONS["nope"]


def test_parse_specs_forms() -> None:
    specs = parse_perturbation_specs(
        [
            "gaussian_noise",
            {"name": "jpeg", "severities": [1, 3, 5]},
            {"name": "typos", "severity": 2},
            {"name": "bias_field", "kind": "image", "severities": (4,)},
        ]
    )
    assert specs == [
        PerturbationSpec("gaussian_noise", "image", SEVERITIES),
        PerturbationSpec("jpeg", "image", (1, 3, 5)),
        PerturbationSpec("typos", "text", (2,)),
        PerturbationSpec("bias_field", "image", (4,)),
    ]
    assert specs[1].pairs() == [("jpeg", 1), ("jpeg", 3), ("jpeg", 5)]
    assert specs[2].entry is TEXT_PERTURBATIONS["typos"]
    round_trip = parse_perturbation_specs(json.loads(json.dumps([s.to_dict() for s in specs])))
    assert round_trip == specs
    assert parse_perturbation_specs(None) == [] and parse_perturbation_specs([]) == []
    assert parse_perturbation_specs({"name": "contrast"})[0].name == "contrast"


def test_parse_all_with_kind_and_modality() -> None:
    ct = parse_perturbation_specs({"name": "all", "kind": "image", "modality": "CT"})
    assert [s.name for s in ct] == list_image_perturbations("ct")
    text = parse_perturbation_specs([{"name": "all", "severities": [5]}], kind="text")
    assert [s.name for s in text] == list_text_perturbations()
    assert all(s.severities == (5,) for s in text)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "jpeg", "severities": [0, 1]}, r"1\.\.5"),
        ({"name": "jpeg", "severities": [6]}, r"1\.\.5"),
        ({"name": "jpeg", "severities": [2, 2]}, "distinct"),
        ({"name": "jpeg", "severities": []}, "distinct"),
        ({"name": "jpeg", "severities": "12"}, "list of ints"),
        ({"name": "jpeg", "severities": [1.5]}, "int"),
        ({"name": "jpeg", "severity": 1, "severities": [2]}, "not both"),
        ({"name": "jpeg", "severity_levels": [1]}, "unknown keys"),
        ({"severities": [1]}, "needs a 'name'"),
        ({"name": "all"}, "needs a kind"),
        ({"name": "all", "kind": "text", "modality": "ct"}, "image perturbations only"),
        ({"name": "jpeg", "modality": "ct"}, "only allowed with name 'all'"),
        ({"name": "jpeg", "kind": "audio"}, "kind must be"),
        ({"name": "jpeg", "kind": "text"}, "unknown text perturbation"),
        (42, "a name or a mapping"),
    ],
)
def test_parse_specs_errors(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_perturbation_specs([spec])  # type: ignore[list-item]


def test_duplicate_names_rejected() -> None:
    with pytest.raises(ValueError, match="more than once"):
        parse_perturbation_specs(["jpeg", {"name": "jpeg", "severity": 1}])
    with pytest.raises(ValueError, match="more than once"):
        parse_perturbation_specs(["ct_ring", {"name": "all", "kind": "image"}])


def test_expected_kind_enforced() -> None:
    with pytest.raises(ValueError, match="expected an image perturbation"):
        parse_perturbation_specs([{"name": "typos", "kind": "text"}], kind="image")


def test_text_entry_is_callable() -> None:
    entry = TEXT_PERTURBATIONS["typos"]
    text = "Bilateral pleural effusions with adjacent atelectasis."
    assert entry(text, 5, seed=3) == perturb.perturb_text(text, "typos", 5, seed=3)


def test_benchmark_script_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "bench_perturb", REPO_ROOT / "benchmarks" / "bench_perturb.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "bench.json"
    threads = torch.get_num_threads()
    try:
        args = ["--out", str(out), "--batch", "2", "--size", "32", "--repeats", "1"]
        assert module.main([*args, "--warmup", "0", "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert set(result["image_ms_per_batch"]) == set(list_image_perturbations())
    assert set(result["text_ms_per_report"]) == set(list_text_perturbations())
    assert result["workload"]["images"] == [2, 1, 32, 32]
    assert result["token_ms_per_batch"]["median_ms"] >= 0
