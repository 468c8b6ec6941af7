"""What SynthRad can depict: study families, modalities, findings and their attribute values.

Image orientation follows radiological convention: the patient's right is on the image left
(``u < 0``) for both the PA chest projection and the axial slices, and anterior is at the top.
Canonical finding names use underscores (``liver_lesion``); text and QA answers use spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES: tuple[str, ...] = ("chest", "head", "abdomen")
MODALITIES: tuple[str, ...] = ("x-ray", "ct", "mri")
NORMAL_LABEL = "normal"

# Family index -> organ written to the images table and used as the ORGAN answer.
FAMILY_ORGAN: tuple[str, ...] = ("chest", "head", "abdomen")
# Plane answer per family: the chest family is a PA projection, the others axial slices.
FAMILY_PLANE: tuple[str, ...] = ("pa", "axial", "axial")
# Field of view (mm across the image) per family: converts rendered radii to reported sizes.
FIELD_OF_VIEW_MM: tuple[float, ...] = (380.0, 220.0, 400.0)

CHEST, HEAD, ABDOMEN = 0, 1, 2
XRAY, CT, MRI = 0, 1, 2


@dataclass(frozen=True)
class FindingSpec:
    """One finding type and the attribute values it can take (empty tuple: not applicable)."""

    name: str
    family: int
    sides: tuple[str, ...]
    regions: tuple[str, ...]
    sizes: tuple[str, ...]
    size_mm: tuple[tuple[float, float], ...] | None
    count_probs: tuple[float, ...]

    @property
    def words(self) -> str:
        """The finding as plain words (the ABN answer)."""
        return self.name.replace("_", " ")


_LOBES = ("frontal lobe", "temporal lobe", "parietal lobe", "occipital lobe")

FINDINGS: tuple[FindingSpec, ...] = (
    FindingSpec(
        "nodule",
        CHEST,
        ("right", "left"),
        ("upper zone", "middle zone", "lower zone"),
        ("small", "medium", "large"),
        ((8, 12), (13, 20), (21, 32)),
        (0.6, 0.25, 0.15),
    ),
    FindingSpec(
        "effusion",
        CHEST,
        ("right", "left", "bilateral"),
        ("lung base",),
        ("small", "moderate", "large"),
        None,
        (1.0,),
    ),
    FindingSpec("cardiomegaly", CHEST, (), (), ("mild", "moderate", "severe"), None, (1.0,)),
    FindingSpec(
        "pneumothorax",
        CHEST,
        ("right", "left"),
        ("apicolateral",),
        ("small", "moderate", "large"),
        None,
        (1.0,),
    ),
    FindingSpec(
        "haemorrhage",
        HEAD,
        ("right", "left"),
        _LOBES,
        ("small", "medium", "large"),
        ((10, 16), (17, 26), (27, 38)),
        (1.0,),
    ),
    FindingSpec(
        "infarct",
        HEAD,
        ("right", "left"),
        _LOBES,
        ("small", "medium", "large"),
        ((14, 22), (23, 34), (35, 48)),
        (1.0,),
    ),
    FindingSpec(
        "liver_lesion",
        ABDOMEN,
        (),
        ("right lobe", "left lobe"),
        ("small", "medium", "large"),
        ((9, 15), (16, 26), (27, 42)),
        (0.6, 0.25, 0.15),
    ),
    FindingSpec(
        "kidney_stone",
        ABDOMEN,
        ("right", "left"),
        ("renal pelvis",),
        ("small", "medium", "large"),
        ((6, 9), (10, 14), (15, 20)),
        (0.7, 0.3),
    ),
    FindingSpec(
        "ascites",
        ABDOMEN,
        (),
        ("perihepatic", "diffuse"),
        ("small", "moderate", "large"),
        None,
        (1.0,),
    ),
)
FINDING_NAMES: tuple[str, ...] = tuple(spec.name for spec in FINDINGS)
FINDING_INDEX: dict[str, int] = {name: i for i, name in enumerate(FINDING_NAMES)}
FAMILY_FINDINGS: tuple[tuple[int, ...], ...] = tuple(
    tuple(i for i, spec in enumerate(FINDINGS) if spec.family == fam)
    for fam in range(len(FAMILIES))
)
# Classification classes: every finding plus the shared "normal" class.
LABELS: tuple[str, ...] = (NORMAL_LABEL, *FINDING_NAMES)
COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three")
