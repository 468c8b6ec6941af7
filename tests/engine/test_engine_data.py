"""Image cache (decode once, rebuild on change), pair dataset, collation and sharding."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from engine_test_support import make_tokenizer
from PIL import Image

from robust_mmr_pipeline.engine import (
    GlobalBatchSampler,
    ImageCache,
    PairCollator,
    PairDataset,
    load_image,
)


def _write_images(folder: Path) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    specs = {
        "a": (np.full((10, 20), 255, np.uint8), "a.png"),  # wide, white
        "b": (rng.integers(0, 255, (16, 12, 3), dtype=np.uint8), "b.jpg"),
        "c": (rng.integers(0, 255, (12, 12), dtype=np.uint8), "c.png"),
        "d": (np.linspace(0, 4000, 144).reshape(12, 12).astype(np.uint16), "d.png"),  # 16-bit
    }
    for image_id, (array, name) in specs.items():
        Image.fromarray(array).save(folder / name)
        rows.append({"image_id": image_id, "path": name, "domain": "site1"})
    return pd.DataFrame(rows)


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = Image.open

    def counting(fp, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(str(fp))
        return original(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting)
    return calls


def test_cache_is_built_once_and_rebuilt_when_an_image_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _write_images(tmp_path / "img")
    opens = _count_opens(monkeypatch)
    cache = ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    assert len(opens) == 4 and cache.stats.decoded == 4
    assert cache.array.shape == (4, 8, 8) and cache.array.dtype == np.uint8
    data_file = cache.data_path
    mtime = data_file.stat().st_mtime_ns

    opens.clear()
    again = ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    assert opens == [] and again.stats.decoded == 0 and not again.stats.written
    assert again.data_path == data_file and data_file.stat().st_mtime_ns == mtime
    assert np.array_equal(again.array, cache.array)

    # Change one image's content: only that image is decoded again.
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "img" / "c.png")
    rebuilt = ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    assert [Path(p).name for p in opens] == ["c.png"]
    assert rebuilt.stats.decoded == 1 and rebuilt.stats.reused == 3
    assert int(rebuilt.get("c").max()) == 0
    assert np.array_equal(rebuilt.get("a"), cache.get("a"))
    assert not data_file.exists()  # old data file replaced
    entry = rebuilt.meta["entries"]["c"]
    assert entry["sha256"] == hashlib.sha256((tmp_path / "img" / "c.png").read_bytes()).hexdigest()

    # Other settings invalidate everything.
    opens.clear()
    ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=6)
    assert len(opens) == 4


def test_manifest_sha_column_drives_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _write_images(tmp_path / "img")
    images["sha256"] = ["s-a", "s-b", "s-c", "s-d"]
    ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    opens = _count_opens(monkeypatch)
    images.loc[images.image_id == "b", "sha256"] = "s-b2"
    cache = ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    assert [Path(p).name for p in opens] == ["b.jpg"] and cache.stats.reused == 3


def test_resize_modes_and_sixteen_bit_images(tmp_path: Path) -> None:
    images = _write_images(tmp_path / "img")
    folder = tmp_path / "img"
    padded = load_image(folder / "a.png", 8, resize_mode="pad")
    assert padded[0].max() == 0 and padded[-1].max() == 0 and padded[4].min() == 255
    assert load_image(folder / "a.png", 8, resize_mode="crop").min() == 255
    assert load_image(folder / "a.png", 8, resize_mode="stretch").min() == 255
    sixteen = load_image(folder / "d.png", 12, resize_mode="stretch")
    assert sixteen.min() == 0 and sixteen.max() == 255  # scaled, not clipped to white
    rgb = load_image(folder / "b.jpg", 8, channels=3)
    assert rgb.shape == (8, 8, 3)
    cache = ImageCache.build(
        images, tmp_path / "rgb", root=folder, image_size=8, channels=3, resize_mode="crop"
    )
    assert cache.array.shape == (4, 8, 8, 3)
    assert cache.tensor("b").shape == (3, 8, 8)


def test_pool_build_matches_serial_build(tmp_path: Path) -> None:
    images = _write_images(tmp_path / "img")
    serial = ImageCache.build(images, tmp_path / "serial", root=tmp_path / "img", image_size=8)
    pooled = ImageCache.build(
        images, tmp_path / "pooled", root=tmp_path / "img", image_size=8, workers=2
    )
    assert np.array_equal(serial.array, pooled.array)
    assert ImageCache(tmp_path / "pooled").image_ids == ["a", "b", "c", "d"]


def test_pair_dataset_and_collate(tmp_path: Path) -> None:
    images = _write_images(tmp_path / "img")
    cache = ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    pairs = pd.DataFrame(
        {
            "image_id": ["a", "c", "d"],
            "text": ["no acute findings", "left lung opacity", "normal chest ct unknownword"],
            "domain": ["site2", "site1", "site2"],
            "label": [1, 0, 1],
        }
    )
    dataset = PairDataset(pairs, cache, extra_columns=("label",))
    assert dataset.domains == {"site1": 0, "site2": 1}
    item = dataset[1]
    assert item["pixel_values"].dtype == torch.uint8 and item["pixel_values"].shape == (1, 8, 8)
    collate = PairCollator(make_tokenizer(), max_length=6)
    batch = collate([dataset[i] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 1, 8, 8)
    assert batch["pixel_values"].dtype == torch.float32
    assert float(batch["pixel_values"].min()) >= 0.0 and float(batch["pixel_values"].max()) <= 1.0
    assert batch["input_ids"].shape == (3, 6) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 1, 1, 0]
    assert batch["special_tokens_mask"][0].tolist() == [1, 0, 0, 0, 1, 1]
    assert batch["domain_ids"].tolist() == [1, 0, 1]
    assert batch["label"].tolist() == [1, 0, 1] and batch["label"].dtype == torch.long
    longest = PairCollator(make_tokenizer(), max_length=64, padding="longest")
    assert longest([dataset[0]])["input_ids"].shape == (1, 5)

    held_out = PairDataset(pairs, cache, domains={"site1": 0})
    assert held_out.domain_ids == [-1, 0, -1]
    with pytest.raises(KeyError, match="not in the image cache"):
        PairDataset(pd.DataFrame({"image_id": ["zz"], "text": ["x"]}), cache)


def test_collator_aligns_degraded_tokens_with_the_clean_ones(tmp_path: Path) -> None:
    images = _write_images(tmp_path / "img")
    cache = ImageCache.build(images, tmp_path / "cache", root=tmp_path / "img", image_size=8)
    shifted = {
        # "acute" substituted (predicts "acute"), "left" deleted
        "no acute findings left lung opacity": "no normal findings lung opacity",
        "left lung opacity": "left chest ct lung opacity",  # two tokens inserted
        "no acute findings opacity": "mri opacity",  # three tokens re-written as one
        "normal chest ct": "left lung ct",  # two for two: no word-to-word correspondence
    }
    pairs = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "text": list(shifted)})
    dataset = PairDataset(pairs, cache)
    tokenizer = make_tokenizer()
    collate = PairCollator(
        tokenizer,
        max_length=10,
        text_degrader=lambda texts: ([shifted[t] for t in texts], [3] * len(texts)),
    )
    batch = collate([dataset[i] for i in range(4)])
    vocab = tokenizer.get_vocab()

    def ids(*words: str | None) -> list[int]:  # None: no target
        return [-100 if w is None else vocab[w] for w in words]

    targets = batch["degraded_clean_targets"]
    assert targets.shape == batch["degraded_input_ids"].shape == (4, 10)
    assert targets.dtype == torch.long
    tail = [None] * 4  # [SEP] [PAD]…
    assert targets[0].tolist() == ids(None, "no", "acute", "findings", "lung", "opacity", *tail)
    assert targets[1].tolist() == ids(None, "left", None, None, "lung", "opacity", *tail)
    assert targets[2].tolist() == ids(None, None, "opacity", *[None] * 7)
    assert targets[3].tolist() == ids(None, None, None, "ct", *[None] * 6)
    assert batch["degraded_severity"].tolist() == [3, 3, 3, 3]


def test_global_batches_are_identical_for_any_process_count() -> None:
    single = GlobalBatchSampler(22, 8, seed=3)
    ranks = [GlobalBatchSampler(22, 8, seed=3, rank=r, world_size=2) for r in range(2)]
    for epoch in (0, 1):
        single.set_position(epoch)
        for sampler in ranks:
            sampler.set_position(epoch)
        merged = [a + b for a, b in zip(*[list(s) for s in ranks], strict=True)]
        assert merged == list(single)
        assert len(merged) == 2  # 22 // 8, the incomplete batch is dropped
    assert single.permutation(0).tolist() != single.permutation(1).tolist()
    single.set_position(1, start_batch=1)
    assert list(single) == [single.global_batch(1, 1)]
    with pytest.raises(ValueError, match="divisible"):
        GlobalBatchSampler(22, 7, world_size=2)
