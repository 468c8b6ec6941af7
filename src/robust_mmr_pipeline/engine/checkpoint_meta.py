"""What a checkpoint says about its model and tokenizer: ``model.json`` checked key by key,
the saved tokenizer and its fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from robust_mmr_pipeline.engine.checkpoint_layout import (
    MODEL_META,
    TOKENIZER_DIR,
    CheckpointError,
    read_json,
    resolve_checkpoint,
)
from robust_mmr_pipeline.engine.registry import (
    _annotated_config_type,
    resolve_model_class,
)

MODEL_META_KEYS: tuple[str, ...] = ("format_version", "model_class", "config")


def _unknown_config_keys(config_type: Any, data: Any, prefix: str) -> list[str]:
    """Key paths in ``data`` that the config dataclass ``config_type`` does not have."""
    if not dataclasses.is_dataclass(config_type):  # ``X | None``: the dataclass inside
        inner = [a for a in typing.get_args(config_type) if dataclasses.is_dataclass(a)]
        config_type = inner[0] if inner else None
    if config_type is None or not isinstance(data, Mapping):
        return []
    hints = typing.get_type_hints(config_type)
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = [f"{prefix}{key}" for key in data if key not in names]
    for key, value in data.items():
        if key in names:
            unknown += _unknown_config_keys(hints.get(key), value, f"{prefix}{key}.")
    return unknown


def read_model_meta(path: Path) -> dict[str, Any]:
    """``model.json`` of the checkpoint folder ``path``, checked key by key.

    An unknown top-level key, a missing ``model_class``, or a ``config`` key its model's config
    class does not have raises :class:`CheckpointError` naming the folder, the file and the key
    path (``config.vision.patch_sise``): nothing in model.json is silently ignored.
    """
    file = path / MODEL_META
    meta = read_json(file)
    where = f"Checkpoint {path}: {MODEL_META}"
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where} holds a JSON {type(meta).__name__}, not an object.")
    unknown = sorted(set(meta) - set(MODEL_META_KEYS))
    if unknown:
        raise CheckpointError(
            f"{where} has unknown key(s) {unknown} (allowed: {list(MODEL_META_KEYS)}). Fix: "
            f"remove them from {file}, or use a checkpoint written by this project."
        )
    if "model_class" not in meta:
        raise CheckpointError(f"{where} lacks the key 'model_class'.")
    if not isinstance(meta.get("config", {}), dict):
        raise CheckpointError(f"{where} key 'config' must be an object.")
    cls = resolve_model_class(meta["model_class"])
    config_type = getattr(cls, "config_class", None) or _annotated_config_type(cls)
    unknown = _unknown_config_keys(config_type, meta.get("config", {}), "config.")
    if unknown:
        raise CheckpointError(
            f"{where} has unknown key(s) {unknown} for {meta['model_class']}. Fix: remove or "
            f"correct them in {file} (a checkpoint of another version of the project?)."
        )
    return meta


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The tokenizer saved in a checkpoint's ``tokenizer/`` folder, or None."""
    folder = resolve_checkpoint(path) / TOKENIZER_DIR
    if not folder.is_dir():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of what makes a tokenizer encode the way it does: the fast tokenizer's JSON
    (vocabulary, normalizer, pre-tokenizer, post-processor, added tokens) without the runtime
    truncation / padding state, else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
    else:
        spec = {"vocab": dict(tokenizer.get_vocab())}
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_tokenizer_matches(tokenizer: Any, checkpoint_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` when ``tokenizer`` is not the one saved with the checkpoint.

    A model's token embeddings are indexed by its tokenizer's ids: continuing (resuming or
    fine-tuning) with another tokenizer silently scrambles them.
    """
    path = resolve_checkpoint(checkpoint_dir)
    saved = load_tokenizer(path)
    if tokenizer is None or saved is None:
        return
    if tokenizer_fingerprint(tokenizer) != tokenizer_fingerprint(saved):
        raise CheckpointError(
            f"The tokenizer given to continue from {path} is not the one saved with it "
            f"({path / TOKENIZER_DIR}): its token ids would not match the model's embeddings. "
            "Use the checkpoint's tokenizer (engine.load_tokenizer(checkpoint) / "
            "load_model(checkpoint)), or start a fresh run."
        )
