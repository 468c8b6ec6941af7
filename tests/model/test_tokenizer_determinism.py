"""The WordPiece tokenizer is a function of its texts and settings: the same in every process
(the ``tokenizers`` trainer alone is not: its ids follow a randomly seeded hash map)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from robust_mmr_pipeline.engine import tokenizer_fingerprint
from robust_mmr_pipeline.model.tokenizer import SPECIAL_TOKENS, train_tokenizer

# Many count ties (each word once or twice): the case where the plain trainer's output varied.
TEXTS = [
    "Mild cardiomegaly with a small left pleural effusion.",
    "No acute cardiopulmonary abnormality; lungs are clear.",
    "Right lower lobe consolidation, concerning for pneumonia.",
    "Stable 4 mm nodule in the left upper lobe.",
    "Small right pneumothorax without mediastinal shift.",
    "Degenerative changes of the thoracic spine. Café-au-lait noted.",
    "Hyperinflated lungs, flattened hemidiaphragms: emphysema.",
    "Subsegmental atelectasis at the lung bases bilaterally.",
] * 2
SETTINGS = {"vocab_size": 160, "min_frequency": 1, "max_length": 24}


def _fingerprint_in_a_new_process() -> str:
    script = textwrap.dedent(
        f"""
        from robust_mmr_pipeline.engine import tokenizer_fingerprint
        from robust_mmr_pipeline.model.tokenizer import train_tokenizer
        print(tokenizer_fingerprint(train_tokenizer({TEXTS!r}, **{SETTINGS!r})))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip().splitlines()[-1]


def test_the_same_texts_give_the_same_tokenizer_in_every_process() -> None:
    here = tokenizer_fingerprint(train_tokenizer(TEXTS, **SETTINGS))
    assert {_fingerprint_in_a_new_process() for _ in range(2)} == {here}
    # the texts' order does not matter either (the trainer counts words)
    assert tokenizer_fingerprint(train_tokenizer(TEXTS[::-1], **SETTINGS)) == here
    other = train_tokenizer(TEXTS, **{**SETTINGS, "vocab_size": 150})
    assert tokenizer_fingerprint(other) != here


def test_continuation_pieces_are_ordinary_vocabulary() -> None:
    tok = train_tokenizer(TEXTS, **SETTINGS)
    assert len(tok) == SETTINGS["vocab_size"]
    assert [token.content for token in tok.added_tokens_decoder.values()] == list(SPECIAL_TOKENS)
    assert [tok.convert_ids_to_tokens(i) for i in range(5)] == list(SPECIAL_TOKENS)
    vocab = tok.get_vocab()
    assert "##y" in vocab and "##é" not in vocab and "##e" in vocab  # accents are stripped
    # a literal "##y" in a text is text ('#' was never seen: unknown), not a registered piece
    encoded = tok("cardiomegaly ##y", return_special_tokens_mask=True)
    pieces = tok.convert_ids_to_tokens(encoded["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-4:] == ["[UNK]", "[UNK]", "y", "[SEP]"]
    assert encoded["special_tokens_mask"] == [1] + [0] * (len(pieces) - 2) + [1]
    assert tok.decode(encoded["input_ids"], skip_special_tokens=True).startswith("cardiomegaly")
    assert json.loads(tok.backend_tokenizer.to_str())["model"]["type"] == "WordPiece"
