"""Radiology reporting-style vocabulary for the text perturbations (written for this project).

- ``SYNONYM_GROUPS``: phrases a radiologist would use interchangeably in the same slot. Verb
  forms are part of the phrase where the bare adjective would break grammar when swapped
  ("is enlarged" <-> "is increased in size"). A phrase belongs to one group only.
- ``HEADER_FAMILIES``: section headers and the names other sites use for the same section.
- ``NEGATION_FORMS``: the ways a report says a finding is absent; ``{x}`` is the finding and
  ``{be}`` its verb ("is" / "are").
"""

from __future__ import annotations

SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("opacity", "density", "shadow"),
    ("opacities", "densities", "shadows"),
    ("is enlarged", "is increased in size"),
    ("are enlarged", "are increased in size"),
    ("enlargement", "increase in size"),
    ("cardiomegaly", "enlarged heart", "enlarged cardiac silhouette"),
    ("pleural effusion", "pleural fluid collection"),
    ("pleural effusions", "pleural fluid collections"),
    ("atelectasis", "volume loss", "collapse"),
    ("consolidation", "airspace disease", "airspace opacification", "infiltrate"),
    ("is normal", "is unremarkable", "is within normal limits"),
    ("are normal", "are unremarkable", "are within normal limits"),
    ("mild", "slight", "minimal"),
    ("marked", "severe", "pronounced"),
    ("large", "sizable"),
    ("stable", "unchanged"),
    ("likely", "probably"),
    ("consistent with", "compatible with", "suggestive of", "in keeping with"),
    ("evidence of", "signs of"),
    ("demonstrates", "shows", "reveals"),
    ("seen", "identified", "visualized", "demonstrated", "noted"),
    ("heart size", "cardiac size", "size of the heart"),
    ("cardiac silhouette", "heart shadow", "cardiac shadow"),
    ("lungs", "lung fields"),
    ("hyperinflation", "hyperexpansion", "overinflation"),
    ("hyperinflated", "hyperexpanded", "overinflated"),
    ("costophrenic angle blunting", "blunting of the costophrenic angle"),
    ("widened mediastinum", "mediastinal widening"),
    ("pneumoperitoneum", "free intraperitoneal air", "free air"),
    ("vascular congestion", "vascular engorgement", "pulmonary venous congestion"),
    ("osseous structures", "bony structures", "bones"),
    ("soft tissues", "soft tissue structures"),
    ("tortuous aorta", "unfolded aorta"),
    ("nodule", "nodular opacity"),
    ("degenerative changes", "spondylotic changes"),
    ("prior study", "previous study", "prior examination", "previous examination"),
    ("compared with", "compared to", "in comparison with"),
    ("hemorrhage", "haemorrhage", "bleed"),
    ("edema", "oedema"),
    ("hematoma", "haematoma"),
    ("esophagus", "oesophagus"),
    ("tumor", "tumour"),
    ("anemia", "anaemia"),
    ("ischemia", "ischaemia"),
    ("calcification", "calcific density"),
    ("radiograph", "radiographic image", "film"),
)

HEADER_FAMILIES: dict[str, tuple[str, ...]] = {
    "findings": ("FINDINGS", "Findings", "OBSERVATIONS", "DESCRIPTION", "REPORT"),
    "impression": ("IMPRESSION", "Impression", "CONCLUSION", "SUMMARY", "OPINION"),
    "indication": ("INDICATION", "CLINICAL HISTORY", "HISTORY", "REASON FOR EXAM"),
    "comparison": ("COMPARISON", "Comparison", "PRIOR STUDIES"),
    "technique": ("TECHNIQUE", "Technique", "PROCEDURE", "EXAMINATION"),
}

NEGATION_FORMS: tuple[str, ...] = (
    "no {x}",
    "no evidence of {x}",
    "{x} {be} not seen",
    "negative for {x}",
    "without evidence of {x}",
    "there {be} no {x}",
)


def _check() -> None:
    seen: set[str] = set()
    for group in SYNONYM_GROUPS:
        if len(group) < 2:
            raise ValueError(f"synonym group {group} needs two phrases")
        for phrase in group:
            if phrase != phrase.lower() or phrase in seen:
                raise ValueError(f"synonym {phrase!r} is not lower case or listed twice")
            seen.add(phrase)
    family_of: dict[str, str] = {}
    for name, family in HEADER_FAMILIES.items():
        if len(set(family)) != len(family):
            raise ValueError(f"header family {name!r} repeats a header")
        for header in family:
            if family_of.setdefault(header.lower(), name) != name:
                raise ValueError(f"header {header!r} belongs to two families")


_check()
