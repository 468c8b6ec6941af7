"""Tiny backbones, a tokenizer, an image cache and task rows for the task tests (fast on 2 cores).

The learnable toy task: 16 x 16 grayscale images whose LEFT or RIGHT half is bright (plus
noise). VQA rows ask "is the left side bright" (closed yes / no) and "which side is bright"
(open left / right); classification rows label the bright side from the image and a caption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from robust_mmr_pipeline.engine import ImageCache
from robust_mmr_pipeline.model import ModelConfig, apply_preset
from robust_mmr_pipeline.model.presets import deep_merge
from robust_mmr_pipeline.model.tokenizer import train_tokenizer

IMAGE_SIZE = 16
MAX_LENGTH = 12

TINY: dict[str, Any] = {
    "vision": {"image_size": IMAGE_SIZE, "patch_size": 4, "embed_dim": 32, "depth": 1,
               "num_heads": 2},
    "text": {"vocab_size": 64, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
             "intermediate_size": 64, "max_length": MAX_LENGTH},
    "fusion": {"hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "decoder": {"hidden_size": 16, "depth": 1, "num_heads": 2},
    "memory": {"num_slots": 16, "top_k": 4, "num_heads": 2},
    "objectives": {"contrastive_dim": 16},
    "robust": {"predictor_hidden": 32},
}  # fmt: skip

CORPUS = [
    "is the left side bright",
    "which side is bright",
    "the left half of the image is bright",
    "the right half of the image is bright",
    "bright region on the left",
    "bright region on the right",
    "left right yes no image scan",
] * 4


def tiny_config(
    preset: str = "mmr", overrides: dict[str, Any] | None = None, vocab_size: int = 64
) -> ModelConfig:
    """A preset at test size (vocabulary sized for :func:`tiny_tokenizer`)."""
    base = deep_merge(TINY, {"text": {"vocab_size": vocab_size}})
    return apply_preset(preset, deep_merge(base, overrides or {}))


def tiny_tokenizer() -> Any:
    """A WordPiece tokenizer trained on :data:`CORPUS` (special ids as TextConfig)."""
    return train_tokenizer(CORPUS, vocab_size=120, min_frequency=1, max_length=MAX_LENGTH)


def side_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[n, 16, 16]`` images and bool ``[n]`` (True = left half bright)."""
    rng = np.random.default_rng(seed)
    left = np.arange(n) % 2 == 0
    images = rng.normal(60, 15, size=(n, IMAGE_SIZE, IMAGE_SIZE))
    half = IMAGE_SIZE // 2
    images[left, :, :half] += 140
    images[~left, :, half:] += 140
    return np.clip(images, 0, 255).astype(np.uint8), left


def build_cache(root: Path, n: int, seed: int = 0) -> tuple[ImageCache, np.ndarray, list[str]]:
    """PNG files + an image cache of :func:`side_images`; returns (cache, left, image_ids)."""
    images, left = side_images(n, seed)
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    ids = [f"img-{i:03d}" for i in range(n)]
    for image_id, pixels in zip(ids, images, strict=True):
        Image.fromarray(pixels).save(folder / f"{image_id}.png")
    manifest = pd.DataFrame({"image_id": ids, "path": [f"{i}.png" for i in ids]})
    cache = ImageCache.build(manifest, root / "cache", root=folder, image_size=IMAGE_SIZE)
    return cache, left, ids


def vqa_rows(image_ids: list[str], left: np.ndarray) -> pd.DataFrame:
    """Two questions per image: closed (yes / no) and open (left / right)."""
    rows = []
    for image_id, is_left in zip(image_ids, left, strict=True):
        rows.append(
            {
                "image_id": image_id,
                "question": "is the left side bright",
                "answer": "Yes" if is_left else "no",
                "answer_type": "CLOSED",
                "domain": "site_a",
            }
        )
        rows.append(
            {
                "image_id": image_id,
                "question": "which side is bright",
                "answer": "left" if is_left else "right",
                "answer_type": "open",
                "domain": "site_b",
            }
        )
    return pd.DataFrame(rows)


def caption(is_left: bool) -> str:
    return "bright region on the left" if is_left else "bright region on the right"
