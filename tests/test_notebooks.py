"""The data-tour notebook executes cleanly on the test env, against real pipeline outputs."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_data_tour_runs(run_kedro, execute_notebook) -> None:
    for name in ("ingestion", "validation", "domain_split"):
        run_kedro(name)
    notebook = execute_notebook("01_synthrad_data_tour.ipynb")
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert any("site_" in str(o) for o in outputs)
