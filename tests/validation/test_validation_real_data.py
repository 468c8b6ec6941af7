"""Validation of the real VQA-RAD release, read by its adapter (skipped without the data)."""

from __future__ import annotations

from pathlib import Path

import pytest
from validation_test_support import SHARED_DATA, requires_shared

from robust_mmr_pipeline.schema import PRIMARY_KEYS
from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.images import check_images
from robust_mmr_pipeline.validation.phi import scan_tables
from robust_mmr_pipeline.validation.run import validate_all


@pytest.mark.shared_data
@requires_shared("vqa_rad", "VQA_RAD Dataset Public.json")
def test_vqa_rad_passes_validation_and_reports_its_known_issues() -> None:
    registry = pytest.importorskip(
        "robust_mmr_pipeline.sources.registry", reason="the source registry is not built yet"
    )
    root: Path = SHARED_DATA / "vqa_rad"
    tables = registry.read_source("vqa_rad", root, "vqa_rad", {}, "raise").as_dict()
    params = ValidationParams()
    text = ("pairs", "vqa", "classification")
    image_checks = check_images(tables["images"], {"vqa_rad": str(root.resolve())})
    phi = scan_tables(
        tables,
        {t: list(params.text_columns(t)) for t in text},
        {t: PRIMARY_KEYS[t] for t in text},
        params.phi.patterns(),
    )
    summary = validate_all(tables, image_checks, phi, params)

    fatal = [(c["table"], c["check"], c["examples"][:2]) for c in summary["checks"]]
    fatal = [f for f, c in zip(fatal, summary["checks"], strict=True) if c["status"] == "fatal"]
    assert summary["success"], fatal
    assert summary["summaries"]["image_files"]["undecodable"] == 0
    assert image_checks["decodes"].all() and len(image_checks) >= 300
    by_check = summary["by_check"]
    # VQA-RAD asks test questions about training images: reported, not fatal
    overlap = summary["summaries"]["split_overlap"]["vqa_rad"]
    assert not overlap["promised_disjoint"] and overlap["images_in_several_splits"] > 100
    assert not by_check["split_overlap_by_design"]["success"]
    # some test answers never occur in training
    assert summary["summaries"]["answer_vocabulary"]["vqa_rad"]["out_of_vocabulary_rows"] > 0
    # the release holds a U+FFFD in one question ("it\ufffds"), flagged as an encoding warning
    encoding = [c for c in summary["checks"] if c["check"] == "text_encoding" and c["examples"]]
    assert any("\ufffd" in str(e.get("question", "")) for c in encoding for e in c["examples"])
    assert by_check["phi"]["success"]
