"""Shared fixtures: a throw-away copy of the Kedro project and real Kedro runs inside it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

for _name, _value in {
    "KEDRO_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # The tests' models are tiny: one thread per process is as fast, and a second OpenMP thread
    # waiting for a busy core slows a step down 50-fold (measured under load on 2 cores).
    # Kedro / DVC subprocesses inherit it.
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(
    os.environ.get("ROBUST_MMR_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")
).resolve()


def copy_project(destination: Path) -> Path:
    """Copy what a Kedro session needs (pyproject, conf, empty data layers) to ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "pyproject.toml", destination / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", destination / "conf", dirs_exist_ok=True)
    # Kedro wants src/ inside the project (a symlink out of it is refused).
    shutil.copytree(
        REPO_ROOT / "src", destination / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    for layer in (REPO_ROOT / "data").iterdir():
        if layer.is_dir():
            (destination / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    return destination


@pytest.fixture(autouse=True)
def _no_dangling_mlflow_run() -> Iterator[None]:
    """End any MLflow run a test left active, so the next Kedro session starts its own."""
    yield
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema migrated once per test session.

    Creating the schema takes seconds (alembic migrations); each project copy gets a copy of
    this file instead, so every test still tracks to its own real, empty store.
    """
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def kedro_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template_db: Path
) -> Iterator[Path]:
    """A fresh copy of the project in a temporary folder, as the working directory."""
    project = copy_project(tmp_path / "project")
    shutil.copy2(mlflow_template_db, project / "mlflow.db")
    monkeypatch.chdir(project)
    yield project


@pytest.fixture
def run_kedro(kedro_project: Path) -> Callable[..., dict[str, Any]]:
    """Run a registered pipeline for real, in the temporary project, with the test env."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(kedro_project)

    def _run(
        pipeline_name: str | None = None,
        env: str = "test",
        params: dict[str, Any] | None = None,
        **run_options: Any,
    ) -> dict[str, Any]:
        with KedroSession.create(
            project_path=kedro_project, env=env, runtime_params=params or {}
        ) as session:
            return session.run(pipeline_name=pipeline_name, **run_options)

    return _run


def requires_shared(*parts: str) -> pytest.MarkDecorator:
    """Skip (with the reason) when the shared real-data copy is absent."""
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(
        not path.exists(), reason=f"real data not present at {path} (set ROBUST_MMR_SHARED_DATA)"
    )


@pytest.fixture
def execute_notebook(kedro_project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """Execute ``notebooks/<name>`` inside the project copy on the test env; return the
    executed notebook after checking that no cell raised."""
    import nbformat
    from nbclient import NotebookClient

    def _execute(name: str) -> Any:
        shutil.copytree(REPO_ROOT / "notebooks", kedro_project / "notebooks", dirs_exist_ok=True)
        monkeypatch.setenv("KEDRO_ENV", "test")
        monkeypatch.setenv("MPLBACKEND", "Agg")
        path = kedro_project / "notebooks" / name
        notebook = nbformat.read(path, as_version=4)
        NotebookClient(
            notebook,
            timeout=300,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            env={**os.environ},
        ).execute()
        errors = [
            output
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.outputs
            if output.get("output_type") == "error"
        ]
        assert not errors, errors
        return notebook

    return _execute


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the test session (Debian's package); skipped, with the
    install command, where no server binary is installed."""
    from scaleout_support import POSTGRES_INSTALL, postgres_bindir, throwaway_postgres

    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binary not found (/usr/lib/postgresql/<version>/bin/postgres or "
            f"postgres on PATH); install Debian's package: {POSTGRES_INSTALL}"
        )
    with throwaway_postgres(bindir) as server:
        yield server
