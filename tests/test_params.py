"""Typed parameter parsing: coercion, unknown keys at any depth, value errors."""

from __future__ import annotations

import pytest

from robust_mmr_pipeline.params import ParameterError, parse
from robust_mmr_pipeline.pipelines.ingestion.params import IngestionParams


def test_valid_parameters_become_dataclasses() -> None:
    params = parse(
        IngestionParams,
        {"on_bad_record": "drop", "sources": [{"kind": "csv", "root": "x"}]},
        "ingestion",
    )
    assert params.on_bad_record == "drop"
    assert params.sources[0].source_name == "csv"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"sources": [{"kind": "csv", "root": "x"}], "typo": 1}, "typo"),
        ({"sources": [{"kind": "csv", "root": "x", "optionz": {}}]}, "sources[0].optionz"),
        ({"sources": [{"kind": "csv"}]}, "root"),
        ({"sources": [{"kind": "csv", "root": "x"}], "on_bad_record": "skip"}, "on_bad_record"),
        ({"sources": []}, "no enabled source"),
        (
            {"sources": [{"kind": "csv", "root": "a"}, {"kind": "csv", "root": "b"}]},
            "used twice",
        ),
    ],
)
def test_bad_parameters_name_the_key(data: dict, fragment: str) -> None:
    with pytest.raises(ParameterError, match=r"params:ingestion") as info:
        parse(IngestionParams, data, "ingestion")
    assert fragment in str(info.value)
