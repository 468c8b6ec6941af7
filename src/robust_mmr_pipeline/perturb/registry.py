"""One place to look perturbations up by name and to read them from configs.

A config names perturbations as a list whose items are either a name (all five severities)
or a mapping::

    perturbations:
      - gaussian_noise                                   # severities 1..5
      - {name: jpeg, severities: [1, 3, 5]}
      - {name: typos, severity: 2}
      - {name: all, kind: image, modality: ct}           # every image corruption typical for CT

``parse_perturbation_specs`` validates names against ``IMAGE_PERTURBATIONS`` and
``TEXT_PERTURBATIONS`` (names are unique across the two), severities against 1..5, and raises
``ValueError`` with the known names when something does not match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from robust_mmr_pipeline.perturb.base import (
    SEVERITIES,
    Perturbation,
    PerturbationKind,
    check_int_severity,
)
from robust_mmr_pipeline.perturb.image import IMAGE_PERTURBATIONS, list_image_perturbations
from robust_mmr_pipeline.perturb.text import TEXT_PERTURBATIONS, list_text_perturbations

_SPEC_KEYS = frozenset({"name", "kind", "severity", "severities", "modality"})
_KINDS: tuple[PerturbationKind, ...] = ("image", "text")

_overlap = set(IMAGE_PERTURBATIONS) & set(TEXT_PERTURBATIONS)
if _overlap:
    raise RuntimeError(f"perturbation names used by both registries: {sorted(_overlap)}")


@dataclass(frozen=True)
class PerturbationSpec:
    """A validated config item: one perturbation and the severities to run it at."""

    name: str
    kind: PerturbationKind
    severities: tuple[int, ...] = SEVERITIES

    @property
    def entry(self) -> Perturbation:
        """The registry entry."""
        return get_perturbation(self.name, self.kind)

    def pairs(self) -> list[tuple[str, int]]:
        """``[(name, severity), ...]``, e.g. the cells of an evaluation grid."""
        return [(self.name, s) for s in self.severities]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, accepted back by ``parse_perturbation_specs``."""
        return {"name": self.name, "kind": self.kind, "severities": list(self.severities)}


def _known_names() -> str:
    return f"image: {', '.join(IMAGE_PERTURBATIONS)}; text: {', '.join(TEXT_PERTURBATIONS)}"


def get_perturbation(name: str, kind: PerturbationKind | None = None) -> Perturbation:
    """The registry entry called ``name`` (in the ``kind`` registry, or either)."""
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    registries = {"image": IMAGE_PERTURBATIONS, "text": TEXT_PERTURBATIONS}
    for registry_kind, registry in registries.items():
        if kind in (None, registry_kind) and name in registry:
            return registry[name]
    where = f"{kind} perturbation" if kind else "perturbation"
    raise ValueError(f"unknown {where} {name!r}; known {_known_names()}")


def list_perturbations(kind: PerturbationKind | None = None) -> list[str]:
    """All registered names (image first, then text), or those of one kind."""
    if kind == "image":
        return list_image_perturbations()
    if kind == "text":
        return list_text_perturbations()
    if kind is None:
        return list_image_perturbations() + list_text_perturbations()
    raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")


def _severities(item: Mapping[str, Any], where: str) -> tuple[int, ...]:
    if "severity" in item and "severities" in item:
        raise ValueError(f"{where}: give 'severity' or 'severities', not both")
    if "severity" in item:
        raw: Any = [item["severity"]]
    elif "severities" in item:
        raw = item["severities"]
    else:
        return SEVERITIES
    if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
        raise ValueError(f"{where}: severities must be a list of ints in 1..5, got {raw!r}")
    values = []
    for value in raw:
        try:
            values.append(check_int_severity(value, allow_zero=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    if not values or len(set(values)) != len(values):
        raise ValueError(f"{where}: severities must be distinct ints in 1..5, got {raw!r}")
    return tuple(values)


def parse_perturbation_spec(
    spec: str | Mapping[str, Any], kind: PerturbationKind | None = None
) -> list[PerturbationSpec]:
    """Validate one config item; ``name: all`` (with a kind) expands to several specs.

    Args:
        spec: a name, or a mapping with ``name`` and optionally ``kind``, ``severity`` (int)
            or ``severities`` (list), and ``modality`` (only with ``name: all``, image kind:
            keep the corruptions typical for that modality).
        kind: required kind for every item (``None``: either; the item's own ``kind`` key
            must agree).
    """
    item: Mapping[str, Any] = {"name": spec} if isinstance(spec, str) else spec
    if not isinstance(item, Mapping):
        raise ValueError(f"a perturbation spec is a name or a mapping, got {spec!r}")
    unknown = set(item) - _SPEC_KEYS
    if unknown:
        raise ValueError(
            f"perturbation spec {dict(item)!r}: unknown keys {sorted(unknown)}; "
            f"allowed: {sorted(_SPEC_KEYS)}"
        )
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"perturbation spec {dict(item)!r} needs a 'name' string")
    item_kind = item.get("kind", kind)
    if item_kind is not None and item_kind not in _KINDS:
        raise ValueError(f"perturbation spec {name!r}: kind must be one of {_KINDS}")
    if kind is not None and item_kind != kind:
        article = "an" if kind == "image" else "a"
        raise ValueError(f"perturbation spec {name!r}: expected {article} {kind} perturbation")
    severities = _severities(item, f"perturbation spec {name!r}")
    modality = item.get("modality")
    if name == "all":
        if item_kind is None:
            raise ValueError("perturbation spec 'all' needs a kind ('image' or 'text')")
        if modality is not None and item_kind != "image":
            raise ValueError("'modality' applies to image perturbations only")
        names = (
            list_image_perturbations(modality)
            if item_kind == "image"
            else list_text_perturbations()
        )
        return [PerturbationSpec(n, item_kind, severities) for n in names]
    if modality is not None:
        raise ValueError(f"perturbation spec {name!r}: 'modality' is only allowed with name 'all'")
    entry = get_perturbation(name, item_kind)
    return [PerturbationSpec(entry.name, entry.kind, severities)]


def parse_perturbation_specs(
    specs: str | Mapping[str, Any] | Iterable[str | Mapping[str, Any]] | None,
    kind: PerturbationKind | None = None,
) -> list[PerturbationSpec]:
    """Validate a config's perturbation list (or a single item) into ``PerturbationSpec`` s.

    ``None`` or an empty list gives ``[]``. A name may appear only once in the result.
    """
    if specs is None:
        return []
    items = [specs] if isinstance(specs, str | Mapping) else list(specs)
    parsed: list[PerturbationSpec] = []
    for item in items:
        parsed.extend(parse_perturbation_spec(item, kind))
    seen: set[str] = set()
    for spec in parsed:
        if spec.name in seen:
            raise ValueError(f"perturbation {spec.name!r} is listed more than once")
        seen.add(spec.name)
    return parsed
