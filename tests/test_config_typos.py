"""A typo anywhere in the configuration stops at parse time with its full dotted key path.

One layer catches it (the section's typed config, nested sections typed too): the message names
the section, the key path, a close match and the fix, in one paragraph.
"""

from __future__ import annotations

import pytest

from robust_mmr_pipeline.params import ParameterError, parse
from robust_mmr_pipeline.pipelines.ablation.params import AblationParams
from robust_mmr_pipeline.pipelines.finetune.params import FinetuneParams
from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
from robust_mmr_pipeline.pipelines.pretrain.params import PretrainParams
from robust_mmr_pipeline.typed_config import deep_merge


@pytest.mark.parametrize(
    ("cls", "section", "data", "path", "close"),
    [
        (
            PretrainParams,
            "pretrain",
            {"model": {"objectives": {"mim_wieght": 1.0}}},
            "pretrain.model.objectives.mim_wieght",
            "mim_weight",
        ),
        (
            PretrainParams,
            "pretrain",
            {"trainer": {"max_stepz": 10}},
            "pretrain.trainer.max_stepz",
            "max_steps",
        ),
        (
            FinetuneParams,
            "finetune",
            {"task_options": {"vqa": {"vqa_los": "ce"}}},
            "finetune.task_options.vqa.vqa_los",
            "vqa_loss",
        ),
        (
            FinetuneParams,
            "finetune",
            {"task_trainer": {"retrieval": {"lrr": 1e-4}}},
            "finetune.task_trainer.retrieval.lrr",
            "lr",
        ),
        (
            IngestionParams,
            "ingestion",
            {"sources": [{"kind": "slake", "root": "x", "options": {"q_lnag": "en"}}]},
            "ingestion.sources[slake].options.q_lnag",
            "q_lang",
        ),
        (
            IngestionParams,
            "ingestion",
            {"sources": [{"kind": "synthrad", "root": "x", "options": {"n_studis": 8}}]},
            "ingestion.sources[synthrad].options.n_studis",
            "n_studies",
        ),
        (
            AblationParams,
            "ablation",
            {"pretrain": {"trainer": {"max_stepz": 3}}},
            "ablation.pretrain.trainer.max_stepz",
            "max_steps",
        ),
    ],
)
def test_a_nested_typo_names_its_dotted_path(cls, section, data, path, close) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(cls, data, section)
    message = str(caught.value)
    assert f"unknown key '{path}' (did you mean '{close}'?)" in message
    assert f"parameters_{section}.yml or your --params" in message
    assert "\n" not in message and "errors.pydantic.dev" not in message


def test_a_bad_value_names_the_key_and_the_value() -> None:
    with pytest.raises(ParameterError, match=r"pretrain\.trainer\.lr = 'fast': Input should be"):
        parse(PretrainParams, {"trainer": {"lr": "fast"}}, "pretrain")
    with pytest.raises(ParameterError, match=r"finetune\.task_options: key 'vqaa'"):
        parse(FinetuneParams, {"task_options": {"vqaa": {}}}, "finetune")


def test_overrides_stay_partial_plain_dicts() -> None:
    """Typed overrides keep only the keys given (merged over presets / sections later)."""
    params = parse(
        PretrainParams,
        {
            "model": {"robust": {"view_probs": [0.5, 0.5, 0.0]}},
            "trainer": {"mixed_precision": False},
        },
        "pretrain",
    )
    assert params.model == {"robust": {"view_probs": (0.5, 0.5, 0.0)}}
    assert params.trainer == {"mixed_precision": "no"}  # YAML's bare `no`


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "e": 2}) == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}
