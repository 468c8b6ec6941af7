"""Fixtures of the downstream pipeline tests: the upstream chain, run once per session."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = ("ingestion", "validation", "domain_split", "pretrain")


@pytest.fixture(scope="session")
def pretrained_upstream(tmp_path_factory: pytest.TempPathFactory, mlflow_template_db: Path) -> Path:
    """A project copy where ingestion -> validation -> domain_split -> pretrain ran (test env).

    Session-scoped: the finetune and evaluation tests copy its ``data/`` instead of re-running
    the chain.
    """

    project = tmp_path_factory.mktemp("upstream") / "project"
    project.mkdir()
    shutil.copy2(REPO_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "conf", project / "conf")
    shutil.copytree(
        REPO_ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__")
    )
    for layer in (REPO_ROOT / "data").iterdir():
        if layer.is_dir():
            (project / "data" / layer.name).mkdir(parents=True, exist_ok=True)
    shutil.copy2(mlflow_template_db, project / "mlflow.db")
    # A separate process: MLflow caches its store by the (relative) tracking URI, which must
    # keep pointing at each test's own project.
    script = (
        "from kedro.framework.session import KedroSession\n"
        "from kedro.framework.startup import bootstrap_project\n"
        "from pathlib import Path\n"
        "bootstrap_project(Path.cwd())\n"
        f"for name in {list(UPSTREAM)!r}:\n"
        "    with KedroSession.create(project_path=Path.cwd(), env='test') as session:\n"
        "        session.run(pipeline_name=name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-6000:]
    return project


@pytest.fixture
def chain_project(kedro_project: Path, pretrained_upstream: Path) -> Path:
    """The per-test project copy holding the upstream outputs (pre-trained checkpoint)."""
    shutil.copytree(
        pretrained_upstream / "data", kedro_project / "data", symlinks=True, dirs_exist_ok=True
    )
    return kedro_project
