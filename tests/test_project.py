"""The Kedro project itself: registry, settings, parameter validation, Kedro-Viz, telemetry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robust_mmr_pipeline.params import ParameterError

REPO_ROOT = Path(__file__).resolve().parents[1]
KEDRO = str(Path(sys.executable).with_name("kedro"))
PIPELINE_DIRS = sorted(
    p.name
    for p in (REPO_ROOT / "src" / "robust_mmr_pipeline" / "pipelines").iterdir()
    if (p / "pipeline.py").is_file()
)


def _kedro(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "200"}
    return subprocess.run(
        [KEDRO, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_every_pipeline_folder_is_registered() -> None:
    from kedro.framework.startup import bootstrap_project

    from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN, register_pipelines

    bootstrap_project(REPO_ROOT)
    pipelines = register_pipelines()
    assert set(PIPELINE_DIRS) <= set(pipelines)
    chained = [name for name in DEFAULT_CHAIN if name in pipelines]
    default_nodes = {n.name for n in pipelines["__default__"].nodes}
    assert default_nodes == {n.name for name in chained for n in pipelines[name].nodes}


def test_registry_list_cli_shows_pipelines() -> None:
    result = _kedro("registry", "list", cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    for name in [*PIPELINE_DIRS, "__default__"]:
        assert f"- {name}" in result.stdout


def test_viz_build_lists_every_pipeline_and_node(kedro_project: Path) -> None:
    from kedro.framework.startup import bootstrap_project

    from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN, register_pipelines

    result = _kedro("viz", "build", cwd=kedro_project)
    assert result.returncode == 0, result.stderr + result.stdout
    main = json.loads((kedro_project / "build" / "api" / "main").read_text())
    bootstrap_project(kedro_project)
    pipelines = register_pipelines()
    assert {p["id"] for p in main["pipelines"]} == set(pipelines)
    # `main` holds the default pipeline's graph; every pipeline has its own file beside it.
    for name, pipeline in pipelines.items():
        graph = json.loads((kedro_project / "build" / "api" / "pipelines" / name).read_text())
        # Kedro-Viz names a namespaced node by its short name (the namespace is its group)
        task_nodes = sorted(n["name"] for n in graph["nodes"] if n["type"] == "task")
        expected = sorted(
            node.name.removeprefix(f"{node.namespace}.") if node.namespace else node.name
            for node in pipeline.nodes
        )
        assert task_nodes == expected, name
    # The default chain draws as its six stages: one collapsible group per stage at the top,
    # each task inside its own stage's group, the datasets under their catalog names.
    graph = json.loads((kedro_project / "build" / "api" / "pipelines" / "__default__").read_text())
    groups = graph["modular_pipelines"]
    top = {c["id"] for c in groups["__root__"]["children"] if c["type"] == "modularPipeline"}
    assert top == set(groups) - {"__root__"} == set(DEFAULT_CHAIN)
    for stage in DEFAULT_CHAIN:
        stage_nodes = {n.name.removeprefix(f"{stage}.") for n in pipelines[stage].nodes}
        drawn = {
            n["name"]
            for n in graph["nodes"]
            if n["type"] == "task" and n["modular_pipelines"] == [stage]
        }
        assert drawn == stage_nodes, stage
    catalog_names = {
        n["name"] for n in graph["nodes"] if n["type"] == "data"
    }  # e.g. images, split_vqa, robustness_report_html: as in conf/base/catalog*.yml
    assert {"images", "split_vqa", "pretrain_checkpoint", "robustness_report_html"} <= catalog_names
    assert not {n for n in catalog_names if n.split(".")[0] in DEFAULT_CHAIN}


def test_default_chain_nodes_are_named_by_stage() -> None:
    import importlib

    from kedro.framework.startup import bootstrap_project

    from robust_mmr_pipeline.pipeline_registry import DEFAULT_CHAIN, register_pipelines

    bootstrap_project(REPO_ROOT)
    pipelines = register_pipelines()
    default = pipelines["__default__"]
    assert {n.namespace for n in default.nodes} == set(DEFAULT_CHAIN)
    assert default.only_nodes("ingestion.ingest_sources").outputs() >= {"images", "rejects"}
    # the namespaces group nodes only: every stage reads and writes the catalog's names
    for stage in DEFAULT_CHAIN:
        plain = importlib.import_module(f"robust_mmr_pipeline.pipelines.{stage}").create_pipeline()
        grouped = pipelines[stage]
        assert grouped.all_inputs() == plain.all_inputs(), stage
        assert grouped.all_outputs() == plain.all_outputs(), stage
        assert {n.name for n in grouped.nodes} == {f"{stage}.{n.name}" for n in plain.nodes}


def test_parameters_soft_merge_keeps_siblings(kedro_project: Path) -> None:
    from kedro.config import OmegaConfigLoader

    from robust_mmr_pipeline.settings import CONFIG_LOADER_ARGS

    local = kedro_project / "conf" / "local" / "parameters_ingestion.yml"
    local.write_text(yaml.safe_dump({"ingestion": {"on_bad_record": "drop"}}))
    loader = OmegaConfigLoader(
        conf_source=str(kedro_project / "conf"),
        **CONFIG_LOADER_ARGS,
        runtime_params={"ingestion": {"sources": [{"kind": "csv", "root": "x"}]}},
    )
    params = loader["parameters"]["ingestion"]
    assert params["on_bad_record"] == "drop"
    assert params["sources"] == [{"kind": "csv", "root": "x"}]


def test_mlflow_tracks_to_sqlite_by_default() -> None:
    config = yaml.safe_load((REPO_ROOT / "conf" / "base" / "mlflow.yml").read_text())
    assert config["server"]["mlflow_tracking_uri"].startswith("sqlite:///")


def test_telemetry_is_off_without_user_action() -> None:
    assert yaml.safe_load((REPO_ROOT / ".telemetry").read_text()) == {"consent": False}
    code = (
        "import os;"
        "[os.environ.pop(k, None) for k in ('KEDRO_DISABLE_TELEMETRY','MLFLOW_DISABLE_TELEMETRY',"
        "'DVC_NO_ANALYTICS')];"
        "import robust_mmr_pipeline.settings;"
        "print(os.environ['KEDRO_DISABLE_TELEMETRY'], os.environ['MLFLOW_DISABLE_TELEMETRY'],"
        " os.environ['DVC_NO_ANALYTICS'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "true", "1"]


def test_unknown_parameter_fails_before_any_node_runs(run_kedro, kedro_project: Path) -> None:
    with pytest.raises(ParameterError, match="on_bad_recrod"):
        run_kedro("ingestion", params={"ingestion": {"on_bad_recrod": "drop"}})
    assert not (kedro_project / "data" / "03_primary" / "images.parquet").exists()


def test_invalid_parameter_value_names_the_key(run_kedro) -> None:
    with pytest.raises(ParameterError, match="on_bad_record"):
        run_kedro("ingestion", params={"ingestion": {"on_bad_record": "ignore"}})


def test_registry_loads_without_heavy_imports() -> None:
    """Kedro-Viz and light pipelines start fast: listing pipelines imports no torch or GX."""
    code = (
        "import sys; from kedro.framework.startup import bootstrap_project;"
        f"bootstrap_project({str(REPO_ROOT)!r});"
        "from robust_mmr_pipeline.pipeline_registry import register_pipelines;"
        "register_pipelines();"
        "heavy = [m for m in ('torch', 'great_expectations', 'transformers', 'timm',"
        " 'matplotlib.pyplot', 'optuna', 'mlflow.pytorch') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "env",
    # conf/accelerate holds launcher configs (accelerate launch --config_file), not a Kedro env
    sorted(
        p.name
        for p in (REPO_ROOT / "conf").iterdir()
        if p.is_dir() and p.name not in ("base", "accelerate")
    ),
)
def test_every_conf_env_loads_and_validates(env: str) -> None:
    """Each env's parameters merge over base and match their typed configs (a list where base
    has a mapping, or a stale key, fails here rather than at `kedro run --env <env>`)."""
    from kedro.config import OmegaConfigLoader

    from robust_mmr_pipeline.params import PARAM_SCHEMAS, validate_sections
    from robust_mmr_pipeline.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(conf_source=str(REPO_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    parameters = loader["parameters"]
    validate_sections(parameters, sorted(PARAM_SCHEMAS))
    assert loader["catalog"]


def test_a_concurrent_experiment_creation_is_tolerated(
    kedro_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on a fresh store: both see no experiment, the second creation fails with
    "already exists"; the project hook accepts it instead of aborting the run."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from robust_mmr_pipeline.hooks import MlflowExperimentHooks

    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project, env="test") as session:
        context = session.load_context()  # the hooks create the experiment
        client = mlflow.MlflowClient(tracking_uri=mlflow.get_tracking_uri())
        assert client.get_experiment_by_name("robust_mmr_pipeline") is not None
        # the other worker's view: the experiment does not exist yet
        monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name", lambda *a, **k: None)
        with pytest.raises(mlflow.exceptions.MlflowException, match="already exists"):
            client.create_experiment("robust_mmr_pipeline")
        MlflowExperimentHooks().after_context_created(context)  # no exception
