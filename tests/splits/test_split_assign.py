"""Hash-based assignment: deterministic, stable under additions, byte-identical manifests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro_datasets.pandas import ParquetDataset

from robust_mmr_pipeline.splits import SplitFractions, build_splits, derive_seed, unit_hash
from robust_mmr_pipeline.splits.assign import hash_splits, train_val_splits, unit_hashes


def test_unit_hash_is_deterministic_and_in_unit_interval() -> None:
    values = unit_hashes(7, [f"img{i}" for i in range(2000)])
    assert np.all((values >= 0.0) & (values < 1.0))
    assert unit_hash(7, "img3") == values[3] == unit_hash(7, "img3")
    assert unit_hash(8, "img3") != unit_hash(7, "img3")


def test_hash_splits_follow_fractions() -> None:
    fractions = SplitFractions(0.7, 0.2, 0.1)
    splits = pd.Series(hash_splits(unit_hashes(0, [f"i{k}" for k in range(20000)]), fractions))
    shares = splits.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.7, abs=0.015)
    assert shares["val"] == pytest.approx(0.2, abs=0.015)
    assert shares["test"] == pytest.approx(0.1, abs=0.015)
    renormalised = pd.Series(
        train_val_splits(unit_hashes(0, [f"i{k}" for k in range(20000)]), fractions)
    ).value_counts(normalize=True)
    assert renormalised["train"] == pytest.approx(0.7 / 0.9, abs=0.015)


@pytest.mark.parametrize(
    ("train", "val", "test", "message"),
    [
        (0.5, 0.1, 0.1, "sum to 1"),
        (0.0, 0.5, 0.5, "train must be > 0"),
        (1.2, -0.1, -0.1, "[0, 1]"),
    ],
)
def test_fractions_are_validated(train: float, val: float, test: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SplitFractions(train, val, test)


def test_derive_seed_is_deterministic_and_distinct() -> None:
    seeds = {derive_seed(0, name, s) for name in ("gaussian_noise", "blur") for s in range(1, 6)}
    assert len(seeds) == 10
    assert derive_seed(0, "blur", 3) == derive_seed(0, "blur", 3)
    assert derive_seed(1, "blur", 3) != derive_seed(0, "blur", 3)
    assert all(0 <= s < 2**31 - 1 for s in seeds)


def test_adding_unrelated_records_moves_no_existing_image(cohort, build, split_kwargs) -> None:
    before = build_splits(**cohort, **split_kwargs())
    extra_ids = [f"new:{i:03d}" for i in range(50)]
    grown = {
        "images": pd.concat(
            [cohort["images"], build.images(extra_ids, ["a", "b"] * 25, source="src")],
            ignore_index=True,
        ),
        "pairs": pd.concat([cohort["pairs"], build.pairs(extra_ids)], ignore_index=True),
        "vqa": pd.concat(
            [
                cohort["vqa"],
                build.vqa([(f"nq{i}", extra_ids[i], "yes", "unassigned") for i in range(50)]),
            ],
            ignore_index=True,
        ),
        "classification": cohort["classification"],
    }
    after = build_splits(**grown, **split_kwargs())
    merged = before.images.merge(
        after.images, on=["protocol", "image_id"], suffixes=("_before", "_after")
    )
    assert len(merged) == len(before.images)
    assert (merged["split_before"] == merged["split_after"]).all()
    for name in ("pairs", "vqa", "classification"):
        old, new = getattr(before, name), getattr(after, name)
        key = old.columns[2]
        joined = old.merge(new, on=["protocol", key], suffixes=("_before", "_after"))
        assert len(joined) == len(old)
        assert (joined["split_before"] == joined["split_after"]).all()


def test_same_seed_gives_byte_identical_parquet(cohort, split_kwargs, tmp_path: Path) -> None:
    contents: list[dict[str, bytes]] = []
    for attempt in ("first", "second"):
        # Shuffled input rows must not change the output either.
        shuffled = {
            name: frame.sample(frac=1.0, random_state=len(attempt)).reset_index(drop=True)
            for name, frame in cohort.items()
        }
        manifests = build_splits(**shuffled, **split_kwargs())
        files: dict[str, bytes] = {}
        for name in ("images", "pairs", "vqa", "classification"):
            path = tmp_path / attempt / f"split_{name}.parquet"
            ParquetDataset(filepath=str(path), save_args={"index": False}).save(
                getattr(manifests, name)
            )
            files[name] = path.read_bytes()
        contents.append(files)
    assert contents[0] == contents[1]
    other = build_splits(**cohort, **split_kwargs(seed=1))
    first = build_splits(**cohort, **split_kwargs())
    assert not first.images.equals(other.images)
