"""SynthRad: determinism, pixels that carry the findings, text that agrees with them, sites that
differ, schema-conformant tables and config validation. Small cohorts keep the file fast."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from robust_mmr_pipeline.schema import PRIMARY_KEYS, TABLES, conform
from robust_mmr_pipeline.sources.synthrad import (
    LABELS,
    REPORT_STYLES,
    SiteConfig,
    SynthRadConfig,
    generate_studies,
    write_synthrad,
)
from robust_mmr_pipeline.sources.synthrad.acquisition import acquire
from robust_mmr_pipeline.sources.synthrad.catalog import FAMILY_FINDINGS, FINDING_NAMES
from robust_mmr_pipeline.sources.synthrad.primitives import Canvas
from robust_mmr_pipeline.sources.synthrad.text import NEGATION_CUES, finding_mentioned


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, list[dict]]:
    """200 studies at 64 px: enough for every family, finding, site and style."""
    return generate_studies(SynthRadConfig(n_studies=200, image_size=64, seed=7))


def test_same_seed_gives_identical_bytes_and_records():
    config = SynthRadConfig(n_studies=12, image_size=64, seed=3)
    a, ra = generate_studies(config)
    b, rb = generate_studies(config)
    assert a.dtype == np.uint8 and a.shape == (12, 64, 64)
    assert a.tobytes() == b.tobytes()
    assert json.dumps(ra) == json.dumps(rb)
    c, rc = generate_studies(SynthRadConfig(n_studies=12, image_size=64, seed=4))
    assert a.tobytes() != c.tobytes()
    assert [r["report"] for r in ra] != [r["report"] for r in rc]


def test_study_depends_only_on_seed_and_index():
    small_images, small = generate_studies(SynthRadConfig(n_studies=10, image_size=64, seed=5))
    big_images, big = generate_studies(SynthRadConfig(n_studies=90, image_size=64, seed=5))
    assert small_images.tobytes() == big_images[:10].tobytes()
    assert small == big[:10]
    assert [r["split"] for r in small] == [r["split"] for r in big[:10]]
    picked_images, picked = generate_studies(
        SynthRadConfig(n_studies=10, image_size=64, seed=5), indices=[70, 3]
    )
    assert picked_images[0].tobytes() == big_images[70].tobytes()
    assert picked == [big[70], big[3]]


def test_splits_are_hash_based_and_held_out_sites_are_test():
    _, records = generate_studies(SynthRadConfig(n_studies=640, image_size=32, seed=1))
    held = [r for r in records if r["held_out"]]
    kept = [r for r in records if not r["held_out"]]
    assert held and all(r["split"] == "test" for r in held)
    assert {r["site"] for r in held} == {"site_d"}
    counts = Counter(r["split"] for r in kept)
    assert abs(counts["train"] / len(kept) - 0.7) < 0.07
    assert abs(counts["val"] / len(kept) - 0.1) < 0.05
    assert abs(counts["test"] / len(kept) - 0.2) < 0.06


def test_findings_are_in_the_pixels():
    """Each finding changes its own box (against the finding-free twin) and little else."""
    config = SynthRadConfig(n_studies=192, image_size=128, seed=11, normal_fraction=0.0)
    images, records = generate_studies(config)
    twins, twin_records = generate_studies(config, render_findings=False)
    assert records == twin_records
    ghosting = {s.name for s in config.sites if "ghosting" in s.artefacts}
    seen = set()
    for img, twin, record in zip(images, twins, records, strict=True):
        diff = np.abs(img.astype(np.int16) - twin.astype(np.int16))
        outside = np.ones(diff.shape, dtype=bool)
        for finding in record["findings"]:
            x0, y0, x1, y1 = finding["bbox"]
            x0, y0, x1, y1 = int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))
            region = diff[y0:y1, x0:x1]
            assert region.size, finding
            assert region.max() >= 25, (record["image_id"], finding)
            assert region.mean() >= 3, (record["image_id"], finding)
            outside[max(y0 - 6, 0) : y1 + 6, max(x0 - 6, 0) : x1 + 6] = False
            seen.add(finding["type"])
        # MR motion ghosting legitimately repeats a finding a quarter of the image lower.
        if not (record["site"] in ghosting and record["modality"] == "mri"):
            assert diff[outside].mean() < 1.5, record["image_id"]
    assert seen == set(FINDING_NAMES)


def test_nodule_adds_a_bright_blob_and_haemorrhage_a_dense_one():
    config = SynthRadConfig(n_studies=128, image_size=128, seed=2, normal_fraction=0.0)
    images, records = generate_studies(config)
    twins, _ = generate_studies(config, render_findings=False)
    for kind in ("nodule", "haemorrhage", "kidney_stone"):
        rows = [i for i, r in enumerate(records) if r["label"] == kind and r["modality"] != "mri"]
        assert rows, kind
        for i in rows:
            x0, y0, x1, y1 = (round(v) for v in records[i]["findings"][0]["bbox"])
            gain = images[i, y0:y1, x0:x1].astype(int) - twins[i, y0:y1, x0:x1].astype(int)
            assert gain.max() >= 25, (kind, records[i]["image_id"])


def test_report_caption_and_label_agree_with_ground_truth(cohort):
    _, records = cohort
    for r in records:
        report, caption = r["report"], r["caption"]
        assert len(caption) < len(report)
        assert r["label"] in LABELS
        if r["findings"]:
            assert r["label"] == r["findings"][0]["type"]
            for f in r["findings"]:
                assert finding_mentioned(report, f["type"], negated=False), (f, report)
            assert finding_mentioned(caption, r["label"]), caption
        else:
            assert r["label"] == "normal"
            assert NEGATION_CUES.search(report), report
            family = ("chest", "head", "abdomen").index(r["family"])
            for t in FAMILY_FINDINGS[family]:
                assert not finding_mentioned(report, FINDING_NAMES[t], negated=False), report


def test_sides_and_sizes_reach_the_report(cohort):
    _, records = cohort
    side_words = {
        "right": ("right", "r", "rt"),
        "left": ("left", "l", "lt"),
        "bilateral": ("bilateral", "bilat"),
    }
    for r in records:
        for f in r["findings"]:
            words = set(re.findall(r"[a-z]+", r["report"].lower()))
            if f["side"] is not None:
                assert words & set(side_words[f["side"]]), (f, r["report"])
            size_word = "medium-sized" if f["size"] == "medium" else f["size"]
            stated = [size_word] + ([f"{round(f['size_mm'])} mm"] if f["size_mm"] else [])
            if f["type"] == "cardiomegaly":
                stated.append(f"{f['size']}ly")
            assert any(s in r["report"].lower() for s in stated), (f, r["report"])


def test_sites_write_in_their_own_style(cohort):
    _, records = cohort
    by_site = {}
    for r in records:
        by_site.setdefault(r["site"], []).append(r)
    assert set(by_site) == {"site_a", "site_b", "site_c", "site_d"}
    for rows in by_site.values():
        style = REPORT_STYLES[rows[0]["style"]]
        assert {r["style"] for r in rows} == {style.name}
        for r in rows:
            text = r["report"]
            if style.name == "structured":
                assert text.startswith("EXAMINATION:") and "\nIMPRESSION:" in text
            elif style.name == "terse":
                assert text.startswith("Findings:") and "\nImpression:" in text
            elif style.name == "narrative":
                assert "FINDINGS" not in text and "In summary, " in text
                assert "haem" not in text and "grey" not in text.lower()
            else:
                assert text == text.lower() and "imp: " in text and "\n" not in text
    lengths = {s: np.mean([len(r["report"]) for r in rows]) for s, rows in by_site.items()}
    assert lengths["site_a"] > 1.5 * lengths["site_d"]  # verbosity differs


def test_sites_differ_in_pixel_statistics():
    """One rendered batch through each site's acquisition: different noise, contrast, blur."""
    config = SynthRadConfig(n_studies=1, image_size=64)
    canvas = Canvas(64, 16)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:1:64j, -1:1:64j]
    phantom = np.where(xx**2 + yy**2 < 0.6, 0.6, 0.1) + 0.2 * (np.abs(xx) < 0.1)
    draws = rng.integers(0, 65536, size=(16, 64, 64), dtype=np.uint16)
    acq = rng.random((16, 8))
    modality = np.arange(16) % 3
    stats = {}
    for site in config.sites:
        x = canvas.take(16)
        x[:] = phantom
        out = acquire(canvas, site, x, modality, acq, draws)
        flat = out[:, 24:40, 40:52]  # a uniform part of the disc
        edge = np.abs(np.diff(out, axis=2)).max(axis=2).mean()
        stats[site.name] = (out.mean(), flat.std(axis=(1, 2)).mean(), edge)
        canvas.give(out)
    a, d = stats["site_a"], stats["site_d"]
    assert d[1] > 2 * a[1]  # noisier
    assert d[2] < a[2]  # blurrier edges
    assert abs(d[0] - a[0]) > 5  # different intensity curve
    means = sorted(s[0] for s in stats.values())
    assert min(np.diff(means)) > 0.5


def test_qa_is_normalised_and_balanced():
    _, records = generate_studies(SynthRadConfig(n_studies=400, image_size=32, seed=9))
    qa = [q for r in records for q in r["qa"]]
    assert all(q["answer"] == q["answer"].strip().lower() for q in qa)
    closed = [q["answer"] for q in qa if q["answer_type"] == "closed"]
    assert set(closed) == {"yes", "no"}
    assert 0.4 < closed.count("yes") / len(closed) < 0.6
    types = {q["question_type"] for q in qa if q["answer_type"] == "open"}
    assert {"POS", "COUNT", "SIZE", "MODALITY", "ORGAN", "ABN", "PLANE"} <= types
    for r in records:
        answers = {q["question_type"]: q["answer"] for q in r["qa"] if q["answer_type"] == "open"}
        assert answers["MODALITY"] == r["modality"] and answers["ORGAN"] == r["organ"]
        if r["findings"]:
            assert answers["ABN"] == r["label"].replace("_", " ")


def test_write_synthrad_tables_conform(tmp_path):
    config = SynthRadConfig(n_studies=24, image_size=48, seed=4)
    tables = write_synthrad(config, tmp_path)
    frames = tables.as_dict()
    for name, frame in frames.items():
        assert list(frame.columns) == TABLES[name].names
        conform(frame, name)
    for name, key in PRIMARY_KEYS.items():
        assert frames[name][key].is_unique, name
    images = frames["images"]
    assert len(images) == 24 and set(images["source"]) == {"synthrad"}
    assert images["image_id"].str.fullmatch(r"synthrad:\d{6}").all()
    assert set(images["domain"]) <= set(config.site_names)
    ids = set(images["image_id"])
    for name in ("pairs", "vqa", "classification"):
        assert set(frames[name]["image_id"]) == ids, name
    for row in images.itertuples():
        path = tmp_path / row.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (row.width, row.height) == (48, 48)
    pairs = frames["pairs"]
    assert Counter(pairs["text_kind"]) == {"report": 24, "caption": 24}
    assert set(pairs["style"]) <= set(REPORT_STYLES)
    splits = frames["vqa"].groupby("image_id")["split"].nunique()
    assert (splits == 1).all()
    cls_split = frames["classification"].set_index("image_id")["split"]
    vqa_split = frames["vqa"].drop_duplicates("image_id").set_index("image_id")["split"]
    assert (cls_split.sort_index() == vqa_split.sort_index()).all()
    assert set(frames["classification"]["label"]) <= set(LABELS)
    assert len(frames["rejects"]) == 0
    truth = (tmp_path / "ground_truth.jsonl").read_text().splitlines()
    assert [json.loads(line)["image_id"] for line in truth] == list(images["image_id"])
    saved = json.loads((tmp_path / "synthrad_config.json").read_text())
    assert SynthRadConfig.from_dict(saved) == config
    again = write_synthrad(config, tmp_path / "again")
    assert list(again.images["sha256"]) == list(images["sha256"])  # byte-identical PNGs
    renamed = write_synthrad(SynthRadConfig(n_studies=3, image_size=32), tmp_path / "b", "synth_b")
    assert set(renamed.images["source"]) == {"synth_b"}
    assert renamed.vqa["qid"].str.startswith("synth_b:").all()


def test_a_corpus_is_unlabeled_and_holds_no_held_out_site(tmp_path):
    config = SynthRadConfig(n_studies=40, image_size=32, seed=5, corpus=True)
    tables = write_synthrad(config, tmp_path, "synthrad_corpus")
    images = tables.images
    assert len(images) == 40 and images["image_id"].is_unique
    assert not set(images["domain"]) & set(config.held_out_sites)
    assert len(set(images["domain"])) == len(config.sites) - len(config.held_out_sites)
    assert tables.vqa.empty and tables.classification.empty
    assert Counter(tables.pairs["text_kind"]) == {"report": 40, "caption": 40}
    # no QA or label reaches the ground-truth file either
    truth = [
        json.loads(line) for line in (tmp_path / "ground_truth.jsonl").read_text().splitlines()
    ]
    assert len(truth) == 40 and not any("qa" in r or "label" in r for r in truth)
    # the corpus studies are the cohort's studies of the same seed at the training sites
    cohort = write_synthrad(SynthRadConfig(n_studies=60, image_size=32, seed=5), tmp_path / "c")
    kept = cohort.images[~cohort.images["domain"].isin(config.held_out_sites)]
    assert list(images["sha256"]) == list(kept["sha256"][:40])


def test_image_sizes_follow_the_config():
    for size in (32, 40, 96):
        images, _ = generate_studies(SynthRadConfig(n_studies=3, image_size=size))
        assert images.shape == (3, size, size)


def test_config_round_trip_and_mapping_sites():
    assert SynthRadConfig().held_out_sites == ["site_d"]
    custom = SynthRadConfig(sites=[SiteConfig(name="x"), SiteConfig(name="y")])
    assert custom.held_out_sites == ["y"]
    assert SynthRadConfig(held_out_sites=[]).held_out_sites == []
    config = SynthRadConfig(n_studies=5, held_out_sites=["site_b"])
    data = config.to_dict()
    assert SynthRadConfig.from_dict(json.loads(json.dumps(data))) == config
    data["sites"][0]["artefacts"] = ["marker"]
    assert SynthRadConfig.from_dict(data).sites[0].artefacts == ("marker",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_studies": 0}, "n_studies"),
        ({"n_studies": True}, "n_studies"),
        ({"image_size": 16}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"held_out_sites": ["nowhere"]}, "held_out_sites"),
        (
            {"sites": [SiteConfig(name="x"), SiteConfig(name="y")], "held_out_sites": ["site_d"]},
            "not among the sites",
        ),
        ({"held_out_sites": ["site_a", "site_b", "site_c", "site_d"]}, "at least one site"),
        ({"held_out_sites": "site_d"}, "held_out_sites = 'site_d': Input should be a valid list"),
        ({"family_weights": {"chest": 1.0, "knee": 1.0}}, "family_weights: key 'knee'"),
        ({"family_weights": {"chest": 0.0}}, "positive sum"),
        ({"normal_fraction": 1.5}, "normal_fraction"),
        ({"split_fractions": {"train": 0.8, "val": 0.1, "test": 0.2}}, "sum to 1"),
        ({"split_fractions": {"train": 0.9, "test": 0.1}}, "must give all"),
        ({"sites": [SiteConfig(name="x")]}, "at least two"),
        ({"sites": [SiteConfig(name="x"), SiteConfig(name="x")], "held_out_sites": []}, "unique"),
        ({"png_compress_level": 12}, "png_compress_level"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SynthRadConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style": "poetic"}, "style"),
        ({"noise_type": "pink"}, "noise_type"),
        ({"window": (0.8, 0.2)}, "window"),
        ({"resolution_scale": 0.0}, "resolution_scale"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"artefacts": ("lens_flare",)}, "unknown artefact"),
        ({"weight": -1.0}, "weight"),
        ({"noise_level": float("nan")}, "finite"),
    ],
)
def test_site_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SiteConfig(name="bad", **kwargs)


def test_unknown_config_keys_are_rejected():
    with pytest.raises(ValueError, match=r"unknown key 'synthrad\.colour'"):
        SynthRadConfig.from_dict({"n_studies": 3, "colour": "blue"})
    with pytest.raises(ValueError, match="indices"):
        generate_studies(SynthRadConfig(n_studies=3), indices=[-1])
