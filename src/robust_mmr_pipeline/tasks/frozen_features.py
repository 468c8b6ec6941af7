"""The frozen backbone's fused features of the train rows, computed once and shared.

LP-FT (:func:`~robust_mmr_pipeline.tasks.probe.fit_head_on_frozen_features`) encodes the train
rows with the pre-trained backbone; the evaluation's frozen-backbone linear probe needs exactly
those features (the same backbone, tokenizer, rows and images). Fine-tuning saves them beside
its best checkpoint (:data:`FEATURES_FILE`, safetensors: no pickle) under a key that hashes
everything they depend on; the probe reuses them only when its own key matches, so a file from
another backbone, tokenizer, image cache or row set is never read as the current one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from robust_mmr_pipeline.engine.data import ImageCache

logger = logging.getLogger(__name__)

FEATURES_FILE = "frozen_features.safetensors"
FORMAT_VERSION = "1"


def _tokenizer_fingerprint(tokenizer: Any) -> str:
    """What decides the token ids: the backend's vocabulary and rules (its padding /
    truncation state left out: the encoders pass both per call)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("padding", None)
        spec.pop("truncation", None)
        return json.dumps(spec, sort_keys=True)
    return json.dumps(sorted(tokenizer.get_vocab().items()))


def _backbone_fingerprint(backbone: torch.nn.Module) -> str:
    """A hash of the weights the fused feature reads (a re-trained checkpoint at the same path
    gets another key); the heads a task model drops from the backbone are left out."""
    from robust_mmr_pipeline.tasks.model import PRETRAINING_ONLY, RETRIEVAL_PARTS

    digest = hashlib.sha256()
    for name, tensor in backbone.state_dict().items():
        if name.split(".", 1)[0] in PRETRAINING_ONLY + RETRIEVAL_PARTS:
            continue
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(
            tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def feature_key(
    backbone: torch.nn.Module,
    tokenizer: Any,
    rows: pd.DataFrame,
    cache: ImageCache,
    *,
    text_column: str,
    max_length: int,
) -> str:
    """The key of the fused features of ``rows`` under ``backbone``: its weights, the
    tokenizer, each row's image (the cache's source hash and resize settings) and text, in
    order."""
    digest = hashlib.sha256(f"v{FORMAT_VERSION}|{text_column}|{max_length}".encode())
    digest.update(_backbone_fingerprint(backbone).encode())
    digest.update(hashlib.sha256(_tokenizer_fingerprint(tokenizer).encode()).digest())
    settings = {k: cache.meta.get(k) for k in ("image_size", "channels", "resize_mode")}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    entries = cache.meta["entries"]
    texts = rows[text_column].fillna("").astype(str).tolist()
    for image_id, text in zip(rows["image_id"].astype(str), texts, strict=True):
        image = entries.get(image_id, {}).get("sha256", image_id)
        digest.update(f"{image}\x00{text}\x01".encode())
    return digest.hexdigest()


def save_features(folder: str | Path, features: torch.Tensor, key: str) -> Path:
    """Write ``features`` ``[n, D]`` under ``key`` to ``<folder>/``:data:`FEATURES_FILE`."""
    path = Path(folder) / FEATURES_FILE
    tmp = path.with_suffix(".tmp")
    save_file({"features": features.detach().cpu().contiguous()}, str(tmp),
              metadata={"key": key, "format": FORMAT_VERSION})  # fmt: skip
    tmp.replace(path)
    return path


def load_features(folder: str | Path | None, key: str) -> torch.Tensor | None:
    """The features saved in ``folder`` under ``key``; None when absent, unreadable or saved
    under another key (then they are computed again)."""
    if not folder:
        return None
    path = Path(folder) / FEATURES_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as handle:
            saved = (handle.metadata() or {}).get("key")
            if saved != key:
                logger.info("%s was computed for other inputs (key mismatch): not reused.", path)
                return None
            return handle.get_tensor("features")
    except Exception as exc:  # a damaged file costs a recomputation, never a wrong number
        logger.warning("%s is unreadable (%s): the features are computed again.", path, exc)
        return None
