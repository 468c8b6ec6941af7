"""The check before ingestion: what the stages of a run lack, from the configured sources'
declarations."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from robust_mmr_pipeline.data_requirements.config import CROSS_DOMAIN_SKIP
from robust_mmr_pipeline.data_requirements.protocols import protocol_fix, protocol_problem
from robust_mmr_pipeline.data_requirements.shortfalls import Shortfall
from robust_mmr_pipeline.data_requirements.sources import ConfiguredSource, configured_sources
from robust_mmr_pipeline.tasks.registry import TASK_SPECS, TASKS


def _with(sources: list[ConfiguredSource], table: str, kinds: Iterable[str] = ()) -> list[str]:
    kinds = set(kinds)
    return [
        s.name
        for s in sources
        if s.images and table in s.tables and (table != "pairs" or s.text_kinds & kinds)
    ]


def _task_shortfall(
    task: str, stage: str, sources: list[ConfiguredSource], text_kinds: list[str]
) -> Shortfall | None:
    spec = TASK_SPECS[task]
    table = spec.table
    if _with(sources, table, text_kinds):
        return None
    if spec.ranks:
        offered = sorted({k for s in sources if s.images for k in s.text_kinds})
        missing = (
            f"no configured source gives image-text pairs of finetune.text_kinds {text_kinds} "
            f"with images (the sources give {offered or 'none'})"
        )
        fix = (
            f"set finetune.text_kinds to kinds the sources give ({offered}), add a source with "
            "such pairs, or drop retrieval from finetune.tasks"
        )
    else:
        missing = f"no configured source gives {table} rows with images"
        fix = f"drop {task} from finetune.tasks, or add {spec.source_hint}"
    fix += f" (or list {task} in requirements.skip_when_missing to skip it)"
    return Shortfall(stage, missing, fix, skip=task)


def static_shortfalls(parameters: Mapping[str, Any], sections: Iterable[str]) -> list[Shortfall]:
    """What the stages among ``sections`` (parameter sections the run reads: pretrain,
    finetune, evaluation, as_released) lack, from the configured sources' declarations."""
    sections = set(sections)
    sources = configured_sources(parameters.get("ingestion"))
    domain_split = parameters.get("domain_split") or {}
    found: list[Shortfall] = []
    if "pretrain" in sections:
        pretrain = parameters.get("pretrain") or {}
        kinds = list(pretrain.get("text_kinds") or [])
        stage = "pretrain (fit_tokenizer, pretrain_model)"
        if not _with(sources, "pairs", kinds):
            offered = sorted({k for s in sources if s.images for k in s.text_kinds})
            found.append(
                Shortfall(
                    stage,
                    f"no configured source gives image-text pairs of pretrain.text_kinds {kinds} "
                    f"with images (the sources give {offered or 'no pairs'})",
                    f"set pretrain.text_kinds to kinds the sources give ({offered}), e.g. "
                    "[qa_statement] for a VQA-only dataset, or add a source with such pairs",
                )
            )
        protocol = str(pretrain.get("protocol", "cross_domain"))
        problem = protocol_problem(protocol, domain_split, sources)
        if problem:
            found.append(
                Shortfall(
                    stage,
                    f"pretrain.protocol {protocol!r} will not exist: {problem}",
                    protocol_fix(protocol, "pretrain"),
                )
            )
    finetune = parameters.get("finetune") or {}
    tasks = [t for t in finetune.get("tasks") or [] if t in TASKS]
    if "finetune" in sections or "as_released" in sections:
        kinds = list(finetune.get("text_kinds") or [])
        for task in tasks:
            shortfall = _task_shortfall(task, f"finetune task {task}", sources, kinds)
            if shortfall:
                found.append(shortfall)
    if "finetune" in sections:
        protocol = str(finetune.get("protocol", "in_domain"))
        problem = protocol_problem(protocol, domain_split, sources)
        if problem:
            found.append(
                Shortfall(
                    "finetune",
                    f"finetune.protocol {protocol!r} will not exist: {problem}",
                    protocol_fix(protocol, "finetune"),
                )
            )
    if "evaluation" in sections:
        evaluation = parameters.get("evaluation") or {}
        protocol = str(evaluation.get("cross_domain_protocol", "cross_domain"))
        problem = protocol_problem(protocol, domain_split, sources) if protocol else ""
        if problem:
            found.append(
                Shortfall(
                    "evaluation (cross-domain test)",
                    f"evaluation.cross_domain_protocol {protocol!r} will not exist: {problem}",
                    "hold out a domain of a configured source (domain_split.held_out_domains) "
                    "or list cross_domain in requirements.skip_when_missing to evaluate "
                    "in-domain only",
                    skip=CROSS_DOMAIN_SKIP,
                )
            )
    if "as_released" in sections and not domain_split.get("as_released"):
        found.append(
            Shortfall(
                "as_released (fine-tuning and evaluation on the official split)",
                "domain_split.as_released is false, so the split manifests hold no "
                "as_released protocol",
                "set domain_split.as_released: true (conf/<env>/parameters_domain_split.yml)",
            )
        )
    return found
