"""The as_released protocol: official splits exactly as published, overlap counted."""

from __future__ import annotations

import pandas as pd

from robust_mmr_pipeline.splits import build_splits, split_counts
from robust_mmr_pipeline.splits.protocols import AS_RELEASED, IN_DOMAIN, overlap_counts


def _leaky_tables(build) -> dict[str, pd.DataFrame]:
    """A VQA-RAD-like source (official train / test, no val; test questions about training
    images) with one hash-assigned image and a pair per image."""
    ids = [f"r{i}" for i in range(6)]
    images = build.images(ids, ["head", "head", "chest", "chest", "abd", "abd"], "rad")
    vqa = build.vqa(
        [
            ("q0", "r0", "yes", "train"),
            ("q1", "r0", "no", "test"),  # r0: train and test (the release's overlap)
            ("q2", "r1", "yes", "train"),
            ("q3", "r2", "no", "test"),
            ("q4", "r3", "yes", "train"),
            ("q5", "r3", "left", "train"),
            ("q6", "r3", "no", "test"),  # r3: train and test
            ("q7", "r4", "yes", "unassigned"),  # follows its image
        ]
    )
    return {
        "images": images,
        "pairs": build.pairs(ids),
        "vqa": vqa,
        "classification": build.empty("classification"),
    }


def _records(frame: pd.DataFrame, key: str) -> dict[str, str]:
    rows = frame[frame["protocol"] == AS_RELEASED]
    return dict(zip(rows[key], rows["split"], strict=True))


def test_records_keep_their_official_split_and_images_sit_in_several(build, split_kwargs):
    tables = _leaky_tables(build)
    kwargs = split_kwargs(held_out_domains=["head"], carve_val_from_train=False)
    manifests = build_splits(**tables, **kwargs, as_released=True)
    assert AS_RELEASED in manifests.protocols
    vqa = _records(manifests.vqa, "qid")
    official = dict(zip(tables["vqa"]["qid"], tables["vqa"]["split"], strict=True))
    # every official record keeps its split, every domain included (head is not held out)
    assert {q: s for q, s in vqa.items() if official[q] != "unassigned"} == {
        q: s for q, s in official.items() if s != "unassigned"
    }
    released = manifests.images[manifests.images["protocol"] == AS_RELEASED]
    splits_of = released.groupby("image_id")["split"].agg(sorted)
    assert splits_of["r0"] == ["test", "train"] and splits_of["r3"] == ["test", "train"]
    assert splits_of["r1"] == ["train"] and splits_of["r2"] == ["test"]
    # the unassigned record and the image's pair follow its primary split (hash for r4)
    assert vqa["q7"] == splits_of["r4"][0]
    pairs = _records(manifests.pairs, "pair_id")
    # pairs follow the primary split: train wins, so training statements stay in train
    assert pairs["pair-r0"] == "train" and pairs["pair-r3"] == "train"
    assert pairs["pair-r2"] == "test"
    # the image-disjoint protocol is unchanged: r0 and r3 go to test, their train rows leave
    in_domain = manifests.vqa[manifests.vqa["protocol"] == IN_DOMAIN]
    assert "q0" not in set(in_domain["qid"]) and "q4" not in set(in_domain["qid"])
    assert overlap_counts(manifests.images) == {AS_RELEASED: {"train&test": 2}}


def test_overlap_is_counted_in_the_summary(build, split_kwargs):
    tables = _leaky_tables(build)
    manifests = build_splits(
        **tables, **split_kwargs(held_out_domains=[], carve_val_from_train=False), as_released=True
    )
    summary = split_counts(
        images=tables["images"],
        vqa=tables["vqa"],
        classification=tables["classification"],
        split_images=manifests.images,
        split_pairs=manifests.pairs,
        split_vqa=manifests.vqa,
        split_classification=manifests.classification,
    )
    released = summary[summary["protocol"] == AS_RELEASED]
    per_split = released.groupby("split")[["images", "vqa", "overlap_images"]].sum()
    assert per_split.loc["test", "overlap_images"] == 2  # r0, r3 also in train
    assert per_split.loc["train", "overlap_images"] == 2
    assert per_split.loc["test", "vqa"] == 3 and per_split["vqa"].sum() == 8
    assert summary.loc[summary["protocol"] == IN_DOMAIN, "overlap_images"].sum() == 0


def test_val_carved_from_official_train_images_test_untouched(build, split_kwargs):
    ids = [f"t{i:02d}" for i in range(40)]
    images = build.images(ids, ["a", "b"] * 20, "rad")
    rows = [(f"q{i:02d}", ids[i], "yes", "train") for i in range(40)]
    rows += [(f"x{i:02d}", ids[i], "no", "test") for i in range(0, 40, 4)]
    vqa = build.vqa(rows)
    tables = {
        "images": images,
        "pairs": build.pairs(ids),
        "vqa": vqa,
        "classification": build.empty("classification"),
    }
    manifests = build_splits(**tables, **split_kwargs(held_out_domains=[]), as_released=True)
    records = _records(manifests.vqa, "qid")
    # test exactly as published
    assert sorted(q for q, s in records.items() if s == "test") == sorted(
        f"x{i:02d}" for i in range(0, 40, 4)
    )
    carved = {q for q, s in records.items() if s == "val"}
    assert carved and all(q.startswith("q") for q in carved)
    # carving is per image: an image's training records and pair all went to val together
    pairs = _records(manifests.pairs, "pair_id")
    for qid in carved:
        assert pairs[f"pair-t{qid[1:]}"] == "val"
    # and it reuses in_domain's hash: images without test questions are carved alike in both
    in_domain = manifests.images[manifests.images["protocol"] == IN_DOMAIN]
    in_domain_val = set(in_domain.loc[in_domain["split"] == "val", "image_id"])
    train_only = {f"t{q[1:]}" for q in carved if int(q[1:]) % 4}
    assert train_only and train_only <= in_domain_val


def test_not_emitted_unless_asked(cohort, split_kwargs):
    assert AS_RELEASED not in build_splits(**cohort, **split_kwargs()).protocols
    manifests = build_splits(**cohort, **split_kwargs(), as_released=True)
    assert AS_RELEASED in manifests.protocols
    # images whose records all carry one split (the cohort has no overlap) sit once
    released = manifests.images[manifests.images["protocol"] == AS_RELEASED]
    assert released["image_id"].is_unique and len(released) == 120
