"""Protocols: image-disjoint splits, held-out domains, official splits, leaks, vocabulary."""

from __future__ import annotations

from typing import Any

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
from robust_mmr_pipeline.splits.assign import SplitFractions, hash_splits, unit_hashes
from robust_mmr_pipeline.splits.protocols import PRETRAIN, assert_image_disjoint

RECORD_KEYS = {"pairs": "pair_id", "vqa": "qid", "classification": "sample_id"}
COUNT_LEAKS = ["leaked_images", "vqa_excluded", "classification_excluded"]


def _split_of(manifests: SplitManifests, protocol: str) -> pd.Series:
    frame = manifests.images[manifests.images["protocol"] == protocol]
    return frame.set_index("image_id")["split"]


def _splits_by_protocol(manifests: SplitManifests) -> dict[str, dict[str, str]]:
    """Protocol -> {image_id: split} of every image the protocol holds."""
    return {protocol: _split_of(manifests, protocol).to_dict() for protocol in manifests.protocols}


def _records_of(manifests: SplitManifests, name: str, protocol: str) -> dict[str, str]:
    """{record key: split} of one record manifest in one protocol."""
    frame = getattr(manifests, name)
    frame = frame[frame["protocol"] == protocol]
    return frame.set_index(RECORD_KEYS[name])["split"].to_dict()


def _in_domain_reference(tables: dict[str, pd.DataFrame], split_kwargs, **overrides) -> pd.Series:
    """The in-domain split of EVERY image: in_domain when nothing is held out."""
    reference = build_splits(
        **tables, **split_kwargs(held_out_domains=[], leave_one_out_all=False, **overrides)
    )
    assert reference.protocols == [IN_DOMAIN, PRETRAIN]
    splits = _split_of(reference, IN_DOMAIN)
    assert sorted(splits.index) == sorted(tables["images"]["image_id"])
    return splits


def _expected_splits(
    reference: pd.Series, images: pd.DataFrame, held_out: set[str], lodo: bool
) -> dict[str, dict[str, str]]:
    """The protocols' {image_id: split} by the protocol definitions (protocols.py docstring).

    in_domain: the reference split of every image outside ``held_out``. cross_domain (and
    lodo:<d>, holding out domain d): the held-out images -> test, plus the reference train/val
    images of the other domains with their split; reference test images are left out.
    pretrain: the reference train/val images outside ``held_out`` (no corpus source here).
    """
    train_val = reference[reference.isin(["train", "val"])]

    def leave_out(held: set[str]) -> dict[str, str]:
        kept = train_val[~train_val.index.isin(held)].to_dict()
        return {**kept, **dict.fromkeys(held, "test")}

    expected = {
        IN_DOMAIN: reference[~reference.index.isin(held_out)].to_dict(),
        PRETRAIN: train_val[~train_val.index.isin(held_out)].to_dict(),
    }
    if held_out:
        expected[CROSS_DOMAIN] = leave_out(held_out)
    if lodo:
        domain_of = images.set_index("image_id")["domain"]
        for domain in sorted(set(domain_of)):
            expected[f"lodo:{domain}"] = leave_out(set(domain_of.index[domain_of == domain]))
    return expected


def _ids_in(images: pd.DataFrame, domains: set[str]) -> set[str]:
    return set(images.loc[images["domain"].isin(domains), "image_id"])


def test_protocols_emitted(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    assert manifests.protocols == [CROSS_DOMAIN, IN_DOMAIN, "lodo:a", "lodo:b", "lodo:c", PRETRAIN]
    only_in = build_splits(**cohort, **split_kwargs(held_out_domains=[], leave_one_out_all=False))
    assert only_in.protocols == [IN_DOMAIN, PRETRAIN]


def test_no_image_in_two_splits_of_any_protocol(cohort, split_kwargs) -> None:
    manifests = build_splits(**cohort, **split_kwargs())
    images = manifests.images
    assert not images.duplicated(subset=["protocol", "image_id"]).any()
    assert set(images["split"]) <= {"train", "val", "test"}
    for name in ("pairs", "vqa", "classification"):
        records = getattr(manifests, name)
        assert not records.duplicated(subset=["protocol", RECORD_KEYS[name]]).any()
        spread = records.groupby(["protocol", "image_id"])["split"].nunique()
        assert (spread == 1).all()
        joined = records.merge(images, on=["protocol", "image_id"], suffixes=("", "_image"))
        assert len(joined) == len(records)  # no record of an image outside its protocol
        assert (joined["split"] == joined["split_image"]).all()
        assert (joined["domain"] == joined["domain_image"]).all()


def test_protocol_image_sets_follow_the_definitions(cohort, split_kwargs) -> None:
    """Per protocol, exactly the expected images in exactly the expected splits."""
    manifests = build_splits(**cohort, **split_kwargs(held_out_domains=["c"]))
    images = cohort["images"]
    reference = _in_domain_reference(cohort, split_kwargs)
    held = _ids_in(images, {"c"})
    expected = _expected_splits(reference, images, held, lodo=True)
    assert _splits_by_protocol(manifests) == expected
    # Spelled out: in_domain = the images outside the held-out domain (with their split) ...
    assert set(expected[IN_DOMAIN]) == set(images["image_id"]) - held
    assert len(expected[IN_DOMAIN]) == 80
    # ... cross_domain = the held-out images + in_domain's train/val images.
    in_domain = _split_of(manifests, IN_DOMAIN)
    assert set(expected[CROSS_DOMAIN]) == held | set(in_domain.index[in_domain != "test"])
    for domain in "abc":
        lodo = _split_of(manifests, f"lodo:{domain}")
        others = reference.drop(index=list(_ids_in(images, {domain})))
        assert set(lodo.index) == _ids_in(images, {domain}) | set(others.index[others != "test"])
    # Records: every record of an image in a protocol, at its image's split (no leaks here).
    for name, key in RECORD_KEYS.items():
        table = cohort[name]
        for protocol, splits in expected.items():
            if protocol == PRETRAIN and name != "pairs":
                assert _records_of(manifests, name, protocol) == {}  # no labels in pretrain
                continue
            held_records = table[table["image_id"].isin(splits)]
            wanted = dict(zip(held_records[key], held_records["image_id"].map(splits), strict=True))
            assert _records_of(manifests, name, protocol) == wanted, (name, protocol)


def test_cross_domain_shares_in_domain_train_val(cohort, split_kwargs) -> None:
    """One model trained on the shared train split is evaluated on both test splits."""
    manifests = build_splits(**cohort, **split_kwargs(held_out_domains=["c"]))
    images = manifests.images
    in_domain = images[images["protocol"] == IN_DOMAIN].drop(columns="protocol")
    cross = images[images["protocol"] == CROSS_DOMAIN].drop(columns="protocol")
    train_val = ["train", "val"]
    assert (
        cross[cross["split"].isin(train_val)]
        .reset_index(drop=True)
        .equals(in_domain[in_domain["split"].isin(train_val)].reset_index(drop=True))
    )
    assert {"train", "val"} <= set(cross["split"])
    # cross_domain test = exactly the held-out images; no in-domain test image is in it at all.
    held = _ids_in(cohort["images"], {"c"})
    assert set(cross.loc[cross["split"] == "test", "image_id"]) == held
    in_domain_test = set(in_domain.loc[in_domain["split"] == "test", "image_id"])
    assert in_domain_test
    assert not in_domain_test & set(cross["image_id"])
    assert not held & set(in_domain["image_id"])
    # Records too: the train/val rows of every record manifest are in_domain's.
    for name in RECORD_KEYS:
        frame = getattr(manifests, name)
        rows = {
            protocol: frame[(frame["protocol"] == protocol) & frame["split"].isin(train_val)]
            .drop(columns="protocol")
            .reset_index(drop=True)
            for protocol in (IN_DOMAIN, CROSS_DOMAIN)
        }
        assert not rows[IN_DOMAIN].empty
        assert rows[CROSS_DOMAIN].equals(rows[IN_DOMAIN]), name
    vocabulary = answer_vocabulary(manifests.vqa, manifests.protocols)
    assert vocabulary[CROSS_DOMAIN] == vocabulary[IN_DOMAIN]
    assert vocabulary[IN_DOMAIN]


def test_lodo_of_the_held_out_domain_equals_cross_domain(cohort, split_kwargs) -> None:
    """lodo:<d> does not depend on held_out_domains; lodo:c is cross_domain when c is held out."""
    manifests = build_splits(**cohort, **split_kwargs(held_out_domains=["c"]))
    for name in ("images", *RECORD_KEYS):
        frame = getattr(manifests, name)
        lodo_c = frame[frame["protocol"] == "lodo:c"].drop(columns="protocol")
        cross = frame[frame["protocol"] == CROSS_DOMAIN].drop(columns="protocol")
        assert lodo_c.reset_index(drop=True).equals(cross.reset_index(drop=True)), name
    nothing_held = build_splits(**cohort, **split_kwargs(held_out_domains=[]))
    assert nothing_held.protocols == [IN_DOMAIN, "lodo:a", "lodo:b", "lodo:c", PRETRAIN]
    for name in ("images", *RECORD_KEYS):
        with_held, without = (
            getattr(m, name).pipe(lambda f: f[f["protocol"].str.startswith("lodo:")])
            for m in (manifests, nothing_held)
        )
        assert with_held.reset_index(drop=True).equals(without.reset_index(drop=True)), name
    # Nothing held out: in_domain is every image.
    assert len(_split_of(nothing_held, IN_DOMAIN)) == len(cohort["images"])


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
    for name in ("images", *RECORD_KEYS):
        frame = getattr(manifests, name)
        assert set(frame.loc[frame["protocol"] == IN_DOMAIN, "domain"]) == {"a", "b"}, name


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
    held = set(images.loc[(images["source"] == "s1") & (images["domain"] == "d1"), "image_id"])
    assert set(cross[cross == "test"].index) == held
    expected = _expected_splits(_in_domain_reference(tables, split_kwargs), images, held, True)
    assert _splits_by_protocol(manifests) == expected

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
    images = cohort["images"]
    held = _ids_in(images, {"c"})
    assert set(in_domain.index) == set(images["image_id"]) - held
    official = cohort["vqa"].set_index("image_id")["split"]
    official = official[official != "unassigned"]
    kept_images = official[~official.index.isin(held)]
    assert 0 < len(kept_images) < len(official)
    assert in_domain[kept_images.index].to_dict() == kept_images.to_dict()
    # Records follow: every official vqa record of an in-domain image keeps its split there,
    # unassigned ones take their image's; records of held-out images are not in in_domain.
    vqa = cohort["vqa"][~cohort["vqa"]["image_id"].isin(held)]
    wanted = dict(
        zip(
            vqa["qid"],
            vqa["split"].where(vqa["split"] != "unassigned", vqa["image_id"].map(in_domain)),
            strict=True,
        )
    )
    assert _records_of(manifests, "vqa", IN_DOMAIN) == wanted
    # Unassigned and record-less images are hash-assigned to all three splits.
    rest = in_domain.drop(index=kept_images.index)
    assert set(rest) == {"train", "val", "test"}
    # Held-out images go to cross_domain test (official train/val ones too: see the leak test).
    cross = _split_of(manifests, CROSS_DOMAIN)
    assert set(cross[sorted(held)]) == {"test"}
    # With nothing held out, every image with an official split keeps it.
    reference = _in_domain_reference(cohort, split_kwargs, carve_val_from_train=False)
    assert reference[official.index].to_dict() == official.to_dict()

    ignored = build_splits(**cohort, **split_kwargs(respect_official_splits=False))
    ignored_in = _split_of(ignored, IN_DOMAIN)
    assert set(ignored_in.index) == set(images["image_id"]) - held
    by_hash = hash_splits(unit_hashes(0, ignored_in.index), SplitFractions(0.8, 0.1, 0.1))
    assert ignored_in.tolist() == by_hash.tolist()
    assert not (ignored_in[kept_images.index] == kept_images).all()


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
    carved = _in_domain_reference(tables, split_kwargs)  # nothing held out: every image
    assert set(carved[ids[150:]]) == {"test"}
    assert set(carved[ids[:150]]) == {"train", "val"}
    assert 5 <= (carved[ids[:150]] == "val").sum() <= 35
    plain = _in_domain_reference(tables, split_kwargs, carve_val_from_train=False)
    assert set(plain[ids[:150]]) == {"train"}
    assert set(plain[ids[150:]]) == {"test"}
    # Holding out b leaves the carving of a's images unchanged and shares it with cross_domain.
    manifests = build_splits(**tables, **split_kwargs(held_out_domains=["b"]))
    in_domain = _split_of(manifests, IN_DOMAIN)
    a_ids = ids[0::2]
    assert in_domain.to_dict() == carved[a_ids].to_dict()
    assert (in_domain == "val").sum() > 0
    cross = _split_of(manifests, CROSS_DOMAIN)
    assert cross.to_dict() == {
        **in_domain[in_domain != "test"].to_dict(),
        **dict.fromkeys(ids[1::2], "test"),
    }


def test_official_leak_resolved_and_counted(build, split_kwargs) -> None:
    ids = [f"l{i}" for i in range(7)]
    images = build.images(ids, ["a", "a", "a", "b", "b", "b", "a"])
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
            ("q9", "l6", "yes", "val"),
            ("q10", "l6", "no", "train"),  # l6: val/train leak -> val, q10 excluded
        ]
    )
    classification = build.classification([("c0", "l0", "pos", "train")])
    tables = {
        "images": images,
        "pairs": build.pairs(ids),
        "vqa": vqa,
        "classification": classification,
    }
    # The in-domain split of every image: leaks resolve to the latest official split.
    reference = _in_domain_reference(tables, split_kwargs)
    assert reference.to_dict() == {
        "l0": "test",
        "l1": "train",
        "l2": "val",
        "l3": "test",
        "l4": "val",
        "l5": "train",
        "l6": "val",
    }
    manifests = build_splits(**tables, **split_kwargs(held_out_domains=["b"]))
    assert _splits_by_protocol(manifests) == {
        IN_DOMAIN: {"l0": "test", "l1": "train", "l2": "val", "l6": "val"},
        # b held out -> test; in-domain test image l0 left out.
        CROSS_DOMAIN: {"l1": "train", "l2": "val", "l6": "val"}
        | dict.fromkeys(["l3", "l4", "l5"], "test"),
        "lodo:a": dict.fromkeys(["l0", "l1", "l2", "l6"], "test") | {"l4": "val", "l5": "train"},
        "lodo:b": {"l1": "train", "l2": "val", "l6": "val"}
        | dict.fromkeys(["l3", "l4", "l5"], "test"),
        PRETRAIN: {"l1": "train", "l2": "val", "l6": "val"},
    }
    # in_domain: the records of the other official split are excluded (q0, q10, c0).
    assert _records_of(manifests, "vqa", IN_DOMAIN) == {
        "q1": "test",
        "q2": "test",
        "q3": "train",
        "q4": "val",
        "q9": "val",
    }
    assert _records_of(manifests, "classification", IN_DOMAIN) == {}
    # cross_domain: its train/val images carry their in-domain split, so the same records are
    # excluded there (q10), and its train/val records equal in_domain's. Held-out test images
    # ignore official splits: every record of l3/l4/l5 is kept (q7 included).
    cross = {"q3": "train", "q4": "val", "q9": "val"} | dict.fromkeys(
        ["q5", "q6", "q7", "q8"], "test"
    )
    assert _records_of(manifests, "vqa", CROSS_DOMAIN) == cross
    assert _records_of(manifests, "vqa", "lodo:b") == cross
    assert _records_of(manifests, "classification", CROSS_DOMAIN) == {}
    # lodo:a: a held out (every record kept, q0/q10/c0 included); b's val image l4 loses q7.
    assert _records_of(manifests, "vqa", "lodo:a") == dict.fromkeys(
        ["q0", "q1", "q2", "q3", "q4", "q9", "q10"], "test"
    ) | {"q6": "val", "q8": "train"}
    assert _records_of(manifests, "classification", "lodo:a") == {"c0": "test"}

    summary = split_counts(
        images=images,
        vqa=vqa,
        classification=classification,
        split_images=manifests.images,
        split_pairs=manifests.pairs,
        split_vqa=manifests.vqa,
        split_classification=manifests.classification,
    )
    leaks = summary.set_index(["protocol", "split", "domain"])[COUNT_LEAKS]
    nonzero = {
        (*index, column): int(value)
        for index, row in leaks.iterrows()
        for column, value in row.items()
        if value
    }
    assert nonzero == {
        (IN_DOMAIN, "test", "a", "leaked_images"): 1,  # l0
        (IN_DOMAIN, "val", "a", "leaked_images"): 1,  # l6
        (IN_DOMAIN, "train", "a", "vqa_excluded"): 2,  # q0, q10 (at their official split)
        (IN_DOMAIN, "train", "a", "classification_excluded"): 1,  # c0
        (CROSS_DOMAIN, "val", "a", "leaked_images"): 1,  # l6
        (CROSS_DOMAIN, "train", "a", "vqa_excluded"): 1,  # q10
        ("lodo:b", "val", "a", "leaked_images"): 1,
        ("lodo:b", "train", "a", "vqa_excluded"): 1,
        ("lodo:a", "val", "b", "leaked_images"): 1,  # l4
        ("lodo:a", "train", "b", "vqa_excluded"): 1,  # q7
    }


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
    assert vocabulary == {IN_DOMAIN: ["no", "yes", "left"], PRETRAIN: []}
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


def _with_corpus(cohort: dict[str, pd.DataFrame], build: Any) -> dict[str, pd.DataFrame]:
    """The cohort plus an unlabeled corpus source of 30 images (domains a/b/c, pairs only)."""
    ids = [f"corpus:{i:03d}" for i in range(30)]
    images = build.images(ids, ["a", "b", "c"] * 10, source="corpus")
    return {
        **cohort,
        "images": pd.concat([cohort["images"], images], ignore_index=True),
        "pairs": pd.concat([cohort["pairs"], build.pairs(ids)], ignore_index=True),
    }


def test_pretrain_protocol_holds_training_images_and_the_corpus_only(
    cohort, split_kwargs, build
) -> None:
    tables = _with_corpus(cohort, build)
    manifests = build_splits(**tables, **split_kwargs(corpus_sources=["corpus"]))
    splits = _splits_by_protocol(manifests)
    pretrain, in_domain = splits[PRETRAIN], splits[IN_DOMAIN]
    corpus = {i for i in tables["images"]["image_id"] if i.startswith("corpus:")}
    held_out = set(tables["images"].loc[tables["images"]["domain"] == "c", "image_id"])
    # the corpus (minus the held-out domain) is pre-training's train split ...
    assert {i for i, s in pretrain.items() if i in corpus} == corpus - held_out
    assert all(pretrain[i] == "train" for i in corpus - held_out)
    # ... the labeled images keep their in-domain train / val split; test never enters
    labeled = {i: s for i, s in pretrain.items() if i not in corpus}
    assert labeled == {i: s for i, s in in_domain.items() if s in ("train", "val")}
    assert not set(pretrain) & held_out
    # no task protocol holds a corpus image, and the pretrain protocol holds no task record
    for protocol, images in splits.items():
        if protocol != PRETRAIN:
            assert not set(images) & corpus, protocol
    assert PRETRAIN not in set(manifests.vqa["protocol"]) | set(
        manifests.classification["protocol"]
    )
    assert set(manifests.pairs.loc[manifests.pairs["protocol"] == PRETRAIN, "image_id"]) == set(
        pretrain
    )


def test_a_corpus_source_with_labels_is_refused(cohort, split_kwargs) -> None:
    with pytest.raises(SplitError, match="pre-training corpus"):
        build_splits(**cohort, **split_kwargs(corpus_sources=["src"]))
