"""Builders of small unified tables (schema.conform) for the split tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from robust_mmr_pipeline.schema import conform, empty


def images_table(
    ids: Sequence[str], domains: Sequence[str], source: str | Sequence[str] = "src"
) -> pd.DataFrame:
    """An images table; ``source`` is one name or one per image; sha256 = the image id."""
    sources = [source] * len(ids) if isinstance(source, str) else list(source)
    return conform(
        pd.DataFrame(
            {
                "image_id": list(ids),
                "source": sources,
                "path": [f"{i}.png" for i in ids],
                "modality": "ct",
                "organ": "chest",
                "domain": list(domains),
                "width": 64,
                "height": 64,
                "sha256": [f"sha-{i}" for i in ids],
            }
        ),
        "images",
    )


def vqa_table(rows: Sequence[tuple[str, str, str, str]]) -> pd.DataFrame:
    """A vqa table from (qid, image_id, answer, split) tuples."""
    frame = pd.DataFrame(rows, columns=["qid", "image_id", "answer", "split"])
    frame = frame.assign(
        question="is there a finding?", answer_type="closed", question_type="presence"
    )
    return conform(frame, "vqa")


def pairs_table(image_ids: Sequence[str]) -> pd.DataFrame:
    """One report pair per image."""
    return conform(
        pd.DataFrame(
            {
                "pair_id": [f"pair-{i}" for i in image_ids],
                "image_id": list(image_ids),
                "text": [f"report of {i}" for i in image_ids],
                "text_kind": "report",
                "style": "structured",
            }
        ),
        "pairs",
    )


def classification_table(rows: Sequence[tuple[str, str, str, str]]) -> pd.DataFrame:
    """A classification table from (sample_id, image_id, label, split) tuples."""
    frame = pd.DataFrame(rows, columns=["sample_id", "image_id", "label", "split"])
    return conform(frame.assign(text="a report"), "classification")


@pytest.fixture
def build() -> SimpleNamespace:
    """The table builders of this module, for tests that need their own tables."""
    return SimpleNamespace(
        images=images_table,
        vqa=vqa_table,
        pairs=pairs_table,
        classification=classification_table,
        empty=empty,
    )


@pytest.fixture
def cohort() -> dict[str, pd.DataFrame]:
    """120 images over domains a/b/c of one source; vqa records of mixed official splits.

    Images 0..59 carry one vqa record each with official split train/val/test (cycled);
    60..89 carry an ``unassigned`` record; 90..119 carry none. Every image has a pair; images
    0..29 a classification sample with the same split as their vqa record.
    """
    ids = [f"src:{i:03d}" for i in range(120)]
    domains = ["a", "b", "c"] * 40
    cycle = ["train", "val", "test"]
    vqa_rows = [(f"q{i:03d}", ids[i], f"ans{i % 7}", cycle[i % 3]) for i in range(60)]
    vqa_rows += [(f"q{i:03d}", ids[i], f"ans{i % 5}", "unassigned") for i in range(60, 90)]
    cls_rows = [(f"c{i:03d}", ids[i], f"label{i % 2}", cycle[i % 3]) for i in range(30)]
    return {
        "images": images_table(ids, domains),
        "pairs": pairs_table(ids),
        "vqa": vqa_table(vqa_rows),
        "classification": classification_table(cls_rows),
    }


@pytest.fixture
def split_kwargs() -> Callable[..., dict[str, Any]]:
    """Keyword arguments of build_splits with defaults, overridable per test."""
    from robust_mmr_pipeline.splits import SplitFractions

    def _kwargs(**overrides: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "seed": 0,
            "fractions": SplitFractions(0.8, 0.1, 0.1),
            "held_out_domains": ["c"],
            "leave_one_out_all": True,
            "respect_official_splits": True,
            "carve_val_from_train": True,
        }
        return {**base, **overrides}

    return _kwargs
