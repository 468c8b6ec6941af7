"""The data requirements check: configured sources against the stages, before any work."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from robust_mmr_pipeline.data_requirements import (
    DataRequirementsError,
    RequirementsParams,
    configured_sources,
    enforce,
    manifest_shortfalls,
    static_shortfalls,
    without_skipped,
)
from robust_mmr_pipeline.hooks import DataRequirementsHooks
from robust_mmr_pipeline.params import ParameterError, parse

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "sources"))
from fixtures import write_slake  # noqa: E402


def _env_parameters(env: str) -> dict[str, Any]:
    """conf/base with conf/<env> soft-merged over it (as the config loader does)."""
    from kedro.config import OmegaConfigLoader

    from robust_mmr_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(REPO_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


CHAIN = ["ingestion", "pretrain", "finetune", "evaluation"]


@pytest.mark.parametrize("env", ["vqa_rad", "slake", "vqa_med_2019", "test", "local"])
def test_every_shipped_env_satisfies_its_stages(env: str) -> None:
    published = env not in ("test", "local")  # the published envs also run as_released
    sections = [*CHAIN, "as_released"] if published else CHAIN
    assert static_shortfalls(_env_parameters(env), sections) == []


def test_slake_with_the_base_text_kinds_names_stage_missing_data_sources_and_fix() -> None:
    """The reported failure: SLAKE (VQA only) with pretrain/finetune text kinds of SynthRad."""
    params = _env_parameters("slake")
    params["pretrain"]["text_kinds"] = ["report", "caption"]
    params["finetune"]["tasks"] = ["vqa", "classification", "retrieval"]
    params["finetune"]["text_kinds"] = ["report", "caption"]
    shortfalls = static_shortfalls(params, CHAIN)
    stages = [s.stage for s in shortfalls]
    assert stages == [
        "pretrain (fit_tokenizer, pretrain_model)",
        "finetune task classification",
        "finetune task retrieval",
    ]
    pretrain = shortfalls[0]
    assert "pretrain.text_kinds ['report', 'caption']" in pretrain.missing
    assert "qa_statement" in pretrain.missing and "[qa_statement]" in pretrain.fix
    with pytest.raises(DataRequirementsError) as caught:
        enforce(shortfalls, [], configured_sources(params["ingestion"]), "before ingestion")
    message = str(caught.value)
    assert "slake (kind slake, root data/01_raw/Slake1.0: vqa, qa_statement pairs)" in message
    assert "Fix:" in message and "requirements.skip_when_missing" in message
    # the tasks the user allows to skip are skipped (logged), pre-training never
    with pytest.raises(DataRequirementsError, match="pretrain"):
        enforce(shortfalls, ["classification", "retrieval"], [], "x")
    skipped = enforce(shortfalls[1:], ["classification", "retrieval"], [], "x")
    assert skipped == {"classification", "retrieval"}
    assert without_skipped("finetune", params["finetune"], skipped)["tasks"] == ["vqa"]


def test_protocols_and_held_out_domains_are_checked_statically() -> None:
    params = _env_parameters("slake")
    params["domain_split"]["held_out_domains"] = {"slake": ["mr"]}  # a typo of mri
    shortfalls = static_shortfalls(params, CHAIN)
    # pre-training reads the `pretrain` protocol, which every split emits (no held-out
    # domain needed); the cross-domain test does need one
    assert {s.stage for s in shortfalls} == {"evaluation (cross-domain test)"}
    assert all("names no domain those sources have" in s.missing for s in shortfalls)
    assert "'slake': ['ct', 'mri', 'x-ray']" in shortfalls[0].missing
    params["domain_split"]["held_out_domains"] = {"synthrad": ["site_d"]}  # no slake entry
    missing = static_shortfalls(params, CHAIN)[0].missing
    assert "names no configured source" in missing
    params["pretrain"]["protocol"] = "cross_domain"
    assert {s.stage for s in static_shortfalls(params, CHAIN)} == {
        "pretrain (fit_tokenizer, pretrain_model)",
        "evaluation (cross-domain test)",
    }
    # in_domain pre-training + skipping the cross-domain test makes it runnable
    params["pretrain"]["protocol"] = "in_domain"
    shortfalls = static_shortfalls(params, CHAIN)
    assert [s.skip for s in shortfalls] == ["cross_domain"]
    assert enforce(shortfalls, ["cross_domain"], [], "x") == {"cross_domain"}
    params["domain_split"]["as_released"] = False
    assert "as_released" in static_shortfalls(params, [*CHAIN, "as_released"])[-1].stage


def test_requirements_params_are_typed() -> None:
    assert parse(RequirementsParams, {}, "requirements").skip_when_missing == []
    with pytest.raises(ParameterError, match="pre-training cannot"):
        parse(RequirementsParams, {"skip_when_missing": ["pretrain"]}, "requirements")


def _manifest(rows: list[tuple[str, str, str]], **columns: Any) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["protocol", "split", "image_id"]).assign(**columns)


def test_manifest_counts_per_stage() -> None:
    pairs = _manifest(
        [("in_domain", "train", "a"), ("in_domain", "val", "b"), ("as_released", "train", "a")],
        text_kind="qa_statement",
    )
    vqa = _manifest([("in_domain", "train", "a"), ("in_domain", "test", "c")])
    missing = manifest_shortfalls(
        "pretrain", {"protocol": "cross_domain", "text_kinds": ["qa_statement"]}, split_pairs=pairs
    )
    assert "'cross_domain' is not among the split protocols ['as_released', 'in_domain']" in (
        missing[0].missing
    )
    kinds = manifest_shortfalls(
        "pretrain", {"protocol": "in_domain", "text_kinds": ["report"]}, split_pairs=pairs
    )
    assert "{'qa_statement': 1}" in kinds[0].missing
    finetune = manifest_shortfalls(
        "finetune",
        {"protocol": "in_domain", "tasks": ["vqa", "retrieval"], "text_kinds": ["qa_statement"]},
        split_pairs=pairs,
        split_vqa=vqa,
    )
    assert [(s.stage, s.skip) for s in finetune] == [("finetune task vqa", "vqa")]
    assert "fewer than 1 val rows of vqa (train 1, val 0)" in finetune[0].missing
    evaluation = manifest_shortfalls(
        "evaluation",
        {"in_domain_protocol": "in_domain", "cross_domain_protocol": "cross_domain"},
        split_vqa=vqa,
        split_pairs=pairs,
        finetuned_tasks=["vqa"],
    )
    assert [s.skip for s in evaluation] == ["cross_domain"]
    none_asked = manifest_shortfalls(
        "evaluation",
        {"in_domain_protocol": "in_domain", "cross_domain_protocol": ""},
        split_vqa=vqa,
        finetuned_tasks=["vqa"],
    )
    assert none_asked == []


class _Node:
    def __init__(self, name: str) -> None:
        self.name = name


class _Catalog:
    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters

    def load(self, name: str) -> Any:
        assert name == "parameters"
        return self.parameters


def test_hook_drops_skipped_tasks_from_the_node_parameters() -> None:
    """The hook's before_node_run, called as Kedro calls it, on a namespaced finetune node."""
    parameters = _env_parameters("slake")
    parameters["requirements"] = {"skip_when_missing": ["retrieval"]}
    finetune = {**parameters["finetune"], "tasks": ["vqa", "retrieval"], "text_kinds": ["report"]}
    pairs = _manifest(
        [("as_released", "train", "a"), ("as_released", "val", "b")], text_kind="qa_statement"
    )
    vqa = _manifest([("as_released", "train", "a"), ("as_released", "val", "b")])
    hook = DataRequirementsHooks()
    inputs = {
        "split_vqa": vqa,
        "split_classification": vqa.iloc[0:0],
        "split_pairs": pairs,
        "as_released.finetune_params": {**finetune, "protocol": "as_released"},
    }
    updated = hook.before_node_run(
        _Node("as_released.finetune_tasks"), _Catalog(parameters), inputs
    )
    assert updated is not None
    assert updated["as_released.finetune_params"]["tasks"] == ["vqa"]
    parameters["requirements"] = {"skip_when_missing": []}
    with pytest.raises(DataRequirementsError, match="finetune task retrieval"):
        DataRequirementsHooks().before_node_run(
            _Node("as_released.finetune_tasks"), _Catalog(parameters), inputs
        )
    assert hook.before_node_run(_Node("ingest_sources"), _Catalog(parameters), {}) is None


@pytest.mark.slow
def test_a_run_stops_before_ingestion_naming_the_stage_and_fix(
    kedro_project: Path, run_kedro: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    """`kedro run --env slake` with SynthRad's text kinds fails before reading anything."""
    root = write_slake(tmp_path / "slake")
    params = {
        "ingestion": {"roots": {"slake": str(root)}},
        "pretrain": {"text_kinds": ["report", "caption"]},
    }
    with pytest.raises(DataRequirementsError) as caught:
        run_kedro(env="slake", params=params)
    message = str(caught.value)
    assert "pretrain (fit_tokenizer, pretrain_model)" in message and "[qa_statement]" in message
    assert not (kedro_project / "data" / "03_primary" / "vqa.parquet").exists()
    # the base configuration asks nothing the sources cannot give: it runs past the check
    conf = yaml.safe_load((REPO_ROOT / "conf" / "slake" / "parameters_pretrain.yml").read_text())
    assert conf["pretrain"]["text_kinds"] == ["qa_statement"]
