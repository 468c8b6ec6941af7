"""String-level perturbations of radiology text (reports, captions, questions).

They model reporting-style shift between sites and writers, for evaluation sets and domain
splits: ``perturb_text(text, name, severity, seed) -> str``, deterministic given the seed.

How severity works
------------------
Each perturbation finds the *eligible spots* of the text (abbreviations, synonyms, negated
clauses, words, ...). With the seed, every spot gets a random rank and a random choice of
rewrite; severity ``s`` rewrites the ``ceil(fraction[s] * n)`` best-ranked spots. Ranks and
choices do not depend on the severity, so the spots changed at severity ``s`` are a subset of
those changed at ``s + 1`` and the edit distance to the clean text grows with severity.
Severity 0 returns the text unchanged; text without eligible spots is returned unchanged.

===================== ====================================================== ===============
name                  rewrite of one spot                                    fractions (1..5)
===================== ====================================================== ===============
abbreviation_expand   abbreviation -> expansion ("CXR" -> "chest x-ray")     A of spots
abbreviation_contract expansion -> abbreviation ("right upper lobe" -> "RUL") A of spots
synonym_swap          radiology synonym ("opacity" -> "density")             A of spots
negation_rephrase     "no X" <-> "X is not seen" <-> "negative for X" ...    A of clauses
section_headers       rename / drop headers (FINDINGS -> OBSERVATIONS), or   A of headers
                      add FINDINGS / IMPRESSION when a report has none
sentence_order        reverse the chosen sentences' order within a section   A of sentences
typos                 swap / drop / insert / substitute a character          B of words
word_dropout          delete a word                                          C of words
punctuation_case      drop a punctuation mark or lower-case a sentence start A of spots
number_format         "3 cm" <-> "30 mm" / "3cm" / "3.0 cm"; "two" <-> "2"   A of numbers
===================== ====================================================== ===============

Fractions: A = ``SPOT_FRACTIONS`` (0.2, 0.4, 0.6, 0.8, 1.0); B = ``TYPO_FRACTIONS``
(0.03, 0.06, 0.10, 0.15, 0.20); C = ``WORD_DROPOUT_FRACTIONS`` (0.05, 0.10, 0.15, 0.20, 0.30).
All tables are ours: no published benchmark fixes report-style shift for radiology text.

The vocabularies live in ``radiology_abbreviations`` (239 abbreviation pairs) and
``radiology_lexicon`` (synonym groups, section headers, negation forms).
"""

from __future__ import annotations

from robust_mmr_pipeline.perturb.base import (
    Perturbation,
    PerturbationRegistry,
    check_int_severity,
)
from robust_mmr_pipeline.perturb.text_edits import (
    SPOT_FRACTIONS,
    TYPO_FRACTIONS,
    WORD_DROPOUT_FRACTIONS,
)
from robust_mmr_pipeline.perturb.text_kernels import (
    _abbreviation_contract,
    _abbreviation_expand,
    _negation_rephrase,
    _number_format,
    _punctuation_case,
    _section_headers,
    _sentence_order,
    _synonym_swap,
    _typos,
    _word_dropout,
)
from robust_mmr_pipeline.seeding import keyed_random

# --------------------------------------------------------------------------------------------
# registry and public entry point
# --------------------------------------------------------------------------------------------

_SPOTS = {"fraction_of_spots": SPOT_FRACTIONS}
_TEXT_ENTRIES = (
    Perturbation(
        name="abbreviation_expand",
        kind="text",
        fn=_abbreviation_expand,
        description="expand radiology abbreviations (CXR -> chest x-ray, r/o -> rule out)",
        severity_table=_SPOTS,
        convention="ours; radiology_abbreviations (239 pairs)",
    ),
    Perturbation(
        name="abbreviation_contract",
        kind="text",
        fn=_abbreviation_contract,
        description="contract phrases to radiology abbreviations (right upper lobe -> RUL)",
        severity_table=_SPOTS,
        convention="ours; radiology_abbreviations (239 pairs)",
    ),
    Perturbation(
        name="synonym_swap",
        kind="text",
        fn=_synonym_swap,
        description="swap radiology synonyms (opacity / density / shadow, US / UK spelling)",
        severity_table=_SPOTS,
        convention="ours; radiology_lexicon.SYNONYM_GROUPS",
    ),
    Perturbation(
        name="negation_rephrase",
        kind="text",
        fn=_negation_rephrase,
        description="rephrase negations (no X / X is not seen / negative for X / ...)",
        severity_table=_SPOTS,
        convention="ours; radiology_lexicon.NEGATION_FORMS",
    ),
    Perturbation(
        name="section_headers",
        kind="text",
        fn=_section_headers,
        description="rename, drop or add section headers (FINDINGS, IMPRESSION, ...)",
        severity_table=_SPOTS,
        convention="ours; radiology_lexicon.HEADER_FAMILIES",
    ),
    Perturbation(
        name="sentence_order",
        kind="text",
        fn=_sentence_order,
        description="reorder sentences within report sections",
        severity_table=_SPOTS,
        convention="ours",
    ),
    Perturbation(
        name="typos",
        kind="text",
        fn=_typos,
        description="character swaps, drops, inserts and substitutions (QWERTY neighbours)",
        severity_table={"fraction_of_words": TYPO_FRACTIONS},
        convention="ours; rates in the range of NLP robustness suites (e.g. nlpaug / CheckList)",
    ),
    Perturbation(
        name="word_dropout",
        kind="text",
        fn=_word_dropout,
        description="delete random words",
        severity_table={"fraction_of_words": WORD_DROPOUT_FRACTIONS},
        convention="ours",
    ),
    Perturbation(
        name="punctuation_case",
        kind="text",
        fn=_punctuation_case,
        description="drop punctuation and lower-case sentence starts",
        severity_table=_SPOTS,
        convention="ours (Robust-MMR: punctuation / case format shift)",
    ),
    Perturbation(
        name="number_format",
        kind="text",
        fn=_number_format,
        description="reformat measurements and counts (3 cm -> 30 mm / 3cm / 3.0 cm, two -> 2)",
        severity_table=_SPOTS,
        convention="ours (Robust-MMR: number format shift)",
    ),
)


def perturb_text(text: str, name: str, severity: int, seed: int | str = 0) -> str:
    """Apply the text perturbation ``name`` at ``severity`` (0 = unchanged, 1..5).

    Args:
        text: any string (report, caption, question).
        name: a key of ``TEXT_PERTURBATIONS`` (see ``list_text_perturbations()``).
        severity: int 0..5.
        seed: int or str; the result is a pure function of ``(text, name, severity, seed)``
            (``random.Random`` seeded with ``"name|seed"``, stable across processes and
            platforms).

    Returns:
        The perturbed string.
    """
    entry = TEXT_PERTURBATIONS[name]
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    level = check_int_severity(severity)
    if isinstance(seed, bool) or not isinstance(seed, int | str):
        raise TypeError(f"seed must be an int or str, got {seed!r}")
    if level == 0 or not text:
        return text
    return entry.fn(text, level, keyed_random(name, seed))


def list_text_perturbations() -> list[str]:
    """Registered text perturbation names, in definition order."""
    return TEXT_PERTURBATIONS.names()


# Registered last: every entry, called, runs the validated public function above.
TEXT_PERTURBATIONS = PerturbationRegistry("text", entry_point=perturb_text)
for _entry in _TEXT_ENTRIES:
    TEXT_PERTURBATIONS.register(_entry)
