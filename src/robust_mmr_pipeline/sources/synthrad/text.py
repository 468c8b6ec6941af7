"""Reports and captions written from a study's ground truth in a site's reporting style.

Content (which findings, sides, sizes, pertinent negatives) always comes from the ground truth,
so image and text agree; the style changes only the surface: section headers, synonyms,
spelling, abbreviations, negation phrasing, verbosity and case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from robust_mmr_pipeline.sources.synthrad.catalog import FAMILIES, FAMILY_FINDINGS, FINDING_NAMES
from robust_mmr_pipeline.sources.synthrad.styles import (
    REPORT_STYLES,
    TERMS,
    ReportStyle,
    cap_first,
    surface,
)

_FILLERS = re.compile(r"(?<![^;] )\b(There (is|are) (an? )?|A (?=\d))", re.IGNORECASE)
NEGATION_CUES = re.compile(r"\b(no|not|neg|negative|without|w/o)\b", re.IGNORECASE)

_SYSTEM = ("cardiopulmonary", "intracranial", "abdominal")
_EXAMS = (
    ("Chest radiograph, PA view.", "PA chest radiograph."),
    ("CT head without contrast.", "Non-contrast CT of the head."),
    ("CT abdomen with intravenous contrast.", "Contrast-enhanced CT of the abdomen."),
    ("MRI abdomen, axial T2-weighted images.", "T2-weighted MRI of the abdomen."),
)
_CAPTION_EXAMS = (
    ("chest radiograph", "PA chest X-ray"),
    ("axial CT of the head", "non-contrast head CT"),
    ("axial CT of the abdomen", "contrast-enhanced abdominal CT"),
    ("axial T2-weighted MRI of the abdomen", "abdominal MRI"),
)
_NORMAL_STATEMENTS: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...] = (
    (
        ("The lungs are clear.", ("nodule", "effusion", "pneumothorax")),
        ("Heart size is normal.", ("cardiomegaly",)),
        ("The mediastinal contours are within normal limits.", ()),
        ("The costophrenic angles are sharp.", ("effusion",)),
        ("The osseous structures are intact.", ()),
    ),
    (
        ("Grey-white matter differentiation is preserved.", ("infarct",)),
        ("The ventricles are normal in size and configuration.", ()),
        ("The basal cisterns are patent.", ()),
        ("The calvarium is intact.", ()),
    ),
    (
        ("The liver is normal in size and {signal}.", ("liver_lesion",)),
        ("The kidneys are normal in size and appearance.", ("kidney_stone",)),
        ("The spleen is unremarkable.", ()),
        ("The visualised bowel is unremarkable.", ()),
        ("The aorta is normal in calibre.", ()),
    ),
)
_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}
_UNCOUNTABLE = ("cardiomegaly", "ascites")


def _size_word(size: str) -> str:
    return "medium-sized" if size == "medium" else size


def _pick(options: Sequence[str], u: float) -> str:
    return options[min(int(u * len(options)), len(options) - 1)]


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _count_word(n: int) -> str:
    return ("zero", "one", "two", "three", "four")[n] if n < 5 else str(n)


def _term(style: ReportStyle, finding: str, u: float, plural: bool = False) -> str:
    options = TERMS[finding]
    # Each style mostly uses its own preferred synonym; sometimes another one.
    entry = options[style.term_index] if u < 0.75 else _pick(options, (u - 0.75) * 4)
    return entry[1] if plural else entry[0]


def _positive(
    f: Mapping[str, Any], modality: str, term: str, terms: str, u: float, ctr: float | None
) -> str:
    """One sentence describing finding ``f`` (British, full words)."""
    kind, side, region, size = f["type"], f["side"], f["region"], _size_word(f["size"])
    mm, count = round(f["size_mm"] or 0), f["count"]
    if kind == "nodule":
        if count > 1:
            return _pick(
                (
                    f"{cap_first(_count_word(count))} {terms} in the {side} {region}, "
                    f"the largest measuring {mm} mm.",
                    f"There are {_count_word(count)} {terms} in the {side} {region}, "
                    f"up to {mm} mm.",
                ),
                u,
            )
        return _pick(
            (
                f"There is a {mm} mm {term} in the {side} {region}.",
                f"{cap_first(size)} {term} in the {side} {region}, measuring {mm} mm.",
                f"A {mm} mm {term} is seen in the {side} {region}.",
            ),
            u,
        )
    if kind == "effusion":
        if side == "bilateral":
            return _pick(
                (f"{cap_first(size)} bilateral {terms}.", f"There are {size} bilateral {terms}."), u
            )
        return _pick(
            (
                f"There is {_a(size)} {side} {term} with blunting of the costophrenic angle.",
                f"{cap_first(size)} {side} {term} at the {region}.",
            ),
            u,
        )
    if kind == "cardiomegaly":
        ratio = f"{ctr:.2f}" if ctr is not None else "increased"
        return _pick(
            (
                f"The heart is {_ADVERB[size]} enlarged (cardiothoracic ratio {ratio}).",
                f"{cap_first(size)} {term}.",
                f"{cap_first(size)} {term}, cardiothoracic ratio {ratio}.",
            ),
            u,
        )
    if kind == "pneumothorax":
        return _pick(
            (
                f"{cap_first(size)} {side} {term} with a visible pleural edge.",
                f"There is {_a(size)} {side} {term}.",
            ),
            u,
        )
    if kind == "haemorrhage":
        return _pick(
            (
                f"There is a {mm} mm hyperdense {term} in the {side} {region} with "
                "surrounding oedema.",
                f"{cap_first(size)} {term} in the {side} {region}, measuring {mm} mm.",
            ),
            u,
        )
    if kind == "infarct":
        return _pick(
            (
                f"Area of low attenuation in the {side} {region} in keeping with "
                f"{_a(size)} {term}.",
                f"{cap_first(size)} {term} in the {side} {region}.",
                f"Loss of grey-white matter differentiation in the {side} {region} "
                f"consistent with {_a(size)} {term}.",
            ),
            u,
        )
    if kind == "liver_lesion":
        look = "T2 hyperintense" if modality == "mri" else "hypodense"
        if count > 1:
            return (
                f"{cap_first(_count_word(count))} {look} {terms} in the {region} of the liver, "
                f"the largest {mm} mm."
            )
        return _pick(
            (
                f"There is a {mm} mm {look} {term} in the {region} of the liver.",
                f"{cap_first(look)} {term} in the {region} of the liver measuring {mm} mm.",
            ),
            u,
        )
    if kind == "kidney_stone":
        if count > 1:
            return f"{cap_first(_count_word(count))} {terms} in the {side} kidney, up to {mm} mm."
        return _pick(
            (
                f"There is a {mm} mm {term} in the {side} kidney.",
                f"{cap_first(side)} {term} measuring {mm} mm in the {region}.",
            ),
            u,
        )
    where = (
        "predominantly perihepatic"
        if region == "perihepatic"
        else "distributed throughout the abdomen"
    )
    return _pick(
        (
            f"{cap_first(size)} volume {term}, {where}.",
            f"There is {_a(size)} amount of {term}, {where}.",
        ),
        u,
    )


def short_phrase(f: Mapping[str, Any], term: str, terms: str) -> str:
    """A noun phrase for impressions and captions, e.g. 'moderate left pleural effusion'."""
    kind, side, region, count = f["type"], f["side"], f["region"], f["count"]
    size = _size_word(f["size"])
    many = count > 1
    noun = terms if many else term
    lead = f"{_count_word(count)} " if many else ""
    if kind == "nodule":
        return f"{lead}{side} {region} {noun}"
    if kind == "effusion":
        return f"{size} bilateral {terms}" if side == "bilateral" else f"{size} {side} {term}"
    if kind == "cardiomegaly":
        return f"{size} {term}"
    if kind == "pneumothorax":
        return f"{size} {side} {term}"
    if kind in ("haemorrhage", "infarct"):
        return f"{side} {region} {term}"
    if kind == "liver_lesion":
        return f"{lead}{noun} in the {region} of the liver"
    if kind == "kidney_stone":
        return f"{lead}{side} {noun}"
    return f"{size} {region} {term}" if region == "perihepatic" else f"{size} volume {term}"


def write_report(study: Mapping[str, Any], style: ReportStyle, u: Sequence[float]) -> str:
    """The report of ``study`` (ground-truth dict) in ``style``; ``u``: 16 uniforms in [0, 1)."""
    family, modality = FAMILIES.index(study["family"]), study["modality"]
    findings = study["findings"]
    present = {f["type"] for f in findings}
    ctr = study.get("measurements", {}).get("ctr")

    positives = []
    for k, f in enumerate(findings):
        term = _term(style, f["type"], u[1 + k])
        plural = _term(style, f["type"], u[1 + k], plural=True)
        positives.append(_positive(f, modality, term, plural, u[3 + k], ctr))

    signal = "signal" if modality == "mri" else "attenuation"
    normal = [
        text.format(signal=signal)
        for text, spoils in _NORMAL_STATEMENTS[family]
        if not present.intersection(spoils)
    ]
    start = int(u[5] * len(normal)) if normal else 0
    normal = (normal[start:] + normal[:start])[: style.verbosity]

    absent = [FINDING_NAMES[t] for t in FAMILY_FINDINGS[family] if FINDING_NAMES[t] not in present]
    n_neg = max(style.negatives, 1) if not findings else style.negatives
    start = int(u[7] * len(absent)) if absent else 0
    absent = (absent[start:] + absent[:start])[:n_neg]
    negatives = [
        _pick(style.negation, (u[6] + 0.37 * i) % 1.0).format(term=TERMS[a][0][0])
        for i, a in enumerate(absent)
    ]

    if findings:
        items = [
            short_phrase(
                f, _term(style, f["type"], u[1 + k]), _term(style, f["type"], u[1 + k], plural=True)
            )
            for k, f in enumerate(findings)
        ]
        if style.sections is not None and style.sections[0] and len(items) > 1:
            impression = " ".join(f"{i + 1}. {cap_first(item)}." for i, item in enumerate(items))
        else:
            impression = "; ".join(items)
            impression = (impression if style.impression_prefix else cap_first(impression)) + "."
    else:
        impression = _pick(style.normal_impression, u[8]).format(system=_SYSTEM[family])

    exam = _pick(_EXAMS[family + (1 if modality == "mri" else 0)], u[0])
    body = style.joiner.join(positives + normal + negatives)
    if style.sections is None:
        text = f"{body}{style.joiner}{style.impression_prefix}{impression}"
        if style.lowercase:
            text = f"{exam}{style.joiner}{text}"
    else:
        head_exam, head_findings, head_impression = style.sections
        parts = [f"{head_exam} {exam}"] if head_exam else []
        parts += [f"{head_findings} {body}", f"{head_impression} {impression}"]
        text = "\n".join(parts)
    if style.joiner == "; ":
        # Telegraphic: no sentence periods and no "there is a ..." fillers.
        text = _FILLERS.sub("", text.replace(".; ", "; ").rstrip("."))
    return surface(text, style)


def write_caption(study: Mapping[str, Any], style: ReportStyle, u: Sequence[float]) -> str:
    """A one-line caption (shorter than the report) naming the exam and the findings."""
    family, modality = FAMILIES.index(study["family"]), study["modality"]
    exam = _pick(_CAPTION_EXAMS[family + (1 if modality == "mri" else 0)], u[9])
    if study["findings"]:
        phrases = [
            short_phrase(
                f, _term(style, f["type"], u[1 + k]), _term(style, f["type"], u[1 + k], plural=True)
            )
            for k, f in enumerate(study["findings"])
        ]
        first = phrases[0]
        bare = study["findings"][0]["type"] in _UNCOUNTABLE or first.split()[0] in ("two", "three")
        phrase = " and ".join([first if bare else _a(first), *phrases[1:]])
        text = _pick(style.caption, u[10]).format(
            exam=exam, Exam=cap_first(exam), phrase=phrase, Phrase=cap_first(phrase)
        )
    else:
        text = _pick(style.caption_normal, u[10]).format(exam=exam, Exam=cap_first(exam))
    return surface(text, style)


@lru_cache(maxsize=1)
def mention_forms() -> dict[str, tuple[str, ...]]:
    """Every surface form (synonyms, spellings, abbreviations) of each finding, lowercase."""
    out: dict[str, tuple[str, ...]] = {}
    for name in FINDING_NAMES:
        forms = set()
        for single, plural in TERMS[name]:
            for term in (single, plural):
                for style in REPORT_STYLES.values():
                    forms.add(surface(term, style).lower())
        out[name] = tuple(sorted(forms, key=len, reverse=True))
    return out


def finding_mentioned(text: str, finding: str, negated: bool | None = None) -> bool:
    """Whether ``text`` mentions ``finding``; ``negated`` restricts to clauses with (True) or
    without (False) a negation cue. Clauses are split at '.', ';' and line breaks."""
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mention_forms()[finding])) + r")\b")
    for clause in re.split(r"[.;\n]", text.lower()):
        if pattern.search(clause) and (
            negated is None or bool(NEGATION_CUES.search(clause)) == negated
        ):
            return True
    return False
