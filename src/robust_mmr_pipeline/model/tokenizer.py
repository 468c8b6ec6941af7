"""WordPiece tokenizer trained on the pre-training texts (BERT recipe), no hub download.

Pipeline of the trained ``tokenizers.Tokenizer``: BertNormalizer (lowercase, clean text,
strip accents) -> BertPreTokenizer -> WordPiece (``##`` continuation) -> template
``[CLS] $A [SEP]``. The special tokens are trained first, so their ids are fixed:

    [PAD]=0  [UNK]=1  [CLS]=2  [SEP]=3  [MASK]=4

(the defaults of :class:`~robust_mmr_pipeline.model.config.TextConfig`). The tokenizer is
wrapped as ``transformers.PreTrainedTokenizerFast`` and saved / loaded from a local folder.

Determinism: the same texts and settings give the same vocabulary and ids in every process.
The ``tokenizers`` trainer numbers the ``##x`` continuation pieces in the iteration order of a
randomly seeded hash map, and its merge queue breaks count ties by those ids, so a plain
training run differs from process to process. Here every continuation piece is registered up
front, sorted (the trainer gives pre-registered tokens their ids first), which leaves no
random id and so no random tie-break; the tokenizer is then rebuilt from the trained vocabulary
with only the five real special tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import WordPieceTrainer
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
UNK = "[UNK]"
PREFIX = "##"  # WordPiece continuation prefix


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    min_frequency: int = 2,
    max_length: int = 48,
) -> PreTrainedTokenizerFast:
    """Train a lowercase WordPiece tokenizer on ``texts``.

    Args:
        texts: the pre-training reports / captions (an iterable is consumed once).
        vocab_size: upper bound on the vocabulary (specials and the alphabet included).
        min_frequency: a merge needs at least this many occurrences.
        max_length: ``model_max_length`` of the wrapper (truncation length).
    """
    texts = list(texts)
    fitting = _bert_pipeline(models.WordPiece(unk_token=UNK, continuing_subword_prefix=PREFIX))
    trainer = WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[*SPECIAL_TOKENS, *continuation_pieces(fitting, texts)],
        continuing_subword_prefix=PREFIX,
        show_progress=False,
    )
    fitting.train_from_iterator(texts, trainer=trainer)
    vocab = fitting.get_vocab(with_added_tokens=False)
    tok = _bert_pipeline(
        models.WordPiece(vocab=vocab, unk_token=UNK, continuing_subword_prefix=PREFIX)
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return _wrap(tok, max_length)


def _bert_pipeline(model: models.Model) -> Tokenizer:
    """A tokenizer around ``model`` with BERT's normalizer, pre-tokenizer and decoder."""
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=PREFIX)
    return tok


def continuation_pieces(tok: Tokenizer, texts: Iterable[str]) -> list[str]:
    """Every ``##x`` piece the trainer will meet: each character after the first of every
    word, after ``tok``'s normalizer and pre-tokenizer (what the trainer counts), sorted."""
    normalizer, pre_tokenizer = tok.normalizer, tok.pre_tokenizer
    assert normalizer is not None and pre_tokenizer is not None
    chars: set[str] = set()
    for text in texts:
        for word, _span in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            chars.update(word[1:])
    return [f"{PREFIX}{char}" for char in sorted(chars)]


def _wrap(tok: Tokenizer, max_length: int) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=UNK,
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
        padding_side="right",
        truncation_side="right",
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, folder: str | Path) -> Path:
    """Write ``tokenizer.json`` + configs into ``folder`` (created). Returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def load_tokenizer(folder: str | Path) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved by :func:`save_tokenizer` (local files only)."""
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {folder}")
    return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """``{"pad_token_id": .., "unk_token_id": .., ...}`` ready to update a TextConfig."""
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "unk_token_id": tokenizer.unk_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "mask_token_id": tokenizer.mask_token_id,
    }


def tokenize(
    tokenizer: PreTrainedTokenizerFast, texts: Sequence[str], max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Batch-encode to the model's text inputs, padded to ``max_length``.

    Returns ``input_ids``, ``attention_mask``, ``special_tokens_mask``: long ``[B, L]``.
    """
    enc = tokenizer(
        list(texts),
        max_length=max_length or tokenizer.model_max_length,
        padding="max_length",
        truncation=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    return {
        "input_ids": enc["input_ids"].long(),
        "attention_mask": enc["attention_mask"].long(),
        "special_tokens_mask": enc["special_tokens_mask"].long(),
    }
