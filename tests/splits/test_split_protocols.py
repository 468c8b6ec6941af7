"""Protocols: image-disjoint splits, held-out domains, official splits, leaks, vocabulary."""

from __future__ import annotations

import pandas as pd
import pytest

from robust_mmr_pipeline.splits import (
    CROSS_DOMAIN,
    IN_DOMAIN,
    ManifestError,
    SplitError,
    SplitManifests,
    answer_vocabulary,
    build_splits,
    check_validation_summary,
    split_counts,
)
from robust_mmr_pipeline.splits.protocols import assert_image_disjoint


def _split_of(manifests: SplitManifests, protocol: str) -> pd.Series:
    frame = manifests.images[manifests.images["protocol"] == protocol]
    return frame.set_index("image_id")["split"]


def test_protocols_emitted(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    assert manifests.protocols == [CROSS_DOMAIN, IN_DOMAIN, "lodo:a", "lodo:b", "lodo:c"]
    only_in = build_splits(**cohort, **split_kwargs(held_out_domains=[], leave_one_out_all=False))
    assert only_in.protocols == [IN_DOMAIN]


def test_no_image_in_two_splits_of_any_protocol(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    images = manifests.images
    assert not images.duplicated(subset=["protocol", "image_id"]).any()
    assert (images.groupby("protocol").size() == len(cohort["images"])).all()
    for name in ("pairs", "vqa", "classification"):
        records = getattr(manifests, name)
        spread = records.groupby(["protocol", "image_id"])["split"].nunique()
        assert (spread == 1).all()
        joined = records.merge(images, on=["protocol", "image_id"], suffixes=("", "_image"))
        assert (joined["split"] == joined["split_image"]).all()
        assert (joined["domain"] == joined["domain_image"]).all()


def test_disjointness_check_rejects_a_record_outside_its_image_split(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    vqa = manifests.vqa.copy()
    vqa.loc[0, "split"] = "val" if vqa.loc[0, "split"] != "val" else "train"
    with pytest.raises(ManifestError, match="split_vqa"):
        assert_image_disjoint(
            SplitManifests(manifests.images, manifests.pairs, vqa, manifests.classification)
        )
    twice = pd.concat([manifests.images, manifests.images.head(1)], ignore_index=True)
    twice.loc[len(twice) - 1, "split"] = "val" if twice.loc[0, "split"] != "val" else "test"
    with pytest.raises(ManifestError, match="two splits"):
        assert_image_disjoint(
            SplitManifests(twice, manifests.pairs, manifests.vqa, manifests.classification)
        )


def test_held_out_domain_only_in_cross_domain_test(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs(held_out_domains=["c"]))
    images = manifests.images
    for protocol, held in [(CROSS_DOMAIN, "c"), ("lodo:a", "a"), ("lodo:b", "b")]:
        rows = images[images["protocol"] == protocol]
        assert set(rows.loc[rows["split"] == "test", "domain"]) == {held}
        assert held not in set(rows.loc[rows["split"] != "test", "domain"])
        assert set(rows.loc[rows["split"] != "test", "split"]) == {"train", "val"}
    cross_vqa = manifests.vqa[manifests.vqa["protocol"] == CROSS_DOMAIN]
    assert set(cross_vqa.loc[cross_vqa["split"] == "test", "domain"]) == {"c"}


def test_held_out_mapping_per_source(build, split_kwargs) -> None:
    ids = [f"x{i}" for i in range(12)]
    images = build.images(ids, ["d1", "d2", "d1", "d2"] * 3, source=["s1"] * 6 + ["s2"] * 6)
    tables = {
        "images": images,
        "pairs": build.pairs(ids),
        "vqa": build.empty("vqa"),
        "classification": build.empty("classification"),
    }
    kwargs = split_kwargs(held_out_domains={"s1": ["d1"], "absent_source": ["zz"], "s2": []})
    manifests = build_splits(**tables, **kwargs)
    cross = _split_of(manifests, CROSS_DOMAIN)
    held = images.loc[(images["source"] == "s1") & (images["domain"] == "d1"), "image_id"]
    assert set(cross[cross == "test"].index) == set(held)

    with pytest.raises(SplitError, match=r"names domain\(s\) \['d9'\]"):
        build_splits(**tables, **split_kwargs(held_out_domains={"s1": ["d9"]}))
    with pytest.raises(SplitError, match="names no source present"):
        build_splits(**tables, **split_kwargs(held_out_domains={"other": ["d1"]}))
    with pytest.raises(SplitError, match="no image has"):
        build_splits(**tables, **split_kwargs(held_out_domains=["d9"]))
    with pytest.raises(SplitError, match="holds out every image"):
        build_splits(**tables, **split_kwargs(held_out_domains=["d1", "d2"]))


def test_official_splits_respected_in_domain(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs(carve_val_from_train=False))
    in_domain = _split_of(manifests, IN_DOMAIN)
    official = cohort["vqa"].set_index("image_id")["split"]
    official = official[official != "unassigned"]
    assert (in_domain[official.index] == official).all()
    # Records follow: every official vqa record keeps its split in in_domain.
    vqa = manifests.vqa[manifests.vqa["protocol"] == IN_DOMAIN].set_index("qid")["split"]
    recorded = cohort["vqa"].set_index("qid")["split"]
    kept = recorded[recorded != "unassigned"]
    assert (vqa[kept.index] == kept).all()
    # Unassigned and record-less images are hash-assigned to all three splits.
    rest = in_domain.drop(index=official.index)
    assert set(rest) == {"train", "val", "test"}

    ignored = build_splits(**cohort, **split_kwargs(respect_official_splits=False))
    assert not (_split_of(ignored, IN_DOMAIN)[official.index] == official).all()


def test_val_carved_from_train_when_source_has_no_val(build, split_kwargs) -> None:
    ids = [f"v{i:03d}" for i in range(200)]
    images = build.images(ids, ["a", "b"] * 100)
    vqa = build.vqa([(f"q{i}", ids[i], "yes", "train" if i < 150 else "test") for i in range(200)])
    tables = {
        "images": images,
        "pairs": build.empty("pairs"),
        "vqa": vqa,
        "classification": build.empty("classification"),
    }
    carved = _split_of(build_splits(**tables, **split_kwargs(held_out_domains=["b"])), IN_DOMAIN)
    assert set(carved[ids[150:]]) == {"test"}
    assert set(carved[ids[:150]]) == {"train", "val"}
    assert 5 <= (carved[ids[:150]] == "val").sum() <= 35
    plain = _split_of(
        build_splits(**tables, **split_kwargs(held_out_domains=["b"], carve_val_from_train=False)),
        IN_DOMAIN,
    )
    assert set(plain[ids[:150]]) == {"train"}


def test_official_leak_resolved_and_counted(build, split_kwargs) -> None:
    ids = [f"l{i}" for i in range(6)]
    images = build.images(ids, ["a", "a", "a", "b", "b", "b"])
    vqa = build.vqa(
        [
            ("q0", "l0", "yes", "train"),
            ("q1", "l0", "no", "test"),  # l0: a train/test leak -> test, q0 excluded
            ("q2", "l0", "no", "unassigned"),  # follows l0 to test
            ("q3", "l1", "yes", "train"),
            ("q4", "l2", "yes", "val"),
            ("q5", "l3", "yes", "test"),
            ("q6", "l4", "yes", "val"),
            ("q7", "l4", "yes", "train"),  # l4: val/train leak -> val, q7 excluded
            ("q8", "l5", "yes", "train"),
        ]
    )
    classification = build.classification([("c0", "l0", "pos", "train")])
    tables = {
        "images": images,
        "pairs": build.pairs(ids),
        "vqa": vqa,
        "classification": classification,
    }
    manifests = build_splits(**tables, **split_kwargs(held_out_domains=["b"]))
    in_domain = _split_of(manifests, IN_DOMAIN)
    assert in_domain["l0"] == "test"
    assert in_domain["l4"] == "val"
    in_vqa = manifests.vqa[manifests.vqa["protocol"] == IN_DOMAIN].set_index("qid")["split"]
    assert "q0" not in in_vqa.index and "q7" not in in_vqa.index
    assert in_vqa["q1"] == "test" and in_vqa["q2"] == "test"
    in_cls = manifests.classification[manifests.classification["protocol"] == IN_DOMAIN]
    assert in_cls.empty
    # Cross-domain protocols ignore official splits: nothing is excluded there.
    cross_vqa = manifests.vqa[manifests.vqa["protocol"] == CROSS_DOMAIN]
    assert set(cross_vqa["qid"]) == set(vqa["qid"])

    summary = split_counts(
        images=images,
        vqa=vqa,
        classification=classification,
        split_images=manifests.images,
        split_pairs=manifests.pairs,
        split_vqa=manifests.vqa,
        split_classification=manifests.classification,
    )
    rows = summary[summary["protocol"] == IN_DOMAIN].set_index(["split", "domain"])
    assert rows.loc[("test", "a"), "leaked_images"] == 1
    assert rows.loc[("val", "b"), "leaked_images"] == 1
    assert rows.loc[("train", "a"), "vqa_excluded"] == 1
    assert rows.loc[("train", "b"), "vqa_excluded"] == 1
    assert rows.loc[("train", "a"), "classification_excluded"] == 1
    assert summary.loc[summary["protocol"] != IN_DOMAIN, COUNT_LEAKS].to_numpy().sum() == 0


COUNT_LEAKS = ["leaked_images", "vqa_excluded", "classification_excluded"]


def test_answer_vocabulary_from_train_rows_only(build, split_kwargs) -> None:
    ids = [f"w{i}" for i in range(5)]
    images = build.images(ids, ["a"] * 5)
    vqa = build.vqa(
        [
            ("q0", "w0", "yes", "train"),
            ("q1", "w1", "no", "train"),
            ("q2", "w1", "yes", "train"),
            ("q3", "w2", "left", "train"),
            ("q4", "w2", "no", "train"),
            ("q5", "w3", "only-in-val", "val"),
            ("q6", "w4", "only-in-test", "test"),
        ]
    )
    tables = {
        "images": images,
        "pairs": build.empty("pairs"),
        "vqa": vqa,
        "classification": build.empty("classification"),
    }
    manifests = build_splits(
        **tables, **split_kwargs(held_out_domains=[], carve_val_from_train=False)
    )
    vocabulary = answer_vocabulary(manifests.vqa, manifests.protocols)
    assert vocabulary == {IN_DOMAIN: ["no", "yes", "left"]}
    assert answer_vocabulary(manifests.vqa.iloc[0:0], ["p"]) == {"p": []}


def test_bad_inputs_are_refused(cohort, build, split_kwargs) -> None:
    orphan = pd.concat(
        [cohort["vqa"], build.vqa([("qx", "missing:1", "yes", "train")])], ignore_index=True
    )
    with pytest.raises(SplitError, match="missing from the images table"):
        build_splits(**{**cohort, "vqa": orphan}, **split_kwargs())
    duplicated = pd.concat([cohort["images"], cohort["images"].head(1)], ignore_index=True)
    with pytest.raises(SplitError, match="more than once"):
        build_splits(**{**cohort, "images": duplicated}, **split_kwargs())
    with pytest.raises(SplitError, match="empty"):
        build_splits(**{**cohort, "images": cohort["images"].iloc[0:0]}, **split_kwargs())


@pytest.mark.parametrize("summary", [{"success": False}, {"checks": []}, None])
def test_validation_gate_refuses(summary) -> None:
    with pytest.raises(SplitError, match="validation"):
        check_validation_summary(summary)


def test_validation_gate_passes_on_success() -> None:
    check_validation_summary({"success": True, "results": {}})
