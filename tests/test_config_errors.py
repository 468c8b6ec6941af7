"""Configuration mistakes stop the run before any node, with one clear message and no traceback.

Units: the top-level section check, one-paragraph parameter messages, perturbation names checked
against the registry. End to end: real ``kedro run`` / ``python -m robust_mmr_pipeline``
subprocesses in a copy of the project, whose output must hold the message and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robust_mmr_pipeline import cli
from robust_mmr_pipeline.params import ParameterError, check_sections, parse
from robust_mmr_pipeline.pipelines.evaluation.params import EvaluationParams
from robust_mmr_pipeline.pipelines.validation.params import ValidationParams

# ----------------------------------------------------------------------------- units


def test_misspelt_section_names_where_it_came_from_and_the_fix() -> None:
    params = {"pretrain": {}, "pretrian": {"trainer": {"max_steps": 10}}}
    with pytest.raises(ParameterError) as caught:
        check_sections(params, from_cli={"pretrian"}, env="local")
    message = str(caught.value)
    assert "'pretrian' (from --params) (did you mean 'pretrain'?)" in message
    assert "silently ignored" in message and "Fix:" in message and "\n" not in message
    with pytest.raises(ParameterError, match=r"'evaluaton' \(from conf/test/parameters\*\.yml\)"):
        check_sections({"evaluaton": {}}, env="test")


def test_sections_read_by_a_pipeline_or_listed_are_known(monkeypatch: pytest.MonkeyPatch) -> None:
    check_sections({"my_stage": {"x": 1}}, read_by_nodes={"my_stage"})
    with pytest.raises(ParameterError):
        check_sections({"notebook_only": {}})
    monkeypatch.setattr("robust_mmr_pipeline.params.EXTRA_SECTIONS", ("notebook_only",))
    check_sections({"notebook_only": {}})


@pytest.mark.parametrize(
    ("cls", "section", "data", "expected"),
    [
        (ValidationParams, "validation", {"images": {"sied": 1}}, "'validation.images.sied' (did"),
        (
            ValidationParams,
            "validation",
            {"images": {"workers": "two"}},
            "validation.images.workers",
        ),
        (EvaluationParams, "evaluation", {"batch_size": 0}, "batch_size must be >= 1"),
    ],
)
def test_parameter_messages_are_one_paragraph(cls, section, data, expected) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(cls, data, section)
    message = str(caught.value)
    assert expected in message
    assert f"Fix it in conf/<env>/parameters_{section}.yml or your --params." in message
    assert "\n" not in message and "errors.pydantic.dev" not in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"image_perturbations": ["gausian_noise"]}, "'gausian_noise' (did you mean 'gaussian"),
        ({"image_perturbations": ["typos"]}, "'typos' is a text perturbation"),
        ({"text_perturbations": ["jpeg"]}, "'jpeg' is an image perturbation"),
        ({"text_perturbations": ["shout"]}, "unknown text perturbation(s): 'shout'"),
    ],
)
def test_unknown_evaluation_perturbation_fails_at_parse(data: dict, expected: str) -> None:
    with pytest.raises(ParameterError) as caught:
        parse(EvaluationParams, data, "evaluation")
    assert expected in str(caught.value)


def test_known_evaluation_perturbations_parse() -> None:
    parsed = parse(
        EvaluationParams,
        {"image_perturbations": ["gaussian_noise", "jpeg"], "text_perturbations": "all"},
        "evaluation",
    )
    assert parsed.wants("image", "jpeg") and not parsed.wants("image", "contrast")


def test_user_error_is_found_in_the_chain() -> None:
    try:
        try:
            raise ParameterError("bad key")
        except ParameterError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert cli.user_error(outer).args == ("bad key",)  # type: ignore[union-attr]
    assert cli.user_error(KeyError("x")) is None


# ----------------------------------------------------------------------------- real runs


def _run(project: Path, *args: str, module: str = "kedro") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(project / "src"),
        "COLUMNS": "200",
        "KEDRO_LOGGING_CONFIG": str(project / "conf" / "logging.yml"),
    }
    env.pop(cli.TRACEBACK_ENV, None)
    command = [sys.executable, "-m", module, *(["run"] if module == "kedro" else []), *args]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _assert_clean_failure(result: subprocess.CompletedProcess, *fragments: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output and "╭─" not in output, output[-3000:]
    error = output[output.index("Error: ") :]
    for fragment in fragments:
        assert fragment in error, error
    assert len(error.splitlines()) <= 3, error
    return output


@pytest.mark.slow
def test_kedro_run_with_a_misspelt_section_stops_before_any_node(kedro_project: Path) -> None:
    result = _run(
        kedro_project,
        "--env=test",
        "--pipelines=domain_split",
        "--params=pretrian.trainer.max_steps=10",
    )
    output = _assert_clean_failure(
        result, "Error: ParameterError: Unknown parameter section(s) 'pretrian' (from --params)"
    )
    assert "Running node" not in output


@pytest.mark.slow
def test_kedro_run_with_an_unknown_perturbation_stops_before_pretraining(
    kedro_project: Path,
) -> None:
    result = _run(kedro_project, "--env=test", "--params=evaluation.text_perturbations=[tpyos]")
    output = _assert_clean_failure(
        result, "unknown text perturbation(s): 'tpyos' (did you mean 'typos'?)"
    )
    assert "Running node" not in output


@pytest.mark.slow
def test_a_bad_record_raised_in_a_node_prints_without_traceback(
    kedro_project: Path, tmp_path: Path
) -> None:
    from PIL import Image

    data = tmp_path / "dataset"
    (data / "img").mkdir(parents=True)
    Image.new("L", (40, 40), 90).save(data / "img" / "a.png")
    (data / "pairs.csv").write_text(
        "id,image,text,label\n1,img/a.png,Clear lungs.,normal\n2,img/a.png,Clear.,NaN\n",
        encoding="utf-8",
    )
    env_dir = kedro_project / "conf" / "badcsv"
    env_dir.mkdir()
    (env_dir / "parameters_ingestion.yml").write_text(
        "ingestion:\n  sources:\n    - kind: csv\n      name: site\n"
        f"      root: {data}\n      options: {{id_column: id, label_column: label}}\n",
        encoding="utf-8",
    )
    result = _run(
        kedro_project, "--env=badcsv", "--pipelines=ingestion", module="robust_mmr_pipeline"
    )
    _assert_clean_failure(
        result,
        "Error: IngestionError: site: 1 bad record(s)",
        "record '2 (row 2, line 3)' in ",
        "'NaN', a missing value",
        "Fix:",
    )


@pytest.mark.slow
def test_a_yaml_syntax_error_names_the_file_and_the_one_based_line(kedro_project: Path) -> None:
    conf = kedro_project / "conf" / "test" / "parameters_finetune.yml"
    conf.write_text(
        "finetune:\n  trainer:\n    max_steps: 4\n    batch_size: [8\n    eval_every: 2\n",
        encoding="utf-8",
    )
    result = _run(kedro_project, "--env=test", "--pipelines=ingestion")
    output = _assert_clean_failure(
        result,
        f"The configuration file {conf} is not valid YAML: line 5, column 15: expected ',' or "
        "']', but got ':' (while parsing a flow sequence at line 4)",
        "  5 |     eval_every: 2",
        "Fix: correct the YAML at that line",
    )
    assert "Running node" not in output


def _pickled_weights(path: Path) -> Path:
    """A torch file as many research checkpoints are: tensors plus a pickled object."""
    import argparse

    import torch

    torch.save({"patch_embed.proj.weight": torch.zeros(2), "args": argparse.Namespace(lr=1)}, path)
    return path


def _checkpoint_with_unknown_key(folder: Path) -> Path:
    """A real checkpoint of a tiny MMRModel whose model.json holds a misspelt key."""
    import json

    from robust_mmr_pipeline.engine import CheckpointContents, save_checkpoint
    from robust_mmr_pipeline.model import MMRModel, apply_preset

    tiny = {"vision": {"image_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1,
                       "num_heads": 2},
            "text": {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                     "intermediate_size": 64, "vocab_size": 64},
            "fusion": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
            "decoder": {"hidden_size": 32, "depth": 1, "num_heads": 2}}  # fmt: skip
    model = MMRModel(apply_preset("mmr", tiny, size="small"))
    path = save_checkpoint(folder, 1, model, CheckpointContents(trainer_state={"step": 1}))
    meta = json.loads((path / "model.json").read_text())
    meta["config"]["vision"]["patch_sise"] = 8
    (path / "model.json").write_text(json.dumps(meta))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("case", ["missing", "pickled", "init_missing", "init_unknown_key"])
def test_a_bad_weight_source_stops_the_run_before_any_node(
    kedro_project: Path, tmp_path: Path, case: str
) -> None:
    setting = "pretrain.model.vision.pretrained_path"
    if case == "missing":
        value = tmp_path / "no_such_vit.safetensors"
        expected = [f"{setting} does not exist: {value}", "Fix: point"]
    elif case == "pickled":
        value = _pickled_weights(tmp_path / "vit.pt")
        expected = [f"{setting} = {value} holds pickled Python objects", "safetensors"]
    else:
        setting = "pretrain.init_checkpoint"
        if case == "init_missing":
            value = tmp_path / "no_such_checkpoint"
            expected = [f"{setting} = {value} is no usable checkpoint: No checkpoint found"]
        else:
            value = _checkpoint_with_unknown_key(tmp_path / "checkpoints")
            expected = [f"{value}/model.json", "config.vision.patch_sise"]
    # a full default run: the check comes before ingestion, the first node
    result = _run(kedro_project, "--env=test", f"--params={setting}={value}")
    output = _assert_clean_failure(result, "Error: ParameterError: ", *expected)
    assert "weights_only" not in output and "Running node" not in output
