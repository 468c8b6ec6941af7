"""Question-answer pairs from a study's ground truth (site-independent wording).

Closed questions are yes/no, open ones ask for a side, region, modality, organ, plane, count,
size or the abnormality. Answers are lowercase and normalised; question types follow VQA-RAD's
codes (PRES, ABN, MODALITY, ORGAN, PLANE, POS, COUNT, SIZE). Which closed questions are asked is
chosen so that yes and no are roughly balanced over a cohort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from robust_mmr_pipeline.sources.answers import normalize_answer
from robust_mmr_pipeline.sources.synthrad.catalog import (
    COUNT_WORDS,
    FAMILIES,
    FAMILY_FINDINGS,
    FINDING_INDEX,
    FINDING_NAMES,
    FINDINGS,
    MODALITIES,
)
from robust_mmr_pipeline.sources.synthrad.styles import TERMS

_MODALITY_WORDS = {"x-ray": "an X-ray", "ct": "a CT scan", "mri": "an MRI"}
_PRESENCE = ("Is there {a}{term}?", "Is {a}{term} present?", "Does the image show {a}{term}?")
_UNCOUNTABLE = ("cardiomegaly", "ascites")
_FAMILY_CHECK = (
    ("Is the heart enlarged?", "cardiomegaly", "SIZE"),
    ("Is there bleeding in the brain?", "haemorrhage", "PRES"),
    ("Is there free fluid in the abdomen?", "ascites", "PRES"),
)


def _pick(options: Sequence[str], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]


def _article(term: str) -> str:
    return "an" if term[0] in "aeiou" else "a"


def _term(finding: str, plural: bool = False) -> str:
    return TERMS[finding][0][1 if plural else 0]


def _closed(question: str, yes: bool, qtype: str) -> dict[str, str]:
    return {
        "question": question,
        "answer": "yes" if yes else "no",
        "answer_type": "closed",
        "question_type": qtype,
    }


def _open(question: str, answer: str, qtype: str) -> dict[str, str]:
    return {
        "question": question,
        # The project's normaliser, so SynthRad answers match the published sets' vocabulary.
        "answer": normalize_answer(answer),
        "answer_type": "open",
        "question_type": qtype,
    }


def write_qa(study: Mapping[str, Any], u: Sequence[float]) -> list[dict[str, str]]:
    """QA records for ``study`` (ground-truth dict); ``u``: 16 uniforms in [0, 1)."""
    family = FAMILIES.index(study["family"])
    findings = study["findings"]
    present = {f["type"] for f in findings}
    absent = [FINDING_NAMES[t] for t in FAMILY_FINDINGS[family] if FINDING_NAMES[t] not in present]
    qa: list[dict[str, str]] = []

    def presence(finding: str, v: float) -> str:
        term = _term(finding)
        article = "" if finding in _UNCOUNTABLE else _article(term) + " "
        return _pick(_PRESENCE, v).format(a=article, term=term)

    if findings:
        qa.append(_closed(presence(findings[0]["type"], u[10]), True, "PRES"))
        # Asked only sometimes so that yes and no stay roughly balanced.
        if absent and u[11] < 0.6:
            qa.append(_closed(presence(_pick(absent, u[12]), u[10]), False, "PRES"))
        if u[13] < 0.5:
            qa.append(_closed("Is this study normal?", False, "ABN"))
        else:
            qa.append(_closed("Is there an abnormality in this image?", True, "ABN"))
    else:
        qa.append(_closed(presence(_pick(absent, u[12]), u[10]), False, "PRES"))
        qa.append(
            _closed(
                _pick(("Is this study normal?", "Is this image unremarkable?"), u[13]), True, "ABN"
            )
        )

    modality = study["modality"]
    asked = modality if u[14] < 0.5 else _pick([m for m in MODALITIES if m != modality], u[15])
    qa.append(_closed(f"Is this {_MODALITY_WORDS[asked]}?", asked == modality, "MODALITY"))
    qa.append(
        _open(
            _pick(("What imaging modality was used?", "What kind of scan is this?"), u[11]),
            modality,
            "MODALITY",
        )
    )
    qa.append(
        _open(
            _pick(("What part of the body is shown?", "Which body region is imaged?"), u[12]),
            study["organ"],
            "ORGAN",
        )
    )
    qa.append(_open("In which plane is this image taken?", study["plane"], "PLANE"))
    question, finding, qtype = _FAMILY_CHECK[family]
    qa.append(_closed(question, finding in present, qtype))

    if not findings:
        qa.append(_open("What abnormality is seen?", "none", "ABN"))
        return qa
    primary = findings[0]
    spec = FINDINGS[FINDING_INDEX[primary["type"]]]
    term = _term(primary["type"])
    qa.append(
        _open(
            _pick(("What abnormality is seen?", "What is the main finding?"), u[13]),
            spec.words,
            "ABN",
        )
    )
    if primary["side"] is not None:
        qa.append(_open(f"Which side is the {term} on?", primary["side"], "POS"))
    if primary["region"] is not None:
        qa.append(
            _open(
                _pick((f"Where is the {term} located?", f"In which region is the {term}?"), u[14]),
                primary["region"],
                "POS",
            )
        )
    if len(spec.count_probs) > 1:
        qa.append(
            _open(
                f"How many {_term(primary['type'], plural=True)} are there?",
                COUNT_WORDS[primary["count"]],
                "COUNT",
            )
        )
    if spec.sizes[0] == "mild":
        size_question = f"How severe is the {term}?"
    elif primary["type"] == "ascites":
        size_question = f"How much {term} is there?"
    else:
        size_question = _pick(
            (f"How large is the {term}?", f"What is the size of the {term}?"), u[15]
        )
    qa.append(_open(size_question, primary["size"], "SIZE"))
    return qa
