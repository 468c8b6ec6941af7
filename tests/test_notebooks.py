"""The notebooks execute cleanly on the test env, against real pipeline outputs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
def test_data_tour_runs(run_kedro, kedro_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ingestion", "validation", "domain_split"):
        run_kedro(name)
    shutil.copytree(NOTEBOOKS, kedro_project / "notebooks", dirs_exist_ok=True)
    monkeypatch.setenv("KEDRO_ENV", "test")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    path = kedro_project / "notebooks" / "01_synthrad_data_tour.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(kedro_project / "notebooks")}},
        env={**os.environ},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("site_" in str(o) for o in outputs)
