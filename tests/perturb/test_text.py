"""Text perturbations: determinism, severity vs edit distance, vocabulary, specific rewrites."""

from __future__ import annotations

import difflib
import itertools
import re

import pytest

from robust_mmr_pipeline.perturb import (
    TEXT_PERTURBATIONS,
    list_text_perturbations,
    perturb_text,
)
from robust_mmr_pipeline.perturb.radiology_abbreviations import ABBREVIATIONS, EXPANSIONS
from robust_mmr_pipeline.perturb.radiology_lexicon import NEGATION_FORMS, SYNONYM_GROUPS

NAMES = list_text_perturbations()


def _distance(a: str, b: str) -> float:
    # autojunk off: its popularity heuristic makes ratios of strings over 200 chars erratic.
    return 1.0 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def test_registry_lists_the_required_perturbations() -> None:
    assert {
        "abbreviation_expand",
        "abbreviation_contract",
        "synonym_swap",
        "negation_rephrase",
        "section_headers",
        "sentence_order",
        "typos",
        "word_dropout",
        "punctuation_case",
        "number_format",
    } <= set(NAMES)
    for name in NAMES:
        entry = TEXT_PERTURBATIONS[name]
        assert entry.kind == "text" and entry.description and entry.convention
        assert entry.modalities is None
        assert all(len(v) == 5 for v in entry.severity_table.values())


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_seed(name: str, reports: tuple[str, ...]) -> None:
    for report in reports:
        assert perturb_text(report, name, 3, seed=5) == perturb_text(report, name, 3, seed=5)
    outputs = {tuple(perturb_text(r, name, 2, seed=s) for r in reports) for s in range(6)}
    assert len(outputs) > 1  # the seed matters


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_and_empty_text(name: str, reports: tuple[str, ...]) -> None:
    assert perturb_text(reports[0], name, 0, seed=1) == reports[0]
    assert perturb_text("", name, 5, seed=1) == ""


@pytest.mark.parametrize("name", NAMES)
def test_severity_monotonic_in_edit_distance(name: str, reports: tuple[str, ...]) -> None:
    """Mean ``1 - difflib ratio`` over reports and seeds grows with severity."""
    means = []
    for severity in range(1, 6):
        distances = [
            _distance(report, perturb_text(report, name, severity, seed=seed))
            for report in reports
            for seed in range(3)
        ]
        means.append(sum(distances) / len(distances))
    assert means[0] > 0, means
    assert all(b >= a for a, b in itertools.pairwise(means)), means
    assert means[4] > means[0], means


@pytest.mark.parametrize("name", [n for n in NAMES if n != "sentence_order"])
def test_changed_spots_are_nested(name: str, reports: tuple[str, ...]) -> None:
    """What changes at a severity still changes at the next: results never get closer.

    (For sentence_order the moved set is nested but the edit distance of a permutation of
    one report need not grow; ``test_sentence_order_moves_more_sentences`` checks the count.)
    """
    for report in reports:
        previous = 0.0
        for severity in range(1, 6):
            current = _distance(report, perturb_text(report, name, severity, seed=11))
            assert current >= previous - 0.02, (report, severity)
            previous = max(previous, current)


def test_invalid_arguments() -> None:
    with pytest.raises(KeyError, match="synonym_swap"):
        perturb_text("x", "no_such_perturbation", 1, seed=0)
    with pytest.raises(ValueError, match=r"0\.\.5"):
        perturb_text("x", "typos", 6, seed=0)
    with pytest.raises(TypeError):
        perturb_text("x", "typos", 1.5, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        perturb_text(None, "typos", 1, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        perturb_text("x", "typos", 1, seed=1.5)  # type: ignore[arg-type]


def test_string_seeds_are_stable() -> None:
    text = "Mild cardiomegaly. Small left pleural effusion. No pneumothorax."
    assert perturb_text(text, "typos", 5, seed="site-A") == perturb_text(
        text, "typos", 5, seed="site-A"
    )


# ---------------------------------------------------------------- abbreviations


def test_abbreviation_dictionary_size_and_bijection() -> None:
    assert len(ABBREVIATIONS) >= 150
    assert len(EXPANSIONS) == len(ABBREVIATIONS)
    for abbreviation, expansion in ABBREVIATIONS.items():
        assert EXPANSIONS[expansion.lower()].lower() == abbreviation
    for key in (
        "cxr",
        "ct",
        "mri",
        "ap",
        "pa",
        "lll",
        "rul",
        "cm",
        "hx",
        "w/",
        "r/o",
        "nad",
        "wnl",
    ):
        assert key in ABBREVIATIONS, key
    assert ABBREVIATIONS["cxr"] == "chest x-ray"


@pytest.mark.parametrize(
    ("phrase", "contracted"),
    [
        (
            "Chest x-ray shows right upper lobe opacity with pleural effusion. Rule out "
            "pneumonia. Follow-up in two weeks.",
            "CXR shows RUL opacity w/ pleural effusion. R/o PNA. F/u in two weeks.",
        ),
        (
            "Computed tomography of the abdomen without contrast: status post coronary artery "
            "bypass graft, history of hypertension.",
            "CT of the abd w/o contrast: s/p CABG, h/o HTN.",
        ),
        (
            "Magnetic resonance imaging within normal limits. No abnormality detected.",
            "MRI WNL. NAD.",
        ),
    ],
)
def test_abbreviation_round_trip(phrase: str, contracted: str) -> None:
    assert perturb_text(phrase, "abbreviation_contract", 5, seed=0) == contracted
    assert perturb_text(contracted, "abbreviation_expand", 5, seed=0) == phrase


def test_abbreviation_matching_respects_word_boundaries() -> None:
    text = "Bilateral lateral decubitus views. Right-sided catheter."
    out = perturb_text(text, "abbreviation_contract", 5, seed=0)
    assert out.startswith("B/l lat decubitus")  # "lateral" inside "bilateral" is not a match
    assert "Right-sided" in out
    assert perturb_text("w/contrast", "abbreviation_expand", 5, seed=0) == "with contrast"


def test_abbreviation_in_all_caps_text() -> None:
    assert perturb_text("CXR: NAD, STABLE.", "abbreviation_expand", 5, seed=0) == (
        "CHEST X-RAY: NO ABNORMALITY DETECTED, STABLE."
    )
    # A string of abbreviations alone is not shouting.
    assert perturb_text("CXR: NAD.", "abbreviation_expand", 5, seed=0) == (
        "Chest x-ray: No abnormality detected."
    )


# ---------------------------------------------------------------- synonyms, negation, headers


def test_synonym_swap_stays_in_group() -> None:
    group_of = {p: g for g in SYNONYM_GROUPS for p in g}
    text = "There is a patchy opacity. The heart is enlarged."
    out = perturb_text(text, "synonym_swap", 5, seed=3)
    first = re.search(r"patchy (\w+)\.", out)
    assert first is not None and first.group(1) in group_of["opacity"]
    assert first.group(1) != "opacity"
    assert out.endswith("The heart is increased in size.")


def test_synonym_swap_keeps_case() -> None:
    out = perturb_text("Opacity in the left base.", "synonym_swap", 5, seed=0)
    assert out[0].isupper() and out.split()[0].lower() in ("density", "shadow")
    out = perturb_text("NO FOCAL OPACITY.", "synonym_swap", 5, seed=0)
    assert out in ("NO FOCAL DENSITY.", "NO FOCAL SHADOW.")


@pytest.mark.parametrize(
    "sentence",
    [
        "No pleural effusion.",
        "No evidence of pneumothorax.",
        "Pleural effusion is not seen.",
        "Negative for acute fracture.",
        "Without evidence of free air.",
        "There is no focal consolidation.",
    ],
)
def test_negation_rephrase_changes_form_and_keeps_finding(sentence: str) -> None:
    finding = re.sub(
        r"^(No evidence of|No|Negative for|Without evidence of|There is no) |"
        r" is not seen\.$|\.$",
        "",
        sentence,
    ).lower()
    forms = set()
    for seed in range(20):
        out = perturb_text(sentence, "negation_rephrase", 5, seed=seed)
        assert out != sentence
        assert finding in out.lower()
        assert out[0].isupper() and out.endswith(".")
        forms.add(out)
    assert len(forms) == len(NEGATION_FORMS) - 1  # every other form is reachable


def test_negation_agreement_and_scope() -> None:
    outs = {
        perturb_text("No pleural effusions.", "negation_rephrase", 5, seed=s) for s in range(30)
    }
    assert "Pleural effusions are not seen." in outs
    assert "There are no pleural effusions." in outs
    # A negation inside a longer clause is not a whole negated clause: left alone.
    text = "The lungs are clear without consolidation, but there is no effusion either way."
    assert perturb_text(text, "negation_rephrase", 5, seed=0) == text


def test_section_headers_renamed_dropped_and_added(reports: tuple[str, ...]) -> None:
    report = reports[0]
    outputs = {perturb_text(report, "section_headers", 5, seed=s) for s in range(30)}
    assert any("FINDINGS:" not in out for out in outputs)
    assert any("CONCLUSION:" in out or "SUMMARY:" in out or "OPINION:" in out for out in outputs)
    plain = reports[1]
    added = perturb_text(plain, "section_headers", 5, seed=0)
    assert added.startswith("FINDINGS: ")
    assert "IMPRESSION: Degenerative changes" in added


def test_sentence_order_keeps_sentences_and_headers(reports: tuple[str, ...]) -> None:
    report = reports[5]
    out = perturb_text(report, "sentence_order", 5, seed=2)
    assert out != report and len(out) == len(report)
    assert sorted(_sentences(out)) == sorted(_sentences(report))
    for header in ("COMPARISON:", "TECHNIQUE:", "FINDINGS:", "IMPRESSION:"):
        assert out.index(header) == report.index(header)


# ---------------------------------------------------------------- surface noise


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.:])\s+", text) if s]


def test_sentence_order_moves_more_sentences(reports: tuple[str, ...]) -> None:
    for report in reports:
        original = _sentences(report)
        moved = []
        for severity in range(1, 6):
            out = _sentences(perturb_text(report, "sentence_order", severity, seed=4))
            assert sorted(out) == sorted(original)
            moved.append(sum(a != b for a, b in zip(out, original, strict=True)))
        assert moved[0] >= 2 and moved == sorted(moved), moved


def test_typos_change_few_characters(reports: tuple[str, ...]) -> None:
    report = reports[2]
    out = perturb_text(report, "typos", 5, seed=1)
    assert out != report
    assert abs(len(out) - len(report)) <= len(report.split())
    assert len(out.split()) == len(report.split())


def test_word_dropout_removes_words(reports: tuple[str, ...]) -> None:
    report = reports[4]
    words = len(report.split())
    out = perturb_text(report, "word_dropout", 5, seed=1)
    assert 0.6 * words <= len(out.split()) < words
    assert "  " not in out


def test_punctuation_case() -> None:
    text = "The heart is normal. Lungs are clear, no effusion; CT pending."
    out = perturb_text(text, "punctuation_case", 5, seed=0)
    assert out == "the heart is normal lungs are clear no effusion CT pending"


def test_number_format_rewrites() -> None:
    seen = {perturb_text("A 2.5 cm nodule.", "number_format", 5, seed=s) for s in range(20)}
    assert seen == {"A 25 mm nodule.", "A 2.5cm nodule.", "A 2.50 cm nodule."}
    assert perturb_text("Two small nodules.", "number_format", 5, seed=0) == "2 small nodules."
    assert perturb_text("3 nodules, 4 mm.", "number_format", 5, seed=4).startswith("Three")
    assert perturb_text("T2-weighted 3D images.", "number_format", 5, seed=0) == (
        "T2-weighted 3D images."
    )
