"""No leak of the test shift into training: evaluation families never intersect the
pre-training degraded views' families, in every shipped conf env."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from robust_mmr_pipeline.model import apply_preset
from robust_mmr_pipeline.params import ParameterError, parse
from robust_mmr_pipeline.perturb.families import (
    evaluation_families,
    shared_families,
    training_families,
)
from robust_mmr_pipeline.perturb.registry import list_perturbations
from robust_mmr_pipeline.pipelines.evaluation.params import EvaluationParams
from robust_mmr_pipeline.pipelines.pretrain.params import PretrainParams

CONF = Path(__file__).resolve().parents[2] / "conf"
# conf envs: folders holding parameters (conf/accelerate holds launcher configs, no env)
ENVS = sorted(
    p.name
    for p in CONF.iterdir()
    if p.is_dir() and p.name != "base" and (p.name == "local" or any(p.glob("parameters*.yml")))
)


def _env_parameters(env: str) -> dict[str, Any]:
    from kedro.config import OmegaConfigLoader

    from robust_mmr_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(CONF), env=env, **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


@pytest.mark.parametrize("env", ENVS)
def test_no_env_evaluates_a_family_its_pretraining_trains_on(env: str) -> None:
    params = _env_parameters(env)
    training = training_families(
        parse(PretrainParams, params["pretrain"], "pretrain").model_config()
    )
    evaluation = parse(EvaluationParams, params["evaluation"], "evaluation")
    evaluation.validate_with(params)  # what the run checks before its first node
    for section in ("evaluation", "domain_split"):
        evaluated = {
            m: evaluation_families(params[section].get(f"{m}_perturbations", "all"), m, training)
            for m in ("image", "text")
        }
        if section == "domain_split":  # the sets the split lists; evaluation selects among them
            evaluated = {m: [f for f in names if evaluation.wants(m, f)] for m, names in
                         evaluated.items()}  # fmt: skip
        assert shared_families(training, evaluated) == {"image": [], "text": []}, (env, section)


def test_all_means_every_family_the_backbone_did_not_train_on() -> None:
    training = training_families(apply_preset("robust_mmr", {}))
    assert training["image"] and training["text"]
    for modality in ("image", "text"):
        resolved = evaluation_families("all", modality, training)
        assert set(resolved) == set(list_perturbations(modality)) - set(training[modality])
    # a backbone without degraded views trained on nothing: all is all
    assert training_families(apply_preset("mmr", {})) == {"image": [], "text": []}


def test_an_explicit_leaking_family_is_refused_before_the_run() -> None:
    params = _env_parameters("local")
    trained = training_families(apply_preset(params["pretrain"]["preset"], {}))["image"][0]
    params["evaluation"] = {**params["evaluation"], "image_perturbations": ["contrast", trained]}
    evaluation = parse(EvaluationParams, params["evaluation"], "evaluation")
    with pytest.raises(ParameterError, match=trained):
        evaluation.validate_with(params)
