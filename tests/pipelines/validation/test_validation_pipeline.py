"""The validation pipeline in Kedro: wiring, catalog, and real runs in a temporary project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from browser_support import CHROMIUM, assert_reads_well

from robust_mmr_pipeline.params import PARAM_SCHEMAS, schema_for
from robust_mmr_pipeline.schema import TABLES, conform
from robust_mmr_pipeline.validation import DataValidationError
from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.phi import GUARD_COLUMNS, empty_phi_table
from robust_mmr_pipeline.validation.report import REPORT_FILES
from robust_mmr_pipeline.validation.synthetic import make_synthetic

REPO_ROOT = Path(__file__).resolve().parents[3]
NODES = ["check_image_files", "validate_tables", "write_validation_report"]


def test_pipeline_nodes_inputs_and_outputs() -> None:
    from robust_mmr_pipeline.pipelines.validation import create_pipeline

    pipeline = create_pipeline()
    assert sorted(n.name for n in pipeline.nodes) == sorted(NODES)
    assert pipeline.inputs() == {
        "images",
        "pairs",
        "vqa",
        "classification",
        "rejects",
        "image_roots",
        "phi_warnings",  # ingestion's PHI guard wrote it, before any table
        "params:validation",
    }
    assert pipeline.all_outputs() - {"validation_results"} == {
        "image_checks",
        "validation_summary",
        "validation_report_md",
        "validation_report_html",
    }


def test_params_registered_and_pipeline_import_stays_light() -> None:
    assert schema_for("validation") is ValidationParams
    assert PARAM_SCHEMAS["validation"].endswith("pipelines.validation.params:ValidationParams")
    code = (
        "import sys, robust_mmr_pipeline.pipelines.validation as p; p.create_pipeline();"
        "print('great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_catalog_report_paths_match_report_dir() -> None:
    catalog = yaml.safe_load((REPO_ROOT / "conf/base/catalog_validation.yml").read_text())
    report_dir = Path(ValidationParams().report_dir)
    for entry, kind in [
        ("validation_summary", "summary"),
        ("validation_report_md", "markdown"),
        ("validation_report_html", "html"),
    ]:
        assert Path(catalog[entry]["filepath"]) == report_dir / REPORT_FILES[kind]
    assert catalog["validation_summary"]["type"] == "json.JSONDataset"


def _write_primary(project: Path, tables: dict[str, pd.DataFrame], roots: dict[str, str]) -> None:
    primary = project / "data" / "03_primary"
    primary.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        tables[name].to_parquet(primary / f"{name}.parquet", index=False)
    (primary / "image_roots.json").write_text(json.dumps(roots))
    # what ingestion's PHI guard writes next to the tables (no finding here)
    reporting = project / "data" / "08_reporting"
    reporting.mkdir(parents=True, exist_ok=True)
    empty_phi_table(GUARD_COLUMNS).to_csv(reporting / "phi_warnings.csv", index=False)


def test_kedro_run_on_clean_tables_passes(run_kedro, kedro_project: Path) -> None:
    synthetic = make_synthetic(kedro_project / "data" / "01_raw" / "synthrad", n_images=20)
    _write_primary(kedro_project, synthetic.tables, synthetic.roots)
    run_kedro("validation")
    reporting = kedro_project / "data" / "08_reporting"
    summary = json.loads((reporting / "validation_summary.json").read_text())
    assert summary["success"] is True and summary["warnings"] == 0
    assert summary["rows"]["images"] == 20
    assert "**PASSED" in (reporting / "validation_report.md").read_text()
    assert (reporting / "validation_report.html").read_text().startswith("<!DOCTYPE html>")
    if CHROMIUM:  # the run's own page in a browser (tests/reporting: on every machine with one)
        assert_reads_well(reporting / "validation_report.html", figures=0)
    checks = pd.read_parquet(kedro_project / "data" / "02_intermediate" / "image_checks.parquet")
    assert len(checks) == 20 and bool(checks["decodes"].all())
    assert pd.read_csv(reporting / "phi_warnings.csv").empty


def test_kedro_run_stops_on_fatal_failure_after_writing_report(
    run_kedro, kedro_project: Path
) -> None:
    synthetic = make_synthetic(kedro_project / "data" / "01_raw" / "synthrad", n_images=20)
    tables = dict(synthetic.tables)
    vqa = tables["vqa"]
    tables["vqa"] = conform(pd.concat([vqa, vqa.iloc[[3]]], ignore_index=True), "vqa")
    (kedro_project / "data" / "01_raw" / "synthrad" / tables["images"]["path"].iloc[2]).unlink()
    _write_primary(kedro_project, tables, synthetic.roots)
    with pytest.raises(DataValidationError) as raised:
        run_kedro("validation")
    message = str(raised.value)
    assert "table 'vqa', check 'ids_unique'" in message and str(vqa["qid"].iloc[3]) in message
    assert "table 'image_files', check 'image_exists'" in message
    reporting = kedro_project / "data" / "08_reporting"
    summary = json.loads((reporting / "validation_summary.json").read_text())
    assert summary["success"] is False and summary["fatal_failures"] == 2
    assert summary["by_check"]["ids_unique"]["unexpected_count"] == 2
    assert "**FAILED" in (reporting / "validation_report.md").read_text()


def _synthrad_ready() -> str | None:
    """Why the SynthRad generator cannot run yet (None when it can)."""
    try:
        from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad  # noqa: F401
    except ImportError as exc:
        return f"SynthRad generator not available yet ({exc})"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_synthrad_ready() is not None, reason=str(_synthrad_ready()))
def test_kedro_ingestion_then_validation_on_test_env(run_kedro, kedro_project: Path) -> None:
    run_kedro("ingestion")
    run_kedro("validation")
    summary = json.loads(
        (kedro_project / "data" / "08_reporting" / "validation_summary.json").read_text()
    )
    assert summary["success"] is True
    assert summary["rows"]["images"] > 0
