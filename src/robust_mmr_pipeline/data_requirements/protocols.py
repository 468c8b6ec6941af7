"""Which protocols the domain split will emit from the configured sources (before the data
is read: ``None`` / ``""`` where only the data tells)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from robust_mmr_pipeline.data_requirements.sources import ConfiguredSource


def _held_out(
    domain_split: Mapping[str, Any], sources: list[ConfiguredSource]
) -> tuple[bool | None, str]:
    """Whether the domain split holds a domain out (None: only the data tells), and why not."""
    held = domain_split.get("held_out_domains") or []
    if isinstance(held, Mapping):
        named = {name: list(values or []) for name, values in held.items()}
        present = {s.name: s for s in sources if named.get(s.name)}
        if not present:
            return False, (
                f"domain_split.held_out_domains names no configured source (it names "
                f"{sorted(k for k, v in named.items() if v) or 'nothing'}; the sources are "
                f"{[s.name for s in sources]})"
            )
        for name, source in present.items():
            if source.domains is None:
                return None, ""
            if set(named[name]) & set(source.domains):
                return True, ""
        listed = {name: named[name] for name in present}
        known = {name: list(present[name].domains or ()) for name in present}
        return False, (
            f"domain_split.held_out_domains {listed} names no domain those sources have "
            f"(their domains: {known})"
        )
    if not held:
        return False, "domain_split.held_out_domains is empty"
    if any(source.domains is None for source in sources):
        return None, ""
    every = sorted({d for source in sources for d in source.domains or ()})
    if set(held) & set(every):
        return True, ""
    return False, f"domain_split.held_out_domains {list(held)} names none of the domains {every}"


def protocol_problem(
    protocol: str, domain_split: Mapping[str, Any], sources: list[ConfiguredSource]
) -> str:
    """Why the domain split cannot emit ``protocol`` from these sources ("" if it can or
    only the data tells)."""
    if protocol in ("in_domain", "pretrain"):
        return ""
    if protocol == "as_released":
        return "" if domain_split.get("as_released") else "domain_split.as_released is false"
    if protocol.startswith("lodo:"):
        if not domain_split.get("leave_one_out_all"):
            return "domain_split.leave_one_out_all is false"
        domain = protocol.removeprefix("lodo:")
        if all(s.domains is not None for s in sources) and not any(
            domain in (s.domains or ()) for s in sources
        ):
            return f"no configured source has the domain {domain!r}"
        return ""
    if protocol == "cross_domain":
        holds, why = _held_out(domain_split, sources)
        return why if holds is False else ""
    return (
        f"{protocol!r} is not a protocol (pretrain, in_domain, cross_domain, lodo:<domain>, "
        "as_released)"
    )


def protocol_fix(protocol: str, section: str) -> str:
    """The fix for a ``<section>.protocol`` the domain split will not emit."""
    if protocol == "cross_domain":
        return (
            "hold out a domain of a configured source (domain_split.held_out_domains, e.g. "
            f"{{<source name>: [<domain>]}}) or set {section}.protocol to in_domain"
        )
    if protocol == "as_released":
        return "set domain_split.as_released: true"
    return f"set {section}.protocol to a protocol the domain split emits (in_domain)"
