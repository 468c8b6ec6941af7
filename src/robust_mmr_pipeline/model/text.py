"""Text encoder: a transformers BERT (or RoBERTa) built from a config, SDPA attention.

    input_ids [B, L], attention_mask [B, L] -> hidden states [B, L, D_t]

No pooling layer (the fusion module has its own poolers) and no download: weights are random
unless ``TextConfig.pretrained_path`` names a local HF folder or state-dict file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import Tensor, nn
from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

from robust_mmr_pipeline.model.config_sections import TextConfig
from robust_mmr_pipeline.model.weights import read_state_dict

log = logging.getLogger(__name__)


def build_hf_config(config: TextConfig) -> BertConfig | RobertaConfig:
    """The transformers config for :class:`TextEncoder` (SDPA attention)."""
    cls = BertConfig if config.arch == "bert" else RobertaConfig
    # RoBERTa numbers positions from pad_token_id + 1, so it needs two extra rows.
    extra_positions = 0 if config.arch == "bert" else config.pad_token_id + 1
    return cls(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_length + extra_positions,
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        pad_token_id=config.pad_token_id,
        type_vocab_size=2,
        attn_implementation="sdpa",
    )


class TextEncoder(nn.Module):
    """BERT / RoBERTa without pooler.

    Attributes:
        model: the ``BertModel`` / ``RobertaModel``.
    """

    def __init__(self, config: TextConfig) -> None:
        super().__init__()
        self.config = config
        hf_config = build_hf_config(config)
        model_cls = BertModel if config.arch == "bert" else RobertaModel
        path = Path(config.pretrained_path) if config.pretrained_path else None
        if path is not None and path.is_dir():
            self.model = model_cls.from_pretrained(
                str(path),
                local_files_only=True,
                add_pooling_layer=False,
                attn_implementation="sdpa",
            )
            _check_compatible(self.model.config, hf_config, path)
        else:
            self.model = model_cls(hf_config, add_pooling_layer=False)
            if path is not None:
                load_text_checkpoint(self.model, path)

    @property
    def width(self) -> int:
        return self.config.hidden_size

    @property
    def word_embeddings(self) -> nn.Embedding:
        """The input embedding matrix ``[V, D_t]`` (tied to the MLM output projection)."""
        return self.model.embeddings.word_embeddings

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """``input_ids`` long ``[B, L]``, ``attention_mask`` ``[B, L]`` -> ``[B, L, D_t]``."""
        if input_ids.shape[1] > self.config.max_length:
            raise ValueError(
                f"text length {input_ids.shape[1]} exceeds text.max_length "
                f"{self.config.max_length} (tokenize with max_length={self.config.max_length})"
            )
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state


def _check_compatible(loaded: BertConfig, wanted: BertConfig, path: Path) -> None:
    for name in ("vocab_size", "hidden_size"):
        if getattr(loaded, name) != getattr(wanted, name):
            raise ValueError(
                f"text checkpoint {path} has {name}={getattr(loaded, name)}, the config says "
                f"{getattr(wanted, name)}; set text.{name} (and the tokenizer) to match"
            )


def load_text_checkpoint(model: nn.Module, path: Path) -> None:
    """Load a local state dict (``.safetensors`` or torch) into ``model`` (never downloads).

    Prefixes ``bert.`` / ``roberta.`` (HF task models), ``module.`` (DDP) and ``text.model.``
    (a whole MMR checkpoint) are stripped.

    Raises:
        FileNotFoundError: the file does not exist.
        WeightFileError: the file holds pickled objects or is not a weight file.
        ValueError: no weight matched, or encoder layer weights are missing.
    """
    state = read_state_dict(path, "text.pretrained_path")
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    ours = "text.model."
    if any(k.startswith(ours) for k in state):
        state = {k.removeprefix(ours): v for k, v in state.items() if k.startswith(ours)}
    cleaned: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key
        for prefix in ("module.", "bert.", "roberta."):
            name = name.removeprefix(prefix)
        cleaned[name] = value
    result = model.load_state_dict(cleaned, strict=False)
    matched = set(model.state_dict()) - set(result.missing_keys)
    if not matched:
        raise ValueError(f"no text-encoder weight in {path} matches the model")
    missing = [k for k in result.missing_keys if k.startswith("encoder.")]
    if missing:
        raise ValueError(f"{path} lacks text-encoder weights, e.g. {missing[:5]}")
    log.info("loaded %d text-encoder tensors from %s", len(matched), path)
