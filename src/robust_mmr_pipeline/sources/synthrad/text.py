"""Reports and captions written from a study's ground truth in a site's reporting style.

Content (which findings, sides, sizes, pertinent negatives) always comes from the ground truth,
so image and text agree; the style changes only the surface: section headers, synonyms,
spelling, abbreviations, negation phrasing, verbosity and case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from robust_mmr_pipeline.sources.synthrad.catalog import FAMILIES, FAMILY_FINDINGS, FINDING_NAMES


@dataclass(frozen=True)
class ReportStyle:
    """How one site writes. ``sections``: (exam, findings, impression) headers or None (prose).

    ``term_index``: preferred synonym per finding; ``abbreviation``: 0 none, 1 sides, 2 heavy.
    """

    name: str
    sections: tuple[str, str, str] | None
    american: bool
    abbreviation: int
    lowercase: bool
    verbosity: int
    negatives: int
    negation: tuple[str, ...]
    joiner: str
    impression_prefix: str
    normal_impression: tuple[str, ...]
    caption: tuple[str, ...]
    caption_normal: tuple[str, ...]
    term_index: int


REPORT_STYLES: dict[str, ReportStyle] = {
    style.name: style
    for style in (
        ReportStyle(
            name="structured",
            sections=("EXAMINATION:", "FINDINGS:", "IMPRESSION:"),
            american=False,
            abbreviation=0,
            lowercase=False,
            verbosity=4,
            negatives=3,
            negation=("No evidence of {term}.", "No {term} is identified."),
            joiner=" ",
            impression_prefix="",
            normal_impression=("No acute {system} abnormality.",),
            caption=("{Exam} showing {phrase}.", "{Exam} demonstrating {phrase}."),
            caption_normal=("Normal {exam}.", "{Exam} with no acute abnormality."),
            term_index=0,
        ),
        ReportStyle(
            name="narrative",
            sections=None,
            american=True,
            abbreviation=0,
            lowercase=False,
            verbosity=3,
            negatives=2,
            negation=("There is no {term}.", "No {term} is seen."),
            joiner=" ",
            impression_prefix="In summary, ",
            normal_impression=(
                "there is no acute {system} abnormality.",
                "this is a normal study.",
            ),
            caption=("{Phrase} on {exam}.", "{Exam} revealing {phrase}."),
            caption_normal=("Unremarkable {exam}.",),
            term_index=1,
        ),
        ReportStyle(
            name="terse",
            sections=("", "Findings:", "Impression:"),
            american=False,
            abbreviation=1,
            lowercase=False,
            verbosity=1,
            negatives=2,
            negation=("No {term}.",),
            joiner=" ",
            impression_prefix="",
            normal_impression=("Normal study.", "NAD."),
            caption=("{Exam}: {phrase}.",),
            caption_normal=("{Exam}: normal.",),
            term_index=2,
        ),
        ReportStyle(
            name="telegraphic",
            sections=None,
            american=True,
            abbreviation=2,
            lowercase=True,
            verbosity=0,
            negatives=2,
            negation=("no {term}", "neg for {term}"),
            joiner="; ",
            impression_prefix="imp: ",
            normal_impression=("nad", "no acute findings"),
            caption=("{exam} - {phrase}",),
            caption_normal=("{exam} - nad",),
            term_index=3,
        ),
    )
}
STYLE_NAMES: tuple[str, ...] = tuple(REPORT_STYLES)

# (singular, plural) synonyms per finding, British spelling; styles prefer different entries.
TERMS: dict[str, tuple[tuple[str, str], ...]] = {
    "nodule": (
        ("nodule", "nodules"),
        ("pulmonary nodule", "pulmonary nodules"),
        ("nodular opacity", "nodular opacities"),
        ("rounded opacity", "rounded opacities"),
    ),
    "effusion": (
        ("pleural effusion", "pleural effusions"),
        ("effusion", "effusions"),
        ("pleural fluid collection", "pleural fluid collections"),
        ("pleural effusion", "pleural effusions"),
    ),
    "cardiomegaly": (
        ("cardiomegaly", "cardiomegaly"),
        ("cardiac enlargement", "cardiac enlargement"),
        ("enlarged cardiac silhouette", "enlarged cardiac silhouette"),
        ("cardiomegaly", "cardiomegaly"),
    ),
    "pneumothorax": (
        ("pneumothorax", "pneumothoraces"),
        ("pneumothorax", "pneumothoraces"),
        ("pleural air collection", "pleural air collections"),
        ("pneumothorax", "pneumothoraces"),
    ),
    "haemorrhage": (
        ("haemorrhage", "haemorrhages"),
        ("intraparenchymal haemorrhage", "intraparenchymal haemorrhages"),
        ("haematoma", "haematomas"),
        ("intraparenchymal haemorrhage", "intraparenchymal haemorrhages"),
    ),
    "infarct": (
        ("infarct", "infarcts"),
        ("infarction", "infarctions"),
        ("ischaemic infarct", "ischaemic infarcts"),
        ("infarct", "infarcts"),
    ),
    "liver_lesion": (
        ("liver lesion", "liver lesions"),
        ("hepatic lesion", "hepatic lesions"),
        ("focal liver lesion", "focal liver lesions"),
        ("focal liver lesion", "focal liver lesions"),
    ),
    "kidney_stone": (
        ("kidney stone", "kidney stones"),
        ("renal calculus", "renal calculi"),
        ("renal stone", "renal stones"),
        ("renal calculus", "renal calculi"),
    ),
    "ascites": (
        ("ascites", "ascites"),
        ("free fluid", "free fluid"),
        ("peritoneal fluid", "peritoneal fluid"),
        ("ascites", "ascites"),
    ),
}
_AMERICAN = (
    ("haemorrhage", "hemorrhage"),
    ("haematoma", "hematoma"),
    ("ischaemic", "ischemic"),
    ("oedema", "edema"),
    ("calibre", "caliber"),
    ("visualised", "visualized"),
    ("grey", "gray"),
    ("haem", "hem"),
)
# Longest first so phrases are replaced before their words.
_ABBREVIATIONS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("right", "R"), ("left", "L"), ("millimetres", "mm")),
    2: (
        ("cardiothoracic ratio", "ctr"),
        ("intraparenchymal hemorrhage", "iph"),
        ("focal liver lesions", "flls"),
        ("focal liver lesion", "fll"),
        ("pleural effusions", "effs"),
        ("pleural effusion", "eff"),
        ("pneumothorax", "ptx"),
        ("chest radiograph", "cxr"),
        ("hemorrhage", "hem"),
        ("calculi", "calcs"),
        ("calculus", "calc"),
        ("bilateral", "bilat"),
        ("upper zone", "uz"),
        ("middle zone", "mz"),
        ("lower zone", "lz"),
        ("without", "w/o"),
        ("with", "w/"),
        ("right", "rt"),
        ("left", "lt"),
        ("abdomen", "abd"),
    ),
}
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


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


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
                    f"{_cap(_count_word(count))} {terms} in the {side} {region}, "
                    f"the largest measuring {mm} mm.",
                    f"There are {_count_word(count)} {terms} in the {side} {region}, "
                    f"up to {mm} mm.",
                ),
                u,
            )
        return _pick(
            (
                f"There is a {mm} mm {term} in the {side} {region}.",
                f"{_cap(size)} {term} in the {side} {region}, measuring {mm} mm.",
                f"A {mm} mm {term} is seen in the {side} {region}.",
            ),
            u,
        )
    if kind == "effusion":
        if side == "bilateral":
            return _pick(
                (f"{_cap(size)} bilateral {terms}.", f"There are {size} bilateral {terms}."), u
            )
        return _pick(
            (
                f"There is {_a(size)} {side} {term} with blunting of the costophrenic angle.",
                f"{_cap(size)} {side} {term} at the {region}.",
            ),
            u,
        )
    if kind == "cardiomegaly":
        ratio = f"{ctr:.2f}" if ctr is not None else "increased"
        return _pick(
            (
                f"The heart is {_ADVERB[size]} enlarged (cardiothoracic ratio {ratio}).",
                f"{_cap(size)} {term}.",
                f"{_cap(size)} {term}, cardiothoracic ratio {ratio}.",
            ),
            u,
        )
    if kind == "pneumothorax":
        return _pick(
            (
                f"{_cap(size)} {side} {term} with a visible pleural edge.",
                f"There is {_a(size)} {side} {term}.",
            ),
            u,
        )
    if kind == "haemorrhage":
        return _pick(
            (
                f"There is a {mm} mm hyperdense {term} in the {side} {region} with "
                "surrounding oedema.",
                f"{_cap(size)} {term} in the {side} {region}, measuring {mm} mm.",
            ),
            u,
        )
    if kind == "infarct":
        return _pick(
            (
                f"Area of low attenuation in the {side} {region} in keeping with "
                f"{_a(size)} {term}.",
                f"{_cap(size)} {term} in the {side} {region}.",
                f"Loss of grey-white matter differentiation in the {side} {region} "
                f"consistent with {_a(size)} {term}.",
            ),
            u,
        )
    if kind == "liver_lesion":
        look = "T2 hyperintense" if modality == "mri" else "hypodense"
        if count > 1:
            return (
                f"{_cap(_count_word(count))} {look} {terms} in the {region} of the liver, "
                f"the largest {mm} mm."
            )
        return _pick(
            (
                f"There is a {mm} mm {look} {term} in the {region} of the liver.",
                f"{_cap(look)} {term} in the {region} of the liver measuring {mm} mm.",
            ),
            u,
        )
    if kind == "kidney_stone":
        if count > 1:
            return f"{_cap(_count_word(count))} {terms} in the {side} kidney, up to {mm} mm."
        return _pick(
            (
                f"There is a {mm} mm {term} in the {side} kidney.",
                f"{_cap(side)} {term} measuring {mm} mm in the {region}.",
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
            f"{_cap(size)} volume {term}, {where}.",
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


def _surface(text: str, style: ReportStyle) -> str:
    """Apply spelling, abbreviations and case of ``style``."""
    for pattern, table in _surface_rules(style.name):
        text = pattern.sub(lambda m, table=table: _same_case(m.group(0), table), text)
    return text.lower() if style.lowercase else text


def _same_case(found: str, table: dict[str, str]) -> str:
    out = table[found.lower()]
    return _cap(out) if found[:1].isupper() else out


@lru_cache(maxsize=16)
def _surface_rules(name: str) -> tuple[tuple[re.Pattern[str], dict[str, str]], ...]:
    """One compiled alternation per rewriting step (longest phrases first)."""
    style = REPORT_STYLES[name]
    steps = []
    if style.american:
        table = dict(_AMERICAN)
        steps.append((re.compile("|".join(map(re.escape, table)), re.IGNORECASE), table))
    if style.abbreviation:
        table = dict(_ABBREVIATIONS[style.abbreviation])
        words = sorted(table, key=len, reverse=True)
        steps.append(
            (re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE), table)
        )
    return tuple(steps)


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
            impression = " ".join(f"{i + 1}. {_cap(item)}." for i, item in enumerate(items))
        else:
            impression = "; ".join(items)
            impression = (impression if style.impression_prefix else _cap(impression)) + "."
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
    return _surface(text, style)


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
            exam=exam, Exam=_cap(exam), phrase=phrase, Phrase=_cap(phrase)
        )
    else:
        text = _pick(style.caption_normal, u[10]).format(exam=exam, Exam=_cap(exam))
    return _surface(text, style)


@lru_cache(maxsize=1)
def mention_forms() -> dict[str, tuple[str, ...]]:
    """Every surface form (synonyms, spellings, abbreviations) of each finding, lowercase."""
    out: dict[str, tuple[str, ...]] = {}
    for name in FINDING_NAMES:
        forms = set()
        for single, plural in TERMS[name]:
            for term in (single, plural):
                for style in REPORT_STYLES.values():
                    forms.add(_surface(term, style).lower())
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
