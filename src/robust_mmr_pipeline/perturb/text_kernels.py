"""The text perturbation kernels: ``(text, severity in 1..5, seeded rng) -> text``. Registered in
:mod:`robust_mmr_pipeline.perturb.text`, whose docstring describes each.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable

from robust_mmr_pipeline.perturb.radiology_abbreviations import ABBREVIATIONS, EXPANSIONS
from robust_mmr_pipeline.perturb.radiology_lexicon import (
    HEADER_FAMILIES,
    NEGATION_FORMS,
)
from robust_mmr_pipeline.perturb.text_edits import (
    _CLAUSE_DELIMITER_RE,
    _KEYBOARD_ROWS,
    _LETTER_WORD_RE,
    _WORD_RE,
    SPOT_FRACTIONS,
    TYPO_FRACTIONS,
    WORD_DROPOUT_FRACTIONS,
    Edit,
    _abbreviation_regex,
    _apply,
    _at_sentence_start,
    _capitalize,
    _choose,
    _expansion_regex,
    _fractions,
    _header_spans,
    _is_acronym,
    _is_shouting,
    _match_case,
    _pick,
    _sentence_spans,
    _synonym_index,
)


def _abbreviation_expand(text: str, severity: int, rng: random.Random) -> str:
    """Replace abbreviations by their expansion ("CXR" -> "chest x-ray").

    The expansion is written as in the dictionary, capitalised when a capitalised abbreviation
    starts a sentence and upper case in an all-caps text; a space is added when the
    abbreviation touched the next word ("w/contrast" -> "with contrast").
    """
    matches = list(_abbreviation_regex().finditer(text))
    chosen, _ = _choose(rng, len(matches), _fractions(SPOT_FRACTIONS, severity))
    shouting = _is_shouting(text)
    edits: list[Edit] = []
    for i, m in enumerate(matches):
        if i not in chosen:
            continue
        expansion = ABBREVIATIONS[m.group(0).lower()]
        if shouting:
            expansion = expansion.upper()
        elif m.group(0)[0].isupper() and _at_sentence_start(text, m.start()):
            expansion = _capitalize(expansion)
        if m.end() < len(text) and text[m.end()].isalnum():
            expansion += " "
        edits.append((m.start(), m.end(), expansion))
    return _apply(text, edits)


def _abbreviation_contract(text: str, severity: int, rng: random.Random) -> str:
    """Replace expansions by their abbreviation ("right upper lobe" -> "RUL").

    The abbreviation is written as in the dictionary; lower-case shorthand replacing a
    capitalised sentence start is capitalised ("Rule out" -> "R/o"), and everything is upper
    case when the phrase was.
    """
    matches = list(_expansion_regex().finditer(text))
    chosen, _ = _choose(rng, len(matches), _fractions(SPOT_FRACTIONS, severity))
    edits: list[Edit] = []
    for i, m in enumerate(matches):
        if i not in chosen:
            continue
        phrase = m.group(0)
        abbreviation = EXPANSIONS[" ".join(phrase.lower().split())]
        if _is_acronym(phrase):
            abbreviation = abbreviation.upper()
        elif phrase[0].isupper() and _at_sentence_start(text, m.start()):
            abbreviation = _capitalize(abbreviation)
        edits.append((m.start(), m.end(), abbreviation))
    return _apply(text, edits)


def _synonym_swap(text: str, severity: int, rng: random.Random) -> str:
    """Swap radiology phrases for a synonym of their group ("opacity" -> "density")."""
    pattern, group_of = _synonym_index()
    matches = list(pattern.finditer(text))
    chosen, choices = _choose(rng, len(matches), _fractions(SPOT_FRACTIONS, severity))
    edits: list[Edit] = []
    for i, m in enumerate(matches):
        if i not in chosen:
            continue
        phrase = " ".join(m.group(0).lower().split())
        others = [p for p in group_of[phrase] if p != phrase]
        edits.append((m.start(), m.end(), _match_case(m.group(0), _pick(others, choices[i]))))
    return _apply(text, edits)


_VERBS = (" is ", " are ", " was ", " were ", " has ", " have ", " but ")
_NEGATION_PATTERNS: tuple[tuple[int, re.Pattern[str]], ...] = tuple(
    (form, re.compile(pattern, re.IGNORECASE))
    for form, pattern in (
        (5, r"there (?:is|are) no (?:evidence of )?(?P<x>.+)"),
        (1, r"no evidence of (?P<x>.+)"),
        (
            0,
            r"no (?P<x>.+?)(?: (?:is|are) (?:seen|identified|present|noted|visualized|"
            r"demonstrated))?",
        ),
        (3, r"negative for (?P<x>.+)"),
        (4, r"without (?:evidence of )?(?P<x>.+)"),
        (2, r"(?P<x>.+?) (?:is|are) not (?:seen|identified|present|visualized|demonstrated)"),
    )
)


def _parse_negation(clause: str) -> tuple[int, str] | None:
    """``(form, finding)`` when ``clause`` is a whole negated-finding clause, else None."""
    for form, pattern in _NEGATION_PATTERNS:
        m = pattern.fullmatch(clause)
        if m is None:
            continue
        finding = m.group("x").strip()
        padded = f" {finding.lower()} "
        if not finding or len(finding.split()) > 10 or any(v in padded for v in _VERBS):
            return None
        return form, finding
    return None


def _plural(finding: str, leading: bool) -> bool:
    """Rough verb agreement for ``finding``: "is" (False) or "are" (True).

    "and"-lists are plural; otherwise the verb agrees with the nearest noun phrase: the
    first item of an "or"-list when the verb comes first ("there is no A or Bs"), the last
    when it follows ("A or Bs are not seen"); a word in -s (not -ss / -is / -us) is plural.
    """
    lower = finding.lower()
    if " and " in lower:
        return True
    items = [item.strip() for item in re.split(r",|\bor\b", lower) if item.strip()]
    words = (items[0] if leading else items[-1]).split()
    last = words[-1] if words else lower
    return last.endswith("s") and not last.endswith(("ss", "is", "us"))


def _negation_rephrase(text: str, severity: int, rng: random.Random) -> str:
    """Rephrase negated findings among ``NEGATION_FORMS``.

    Only whole clauses (between ``. ; : ! ?`` or line breaks) are rewritten, e.g.
    "No pleural effusion." -> "Pleural effusion is not seen." -> "Negative for pleural
    effusion."; the target form is drawn among the forms the clause is not already in.
    """
    spots: list[tuple[int, int, int, str]] = []
    start = 0
    bounds = [m.start() for m in _CLAUSE_DELIMITER_RE.finditer(text)] + [len(text)]
    for stop in bounds:
        raw = text[start:stop]
        lead = len(raw) - len(raw.lstrip())
        clause = raw.strip()
        parsed = _parse_negation(clause) if clause else None
        if parsed is not None:
            spots.append((start + lead, start + lead + len(clause), *parsed))
        start = stop + 1
    chosen, choices = _choose(rng, len(spots), _fractions(SPOT_FRACTIONS, severity))
    edits: list[Edit] = []
    for i, (begin, end, form, finding) in enumerate(spots):
        if i not in chosen:
            continue
        target = _pick([f for f in range(len(NEGATION_FORMS)) if f != form], choices[i])
        original = text[begin:end]
        x = finding
        if form == 2 and x[:1].isupper() and not _is_acronym(x.split()[0]):
            x = x[:1].lower() + x[1:]
        be = "are" if _plural(x, leading=target == 5) else "is"
        new = NEGATION_FORMS[target].format(x=x, be=be)
        if original.isupper():
            new = new.upper()
        elif original[:1].isupper():
            new = _capitalize(new)
        edits.append((begin, end, new))
    return _apply(text, edits)


def _section_headers(text: str, severity: int, rng: random.Random) -> str:
    """Rename or drop section headers; add FINDINGS / IMPRESSION where there are none.

    With headers, each is renamed to another name of its family ("IMPRESSION" ->
    "CONCLUSION", "Findings", ...; 70 %) or removed with its colon (30 %). Without headers,
    the spots are "FINDINGS: " before the first sentence and "IMPRESSION: " before the last
    (when there are two or more).
    """
    headers = _header_spans(text)
    edits: list[Edit] = []
    if headers:
        chosen, choices = _choose(rng, len(headers), _fractions(SPOT_FRACTIONS, severity))
        for i, (begin, end, family) in enumerate(headers):
            if i not in chosen:
                continue
            if choices[i] < 0.3:
                edits.append((begin, end, ""))
                continue
            current, trailing = text[begin:end].split(":", maxsplit=1)
            others = [h for h in HEADER_FAMILIES[family] if h != current.strip()]
            edits.append((begin, end, f"{_pick(others, (choices[i] - 0.3) / 0.7)}:{trailing}"))
        return _apply(text, edits)
    sentences = _sentence_spans(text)
    spots = [(sentences[0][0], "FINDINGS: ")] if sentences else []
    if len(sentences) >= 2:
        spots.append((sentences[-1][0], "IMPRESSION: "))
    chosen, _ = _choose(rng, len(spots), _fractions(SPOT_FRACTIONS, severity))
    edits = [(pos, pos, header) for i, (pos, header) in enumerate(spots) if i in chosen]
    return _apply(text, edits)


def _sentence_order(text: str, severity: int, rng: random.Random) -> str:
    """Reorder sentences within each section (headers stay in place).

    In each section with ``n >= 2`` sentences, ``max(2, ceil(fraction * n))`` of them, chosen
    by rank, have their order reversed among their slots (at severity 5 the whole section
    reads backwards; a rotation would not grow with the count: rotating all sentences only
    moves the first to the end).
    """
    headers = _header_spans(text)
    bounds = [0] + [end for _, end, _ in headers] + [len(text)]
    starts = [0] + [begin for begin, _, _ in headers]
    sections = []
    for i in range(len(bounds) - 1):
        stop = starts[i + 1] if i + 1 < len(starts) else len(text)
        sections.append(_sentence_spans(text, bounds[i], stop))
    fraction = _fractions(SPOT_FRACTIONS, severity)
    edits: list[Edit] = []
    for spans in sections:
        ranks = [rng.random() for _ in spans]
        if len(spans) < 2:
            continue
        k = min(len(spans), max(2, math.ceil(fraction * len(spans) - 1e-9)))
        picked = sorted(sorted(range(len(spans)), key=ranks.__getitem__)[:k])
        contents = [text[spans[j][0] : spans[j][1]] for j in picked]
        edits.extend((*spans[j], new) for j, new in zip(picked, contents[::-1], strict=True))
    return _apply(text, edits)


def _keyboard_neighbours(char: str) -> str:
    """Letters next to ``char`` on a QWERTY keyboard (same row and the rows above/below)."""
    lower = char.lower()
    for r, row in enumerate(_KEYBOARD_ROWS):
        c = row.find(lower)
        if c < 0:
            continue
        near = [row[j] for j in (c - 1, c + 1) if 0 <= j < len(row)]
        for other in (r - 1, r + 1):
            if 0 <= other < len(_KEYBOARD_ROWS):
                near.extend(_KEYBOARD_ROWS[other][max(0, c - 1) : c + 1])
        return "".join(near)
    return "e"


def _typos(text: str, severity: int, rng: random.Random) -> str:
    """Typing errors in words of three or more letters.

    Per chosen word one of: swap two adjacent letters, drop a letter, insert a keyboard
    neighbour, substitute a keyboard neighbour (position and neighbour drawn per word).
    """
    matches = list(_LETTER_WORD_RE.finditer(text))
    chosen, choices = _choose(rng, len(matches), _fractions(TYPO_FRACTIONS, severity))
    positions = [rng.random() for _ in matches]
    neighbours = [rng.random() for _ in matches]
    edits: list[Edit] = []
    for i, m in enumerate(matches):
        if i not in chosen:
            continue
        word = m.group(0)
        op = min(int(choices[i] * 4), 3)
        p = min(int(positions[i] * len(word)), len(word) - 1)
        if op == 0:
            p = min(p, len(word) - 2)
            if word[p] != word[p + 1]:
                edits.append((m.start(), m.end(), word[:p] + word[p + 1] + word[p] + word[p + 2 :]))
                continue
            op = 1  # swapping equal letters changes nothing: drop one instead
        near = _keyboard_neighbours(word[p])
        key = near[min(int(neighbours[i] * len(near)), len(near) - 1)]
        key = key.upper() if word[p].isupper() else key
        if op == 1:
            new = word[:p] + word[p + 1 :]
        elif op == 2:
            new = word[:p] + key + word[p:]
        else:
            new = word[:p] + key + word[p + 1 :]
        edits.append((m.start(), m.end(), new))
    return _apply(text, edits)


def _word_dropout(text: str, severity: int, rng: random.Random) -> str:
    """Delete words (and one adjacent space); section headers are kept."""
    headers = _header_spans(text)
    matches = [
        m
        for m in _WORD_RE.finditer(text)
        if not any(begin <= m.start() < end for begin, end, _ in headers)
    ]
    chosen, _ = _choose(rng, len(matches), _fractions(WORD_DROPOUT_FRACTIONS, severity))
    edits: list[Edit] = []
    for i, m in enumerate(matches):
        if i not in chosen:
            continue
        begin, end = m.span()
        if end < len(text) and text[end] == " ":
            end += 1
        elif begin > 0 and text[begin - 1] == " ":
            begin -= 1
        edits.append((begin, end, ""))
    return _merge_and_apply(text, edits)


def _merge_and_apply(text: str, edits: list[Edit]) -> str:
    """Apply deletions that may share a boundary space (adjacent spans are merged)."""
    merged: list[Edit] = []
    for begin, end, rep in sorted(edits):
        start = max(begin, merged[-1][1]) if merged else begin
        merged.append((start, max(start, end), rep))
    return _apply(text, merged)


_PUNCTUATION_RE = re.compile(r"[,;]|\.(?=\s|\Z)")


def _punctuation_case(text: str, severity: int, rng: random.Random) -> str:
    """Drop punctuation (commas, semicolons, sentence periods) and lower-case sentence starts.

    Spots are the punctuation marks and the capitalised first words of sentences (acronyms
    such as "CT" keep their case).
    """
    spots: list[Edit] = [(m.start(), m.end(), "") for m in _PUNCTUATION_RE.finditer(text)]
    for begin, _ in _sentence_spans(text):
        word = _WORD_RE.match(text, begin)
        if word and word.group(0)[0].isupper() and not _is_acronym(word.group(0)):
            spots.append((begin, begin + 1, text[begin].lower()))
    spots.sort()
    chosen, _ = _choose(rng, len(spots), _fractions(SPOT_FRACTIONS, severity))
    return _apply(text, [spot for i, spot in enumerate(spots) if i in chosen])


_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_MEASURE_RE = re.compile(r"(?<![\w.])(?P<v>\d+(?:\.\d+)?)(?P<s>\s?)(?P<u>cm|mm)\b")
_COUNT_WORD_RE = re.compile(r"\b(?P<w>" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_COUNT_DIGIT_RE = re.compile(r"(?<![\w.,/:\-])(?P<d>10|[1-9])(?![\w.,/:%\-])(?!\s?(?:cm|mm|x)\b)")


def _format_number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _rewrite_measure(m: re.Match[str], choice: float) -> str:
    """One of: convert cm <-> mm, toggle the space, change the decimal style."""
    value, space, unit = m.group("v"), m.group("s"), m.group("u")
    op = min(int(choice * 3), 2)
    if op == 0:
        number = float(value)
        if unit == "cm":
            return f"{_format_number(number * 10)}{space}mm"
        return f"{_format_number(number / 10)}{space}cm"
    if op == 1:
        return f"{value}{'' if space else ' '}{unit}"
    if "." not in value:
        return f"{value}.0{space}{unit}"
    whole, decimals = value.split(".")
    stripped = decimals.rstrip("0")
    new_value = f"{whole}.{stripped}" if stripped else whole
    if new_value == value:
        new_value = f"{value}0"
    return f"{new_value}{space}{unit}"


def _number_format(text: str, severity: int, rng: random.Random) -> str:
    """Reformat numbers: measurements ("3 cm" -> "30 mm" / "3cm" / "3.0 cm") and counts.

    Counts one to ten switch between words and digits ("two nodules" <-> "2 nodules").
    """
    spots: list[tuple[int, int, Callable[[float], str]]] = []
    for m in _MEASURE_RE.finditer(text):
        spots.append((m.start(), m.end(), lambda c, m=m: _rewrite_measure(m, c)))
    for m in _COUNT_WORD_RE.finditer(text):
        digit = str(_NUMBER_WORDS.index(m.group("w").lower()) + 1)
        spots.append((m.start(), m.end(), lambda c, d=digit: d))
    for m in _COUNT_DIGIT_RE.finditer(text):
        word = _NUMBER_WORDS[int(m.group("d")) - 1]
        if _at_sentence_start(text, m.start()):
            word = _capitalize(word)
        spots.append((m.start(), m.end(), lambda c, w=word: w))
    spots.sort(key=lambda spot: spot[0])
    chosen, choices = _choose(rng, len(spots), _fractions(SPOT_FRACTIONS, severity))
    edits = [(b, e, rewrite(choices[i])) for i, (b, e, rewrite) in enumerate(spots) if i in chosen]
    return _apply(text, edits)
