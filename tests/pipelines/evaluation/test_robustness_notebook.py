"""The interactive robustness-report notebook executes against real evaluation and ablation
outputs (test env) and renders its interactive figures."""

from __future__ import annotations

from pathlib import Path

import pytest

PLOTLY = "application/vnd.plotly.v1+json"


@pytest.mark.slow
def test_robustness_notebook_runs_on_real_results(
    chain_project: Path, run_kedro, execute_notebook, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_kedro("finetune")
    run_kedro("evaluation")
    monkeypatch.setenv("ROBUST_MMR_ABLATION_SETTINGS", "mmr,robust_mmr")
    monkeypatch.setenv("ROBUST_MMR_ABLATION_SEEDS", "0")
    run_kedro("ablation", only_missing_outputs=True)

    notebook = execute_notebook("02_robustness_report.ipynb")
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if PLOTLY in o.get("data", {})]
    # severity curves, per-domain bars, retrieval ranks, ablation bars
    assert len(figures) == 4
    severity = figures[0]["data"][PLOTLY]
    assert severity["layout"]["updatemenus"][0]["buttons"], "the task menu is missing"
    assert {trace["name"] for trace in severity["data"]} >= {
        "gaussian_noise (image)",
        "typos (text)",
    }
    text = "\n".join(str(o.get("data", o.get("text", ""))) for o in outputs)
    assert "shift_cost" in text and "drop_overall" in text
    assert "robust_mmr" in text and "No ablation results yet" not in text
