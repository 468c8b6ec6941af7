"""Two SynthRad writers on one folder, interleaved deterministically (no threads, no sleeps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad
from robust_mmr_pipeline.sources.synthrad import writer as writer_module


def test_a_second_writer_inside_the_first_never_breaks_its_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first writer has its ground-truth temporary file open when the second one runs start
    # to end in the same folder: the situation of two `kedro run --pipelines ingestion` started
    # together, which died with FileNotFoundError on a shared `ground_truth.jsonl.tmp`.
    first, second = (SynthRadConfig(n_studies=n, image_size=64, seed=3) for n in (6, 4))
    generate = writer_module.generate_studies
    interleaved: list[int] = []

    def generate_then_let_the_other_writer_run(config, indices):
        if not interleaved:
            interleaved.append(1)
            write_synthrad(second, tmp_path)
        return generate(config, indices)

    monkeypatch.setattr(writer_module, "generate_studies", generate_then_let_the_other_writer_run)
    tables = write_synthrad(first, tmp_path)

    assert interleaved == [1]
    truth = (tmp_path / "ground_truth.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["index"] for line in truth] == list(range(6))  # the last writer's
    assert json.loads((tmp_path / "synthrad_config.json").read_text())["n_studies"] == 6
    assert len(tables.images) == 6
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"


def test_a_failed_writer_leaves_no_temporary_file_and_keeps_the_earlier_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_synthrad(SynthRadConfig(n_studies=3, image_size=64, seed=3), tmp_path)
    before = (tmp_path / "ground_truth.jsonl").read_bytes()

    def broken(config, indices):
        raise RuntimeError("generator failed")

    monkeypatch.setattr(writer_module, "generate_studies", broken)
    with pytest.raises(RuntimeError, match="generator failed"):
        write_synthrad(SynthRadConfig(n_studies=5, image_size=64, seed=3), tmp_path)
    assert (tmp_path / "ground_truth.jsonl").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))
