"""Clean synthetic unified tables plus image files that pass every validation check.

Used by ``benchmarks/bench_validation.py`` (100k rows, a few thousand images) and by the tests
(which break one record at a time and expect one clear failure). Everything is deterministic
for a given ``seed``: splits follow the image (no train/test leak), every val/test answer is a
train answer, every label has plenty of trainable rows, texts hold no PHI-like strings, and the
images table records the true size and hash of each file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from robust_mmr_pipeline.schema import conform, empty
from robust_mmr_pipeline.seeding import stride_seed

FINDINGS: tuple[str, ...] = ("effusion", "pneumothorax", "consolidation", "cardiomegaly")
ANSWERS: tuple[str, ...] = ("yes", "no", "left", "right", "effusion", "pneumothorax")
LABELS: tuple[str, ...] = ("normal", "effusion", "consolidation")
# image index % 10 -> split: 0-6 train, 7 val, 8-9 test
_SPLIT_OF_DECILE: tuple[str, ...] = ("train",) * 7 + ("val", "test", "test")


@dataclass(frozen=True)
class SyntheticSet:
    """The five unified tables and the image root of each source."""

    tables: dict[str, pd.DataFrame]
    roots: dict[str, str]


def write_image(path: Path, size: int, seed: int) -> None:
    """A small grey-level gradient with noise, as PNG (``L``) or JPEG (``RGB``) by suffix."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 180, size, dtype=np.float32)
    pixels = ramp[None, :] + ramp[:, None] * 0.3 + rng.normal(0, 12, (size, size))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.convert("RGB").save(path, quality=85)
    else:
        img.save(path)


def make_synthetic(
    root: Path,
    n_images: int = 30,
    n_pairs: int | None = None,
    n_vqa: int | None = None,
    n_classification: int | None = None,
    image_size: int = 48,
    source: str = "synthrad",
    seed: int = 0,
) -> SyntheticSet:
    """Write ``n_images`` images under ``root`` and return clean tables referencing them.

    Half the images are PNG, half JPEG. Row counts default to 2 pairs, 3 QA and 1 sample per
    image (classification at least 60 rows so every label has >= 5 trainable rows).
    """
    n_pairs = 2 * n_images if n_pairs is None else n_pairs
    n_vqa = 3 * n_images if n_vqa is None else n_vqa
    n_classification = max(60, n_images) if n_classification is None else n_classification
    root.mkdir(parents=True, exist_ok=True)

    index = np.arange(n_images)
    names = [f"img{i:06d}.{'png' if i % 2 == 0 else 'jpg'}" for i in index]
    hashes = []
    for i, name in enumerate(names):
        path = root / name
        write_image(path, image_size, stride_seed(seed, i, modulus=None))
        hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
    image_ids = np.array([f"{source}:img{i:06d}" for i in index], dtype=object)
    image_split = np.array([_SPLIT_OF_DECILE[i % 10] for i in index], dtype=object)
    images = pd.DataFrame(
        {
            "image_id": image_ids,
            "source": source,
            "path": names,
            "modality": "xray",
            "organ": "chest",
            "domain": np.where(index % 3 == 0, "site_a", "site_b"),
            "width": image_size,
            "height": image_size,
            "sha256": hashes,
        }
    )

    rows = np.arange(n_pairs)
    of_pair = rows % n_images
    finding = np.array(FINDINGS, dtype=object)[rows % len(FINDINGS)]
    pairs = pd.DataFrame(
        {
            "pair_id": [f"{source}:pair{i:07d}" for i in rows],
            "image_id": image_ids[of_pair],
            "text": [
                f"Frontal chest radiograph, study {i}. The heart size is normal. "
                f"Findings suggest {f}; no acute osseous abnormality."
                for i, f in zip(rows, finding, strict=True)
            ],
            "text_kind": "report",
            "style": "synthetic",
        }
    )

    rows = np.arange(n_vqa)
    of_qa = rows % n_images
    split = image_split[of_qa]
    answers = np.array(ANSWERS, dtype=object)[(rows // max(n_images, 1) + rows) % len(ANSWERS)]
    train_answers = sorted(set(answers[split == "train"])) or list(ANSWERS[:1])
    evaluated = split != "train"
    answers[evaluated] = np.array(train_answers, dtype=object)[
        np.arange(int(evaluated.sum())) % len(train_answers)
    ]
    vqa = pd.DataFrame(
        {
            "qid": [f"{source}:q{i:07d}" for i in rows],
            "image_id": image_ids[of_qa],
            "question": [f"Is there evidence of {FINDINGS[i % len(FINDINGS)]}?" for i in rows],
            "answer": answers,
            "answer_type": np.where(np.isin(answers, ("yes", "no")), "closed", "open"),
            "question_type": "presence",
            "split": split,
        }
    )

    rows = np.arange(n_classification)
    of_sample = rows % n_images
    classification = pd.DataFrame(
        {
            "sample_id": [f"{source}:s{i:07d}" for i in rows],
            "image_id": image_ids[of_sample],
            "text": [f"Chest radiograph {i} for classification." for i in rows],
            "label": np.array(LABELS, dtype=object)[rows % len(LABELS)],
            "split": image_split[of_sample],
        }
    )
    tables = {
        "images": conform(images, "images"),
        "pairs": conform(pairs, "pairs"),
        "vqa": conform(vqa, "vqa"),
        "classification": conform(classification, "classification"),
        "rejects": empty("rejects"),
    }
    return SyntheticSet(tables=tables, roots={source: str(root.resolve())})
