"""What a checkpoint says about its model and tokenizer: ``model.json`` parsed by typed configs,
the saved tokenizer and its fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import field
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
from robust_mmr_pipeline.typed_config import ParameterError, config, overrides_of, parse


@config
class ModelMeta:
    """``model.json``: the registered model class and the config it is built from."""

    model_class: str
    format_version: int | None = None
    config: dict[str, Any] = field(default_factory=dict)


MODEL_META_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelMeta))


def read_model_meta(path: Path) -> dict[str, Any]:
    """``model.json`` of the checkpoint folder ``path``, checked against its typed configs.

    ``model.json`` is parsed by :class:`ModelMeta` and its ``config`` by the model class's
    config (as a partial override when that is a config class): an unknown key anywhere raises
    :class:`CheckpointError` naming the folder, the file and the key path
    (``model.json.config.vision.patch_sise``): nothing in model.json is silently ignored.
    """
    file = path / MODEL_META
    meta = read_json(file)
    fix = f"Fix: correct or remove it in {file} (a checkpoint of another project version?)."
    try:
        parsed = parse(ModelMeta, meta, MODEL_META, fix, prefix=f"Checkpoint {path}: ")
        cls = resolve_model_class(parsed.model_class)
        config_type = getattr(cls, "config_class", None) or _annotated_config_type(cls)
        if isinstance(config_type, type) and dataclasses.is_dataclass(config_type):
            section = f"{MODEL_META}.config"
            parse(overrides_of(config_type), parsed.config, section, fix, f"Checkpoint {path}: ")
    except ParameterError as exc:
        raise CheckpointError(str(exc)) from None
    return dict(meta)


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
