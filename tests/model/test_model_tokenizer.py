"""WordPiece tokenizer: train, save, load, and agreement with TextConfig's special ids."""

from __future__ import annotations

from pathlib import Path

from robust_mmr_pipeline.model.config_sections import TextConfig
from robust_mmr_pipeline.model.tokenizer import (
    load_tokenizer,
    save_tokenizer,
    special_token_ids,
    tokenize,
    train_tokenizer,
)

TEXTS = [
    "The heart size is normal. No pleural effusion.",
    "Mild cardiomegaly with a small left pleural effusion.",
    "No acute cardiopulmonary abnormality.",
    "Right lower lobe consolidation, concerning for pneumonia.",
] * 10


def test_train_save_load_round_trip(tmp_path: Path) -> None:
    tok = train_tokenizer(TEXTS, vocab_size=300, min_frequency=1, max_length=16)
    ids = special_token_ids(tok)
    defaults = TextConfig()
    assert ids == {
        "pad_token_id": defaults.pad_token_id,
        "unk_token_id": defaults.unk_token_id,
        "cls_token_id": defaults.cls_token_id,
        "sep_token_id": defaults.sep_token_id,
        "mask_token_id": defaults.mask_token_id,
    }
    folder = save_tokenizer(tok, tmp_path / "tokenizer")
    loaded = load_tokenizer(folder)
    assert len(loaded) == len(tok)
    for text in TEXTS[:4]:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    encoded = loaded("Mild CARDIOMEGALY.")["input_ids"]
    assert encoded[0] == ids["cls_token_id"] and encoded[-1] == ids["sep_token_id"]
    assert loaded.decode(encoded, skip_special_tokens=True) == "mild cardiomegaly."
    assert loaded.model_max_length == 16


def test_tokenize_pads_and_marks_special_tokens() -> None:
    tok = train_tokenizer(TEXTS, vocab_size=300, min_frequency=1, max_length=12)
    batch = tokenize(tok, TEXTS[:3])
    assert batch["input_ids"].shape == (3, 12)
    attn, special = batch["attention_mask"], batch["special_tokens_mask"]
    assert int(attn[2].sum()) < 12  # the short text is padded
    assert bool((special[:, 0] == 1).all())
    assert bool(((attn == 0) <= (special == 1)).all())  # padding counts as special
