"""Site reporting styles and their vocabulary: headers, synonyms per finding, spelling,
abbreviation levels, negation phrasing, verbosity and case, and the surface rules that apply
a style's spelling, abbreviations and case to written text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


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


def cap_first(text: str) -> str:
    """``text`` with its first character upper-cased."""
    return text[:1].upper() + text[1:]


def surface(text: str, style: ReportStyle) -> str:
    """Apply spelling, abbreviations and case of ``style``."""
    for pattern, table in _surface_rules(style.name):
        text = pattern.sub(lambda m, table=table: _same_case(m.group(0), table), text)
    return text.lower() if style.lowercase else text


def _same_case(found: str, table: dict[str, str]) -> str:
    out = table[found.lower()]
    return cap_first(out) if found[:1].isupper() else out


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
