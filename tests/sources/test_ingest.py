"""Ingesting several sources: the bounded bad-record tolerance and the root overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import edit_json, write_slake

from robust_mmr_pipeline.params import ParameterError, parse
from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams
from robust_mmr_pipeline.sources.common.bad_records import IngestionError
from robust_mmr_pipeline.sources.ingest import ingest_all


def _slake_with_empty_answers(root: Path, count: int) -> Path:
    """The SLAKE fixture with ``count`` English train answers emptied (as qid 1622 of the
    release) plus enough good records that one bad one is under 1 %."""
    write_slake(root)

    def edit(records: list[dict]) -> None:
        template = dict(records[0])
        for index in range(150):
            records.append({**template, "qid": 1000 + index, "question": f"Question {index}?"})
        for record in records[1 : 1 + count]:
            record["answer"] = ""

    edit_json(root / "train.json", edit)
    return root


def _params(root: Path, **extra: object) -> IngestionParams:
    return parse(
        IngestionParams,
        {"sources": [{"kind": "slake", "root": str(root)}], **extra},
        "ingestion",
    )


def test_tolerate_is_the_default_and_keeps_every_rejected_record(tmp_path: Path) -> None:
    root = _slake_with_empty_answers(tmp_path / "slake", 1)
    params = _params(root)
    assert params.on_bad_record == "tolerate" and params.max_bad_fraction == 0.01
    tables, _ = ingest_all(params.sources, params.on_bad_record, params.bad_fraction_of)
    assert len(tables.rejects) == 1
    assert "'answer' is empty" in tables.rejects["reason"].iloc[0]
    assert tables.rejects["file"].iloc[0].endswith("train.json")
    with pytest.raises(IngestionError, match="'answer' is empty"):
        ingest_all(params.sources, "raise")


def test_tolerate_raises_above_the_bound_and_names_the_fix(tmp_path: Path) -> None:
    root = _slake_with_empty_answers(tmp_path / "slake", 3)  # 3 of ~155: about 2 %
    params = _params(root)
    with pytest.raises(IngestionError) as caught:
        ingest_all(params.sources, params.on_bad_record, params.bad_fraction_of)
    message = str(caught.value)
    assert "3 bad record(s)" in message and "1.00%" in message
    assert "'answer' is empty" in message and "max_bad_fraction" in message
    # a per-source bound, or drop, lets it through; every bad record is kept as a reject
    looser = _params(root, max_bad_fraction=0.01)
    looser.sources[0].max_bad_fraction = 0.05
    tables, _ = ingest_all(looser.sources, "tolerate", looser.bad_fraction_of)
    assert len(tables.rejects) == 3
    tables, _ = ingest_all(params.sources, "drop")
    assert len(tables.rejects) == 3


def test_roots_override_a_source_folder_by_name(tmp_path: Path) -> None:
    root = write_slake(tmp_path / "copy")
    params = _params(tmp_path / "nowhere", roots={"slake": str(root)})
    assert params.sources[0].root == str(root)
    tables, roots = ingest_all(params.sources, params.on_bad_record, params.bad_fraction_of)
    assert roots == {"slake": str(root.resolve())} and len(tables.vqa)
    with pytest.raises(ParameterError, match="roots names source"):
        _params(root, roots={"slak": str(root)})
    with pytest.raises(ParameterError, match="max_bad_fraction"):
        _params(root, max_bad_fraction=1.5)
