"""Image and text perturbations with calibrated severities, and their registry.

Plain torch / Python (no Kedro). Used by evaluation (perturbed test sets), domain_split
(manifests naming perturbation + severity + seed) and training (Robust-MMR views, on device
inside the step).

- ``perturb_image(images, name, severity, generator=None, modality=None)``: batched,
  vectorised image corruptions (``image`` module, severity tables in its docstring).
- ``perturb_text(text, name, severity, seed)``: string-level reporting-style shifts
  (``text`` module).
- ``perturb_token_ids(input_ids, severity, special_tokens_mask, vocab_size, generator=None,
  kinds=...)``: length-preserving token perturbations for training (``tokens`` module).
- ``IMAGE_PERTURBATIONS`` / ``TEXT_PERTURBATIONS``: name -> ``Perturbation`` (callable +
  description, severity table, convention, modalities); ``list_image_perturbations()``,
  ``list_text_perturbations()``; ``parse_perturbation_specs`` reads config lists.
"""

from robust_mmr_pipeline.perturb.base import (
    SEVERITIES,
    Perturbation,
    PerturbationRegistry,
    normalize_modality,
)
from robust_mmr_pipeline.perturb.image import (
    IMAGE_PERTURBATIONS,
    list_image_perturbations,
    perturb_image,
)
from robust_mmr_pipeline.perturb.registry import (
    PerturbationSpec,
    get_perturbation,
    list_perturbations,
    parse_perturbation_spec,
    parse_perturbation_specs,
)
from robust_mmr_pipeline.perturb.text import (
    TEXT_PERTURBATIONS,
    list_text_perturbations,
    perturb_text,
)
from robust_mmr_pipeline.perturb.tokens import (
    DEFAULT_TOKEN_KINDS,
    TOKEN_FRACTIONS,
    TOKEN_KINDS,
    perturb_token_ids,
)

__all__ = [
    "DEFAULT_TOKEN_KINDS",
    "IMAGE_PERTURBATIONS",
    "SEVERITIES",
    "TEXT_PERTURBATIONS",
    "TOKEN_FRACTIONS",
    "TOKEN_KINDS",
    "Perturbation",
    "PerturbationRegistry",
    "PerturbationSpec",
    "get_perturbation",
    "list_image_perturbations",
    "list_perturbations",
    "list_text_perturbations",
    "normalize_modality",
    "parse_perturbation_spec",
    "parse_perturbation_specs",
    "perturb_image",
    "perturb_text",
    "perturb_token_ids",
]
