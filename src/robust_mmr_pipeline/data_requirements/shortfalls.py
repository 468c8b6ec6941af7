"""A stage without its data (:class:`Shortfall`) and the verdict on a run's shortfalls:
raise :class:`DataRequirementsError`, or skip what ``requirements.skip_when_missing`` allows."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from robust_mmr_pipeline.data_requirements.sources import ConfiguredSource, sources_line

logger = logging.getLogger(__name__)


class DataRequirementsError(ValueError):
    """A stage of the run lacks the data it needs; the message names stage, data and fix."""


@dataclass(frozen=True)
class Shortfall:
    """One stage without its data: ``skip`` is the skip_when_missing key that may skip it."""

    stage: str
    missing: str
    fix: str
    skip: str | None = None

    def describe(self) -> str:
        return f"- {self.stage}: {self.missing}. Fix: {self.fix}"


def enforce(
    shortfalls: list[Shortfall],
    skip_when_missing: Iterable[str],
    sources: list[ConfiguredSource],
    when: str,
) -> set[str]:
    """Raise DataRequirementsError for every shortfall the user did not allow to skip; log
    and return the skipped keys (tasks, ``cross_domain``)."""
    allowed = set(skip_when_missing)
    skipped = {s.skip for s in shortfalls if s.skip and s.skip in allowed}
    fatal = [s for s in shortfalls if not (s.skip and s.skip in allowed)]
    if fatal:
        raise DataRequirementsError(
            f"The configured data cannot feed this run ({when}):\n"
            + "\n".join(s.describe() for s in fatal)
            + f"\nSources read (ingestion.sources): {sources_line(sources)}."
        )
    for shortfall in shortfalls:
        if shortfall.skip in skipped:
            logger.warning(
                "Skipping %s (requirements.skip_when_missing lists %r): %s.",
                shortfall.stage,
                shortfall.skip,
                shortfall.missing,
            )
    return {s for s in skipped if s is not None}


def without_skipped(stage: str, params: Mapping[str, Any], skipped: set[str]) -> dict[str, Any]:
    """``params`` of ``stage`` with the skipped tasks removed (raising when none is left)."""
    tasks = params.get("tasks")
    if not skipped or tasks is None or not set(tasks) & skipped:
        return dict(params)
    kept = [task for task in tasks if task not in skipped]
    if not kept and stage == "finetune":
        raise DataRequirementsError(
            f"finetune: every task of finetune.tasks {list(tasks)} lacks its data and is listed "
            "in requirements.skip_when_missing; nothing is left to fine-tune. Add data for one "
            "of them."
        )
    return {**params, "tasks": kept}
