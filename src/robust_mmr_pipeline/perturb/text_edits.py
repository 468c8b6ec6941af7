"""The severity fractions of the text perturbations and the string helpers they share: finding
sentences, headers and vocabulary spots, ranking spots with a seeded rng, applying edits.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from functools import cache

from robust_mmr_pipeline.perturb.radiology_abbreviations import ABBREVIATIONS, EXPANSIONS
from robust_mmr_pipeline.perturb.radiology_lexicon import (
    HEADER_FAMILIES,
    SYNONYM_GROUPS,
)

SPOT_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
TYPO_FRACTIONS = (0.03, 0.06, 0.10, 0.15, 0.20)
WORD_DROPOUT_FRACTIONS = (0.05, 0.10, 0.15, 0.20, 0.30)

Edit = tuple[int, int, str]  # (start, end, replacement)

_SENTENCE_END = ".!?:\n"
_SENTENCE_RE = re.compile(r"\S[^\n]*?(?:[.!?](?=\s|\Z)|(?=\n)|\Z)")
_CLAUSE_DELIMITER_RE = re.compile(r"[;:!?\n]|\.(?!\d)")
_WORD_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9'/\-]|\.(?=\d))*")
_LETTER_WORD_RE = re.compile(r"[A-Za-z]{3,}")
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _phrase_regex(phrases: Sequence[str]) -> re.Pattern[str]:
    """Case-insensitive regex matching any phrase as a whole token, longest first.

    A phrase may not touch a letter, digit, ``/`` or ``-`` on either side (so "lateral" is
    not found in "bilateral" nor "right" in "right-sided"); a phrase ending in ``/`` ("w/")
    may touch the next word.
    """
    parts = []
    for phrase in sorted(phrases, key=len, reverse=True):
        body = re.escape(phrase).replace(r"\ ", r"\s+")
        tail = r"(?![\w/-])" if phrase[-1].isalnum() else ""
        parts.append(body + tail)
    return re.compile(r"(?<![\w/-])(?:" + "|".join(parts) + ")", re.IGNORECASE)


@cache
def _abbreviation_regex() -> re.Pattern[str]:
    return _phrase_regex(list(ABBREVIATIONS))


@cache
def _expansion_regex() -> re.Pattern[str]:
    return _phrase_regex(list(EXPANSIONS))


@cache
def _synonym_index() -> tuple[re.Pattern[str], dict[str, tuple[str, ...]]]:
    group_of = {phrase: group for group in SYNONYM_GROUPS for phrase in group}
    return _phrase_regex(list(group_of)), group_of


@cache
def _header_regex() -> tuple[re.Pattern[str], dict[str, str]]:
    family_of = {h.lower(): name for name, fam in HEADER_FAMILIES.items() for h in fam}
    names = sorted(family_of, key=len, reverse=True)
    pattern = r"(?<![\w-])(?P<h>" + "|".join(re.escape(n) for n in names) + r")[ \t]*:[ \t]*"
    return re.compile(pattern, re.IGNORECASE), family_of


def _at_sentence_start(text: str, index: int) -> bool:
    """Whether only spaces lie between ``index`` and the text start or a sentence break."""
    j = index - 1
    while j >= 0 and text[j] in " \t\"'(":
        j -= 1
    return j < 0 or text[j] in _SENTENCE_END


def _is_shouting(text: str) -> bool:
    """All-caps text with real words in it (not just a string of abbreviations)."""
    if not text.isupper():
        return False
    return any(
        len(w) >= 4 and w.lower() not in ABBREVIATIONS for w in re.findall(r"[A-Za-z]+", text)
    )


def _capitalize(s: str) -> str:
    return s[:1].upper() + s[1:]


def _is_acronym(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return len(letters) > 1 and all(c.isupper() for c in letters)


def _match_case(original: str, replacement: str) -> str:
    """Give ``replacement`` the case style of ``original`` (UPPER, Capitalised or as is)."""
    if _is_acronym(original) and not _is_acronym(replacement):
        return replacement.upper()
    if original[:1].isupper() and not _is_acronym(original):
        return _capitalize(replacement)
    return replacement


def _choose(rng: random.Random, n: int, fraction: float) -> tuple[set[int], list[float]]:
    """Rank ``n`` spots at random, keep the best ``ceil(fraction * n)``; one choice value each.

    Draws ``2 n`` numbers whatever ``fraction`` is, so selections are nested in the fraction.
    """
    ranks = [rng.random() for _ in range(n)]
    choices = [rng.random() for _ in range(n)]
    k = min(n, math.ceil(fraction * n - 1e-9))
    order = sorted(range(n), key=ranks.__getitem__)
    return set(order[:k]), choices


def _pick(options: Sequence[str], value: float) -> str:
    """The option at ``floor(value * len(options))`` (``value`` in [0, 1))."""
    return options[min(int(value * len(options)), len(options) - 1)]


def _apply(text: str, edits: list[Edit]) -> str:
    """Apply non-overlapping ``(start, end, replacement)`` edits."""
    out, last = [], 0
    for start, end, replacement in sorted(edits):
        out.append(text[last:start])
        out.append(replacement)
        last = end
    out.append(text[last:])
    return "".join(out)


def _header_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, family)`` of section headers (``NAME:`` at a line or sentence start)."""
    pattern, family_of = _header_regex()
    spans = []
    for m in pattern.finditer(text):
        if _at_sentence_start(text, m.start()):
            spans.append((m.start(), m.end(), family_of[m.group("h").lower()]))
    return spans


def _sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentences (period / ! / ? followed by a space, or a line end) inside ``[start, end)``."""
    stop = len(text) if end is None else end
    return [m.span() for m in _SENTENCE_RE.finditer(text, start, stop)]


def _fractions(values: Sequence[float], severity: int) -> float:
    return values[severity - 1]
