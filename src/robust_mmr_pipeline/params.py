"""Typed parameters: each pipeline's ``params:<section>`` becomes a validated config.

Every section is a :func:`~robust_mmr_pipeline.typed_config.config` class (a pydantic dataclass
forbidding unknown keys, nested sections typed too), so a typo anywhere in ``conf/`` fails
before the run with its dotted key path instead of being ignored. The
``ParameterValidationHooks`` in ``hooks/run_checks.py`` call :func:`check_sections` on every
top-level key (a misspelt section such as ``pretrian`` would otherwise be ignored) and
:func:`validate_sections` for every section the pipeline about to run reads. Every message is
one paragraph: what is wrong, where, the fix.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from robust_mmr_pipeline.typed_config import ParameterError, lazy_overrides, parse

__all__ = [
    "PARAM_SCHEMAS",
    "ModelOverrides",
    "ParameterError",
    "TaskOptionsOverrides",
    "TrainerOverrides",
    "check_sections",
    "parse",
    "validate_sections",
]

# Partial overrides typed by the config they are merged into (``pretrain.model``,
# ``finetune.trainer``, ``finetune.task_options.vqa``, ...). Imported on first use: the model
# and engine packages import torch, which listing the pipelines must not.
ModelOverrides = lazy_overrides("robust_mmr_pipeline.model.config:ModelConfig")
TrainerOverrides = lazy_overrides("robust_mmr_pipeline.engine.config:TrainerConfig")
TaskOptionsOverrides = lazy_overrides("robust_mmr_pipeline.tasks.config:TaskRunOptions")

# params section -> "module:DataclassName" of its typed config (imported lazily: the pretrain
# config pulls in the model package, which light pipelines and Kedro-Viz must not pay for).
PARAM_SCHEMAS: dict[str, str] = {
    "ingestion": "robust_mmr_pipeline.pipelines.ingestion.params:IngestionParams",
    "validation": "robust_mmr_pipeline.pipelines.validation.params:ValidationParams",
    "domain_split": "robust_mmr_pipeline.pipelines.domain_split.params:DomainSplitParams",
    "pretrain": "robust_mmr_pipeline.pipelines.pretrain.params:PretrainParams",
    "finetune": "robust_mmr_pipeline.pipelines.finetune.params:FinetuneParams",
    "evaluation": "robust_mmr_pipeline.pipelines.evaluation.params:EvaluationParams",
    "tuning": "robust_mmr_pipeline.tuning.config:TuningParams",
    "ablation": "robust_mmr_pipeline.pipelines.ablation.params:AblationParams",
    "requirements": "robust_mmr_pipeline.data_requirements:RequirementsParams",
    "references": "robust_mmr_pipeline.reporting.references:ReferencesParams",
    "as_released": "robust_mmr_pipeline.pipelines.as_released.params:AsReleasedParams",
}


# Top-level parameter sections without a typed config that no pipeline node reads but that are
# wanted all the same (e.g. read by a notebook): list them here, or they are reported as typos.
EXTRA_SECTIONS: tuple[str, ...] = ()


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_sections(
    params: Mapping[str, Any],
    read_by_nodes: set[str] | frozenset[str] = frozenset(),
    from_cli: set[str] | frozenset[str] = frozenset(),
    env: str | None = None,
) -> None:
    """Raise ParameterError for a top-level key that is no known section.

    Known: a section with a typed config (:data:`PARAM_SCHEMAS`), one that a node of some
    registered pipeline reads (``read_by_nodes``) or one listed in :data:`EXTRA_SECTIONS`.
    ``from_cli`` (the keys given with ``--params``) and ``env`` only make the message say where
    the key came from.
    """
    known = sorted(set(PARAM_SCHEMAS) | set(read_by_nodes) | set(EXTRA_SECTIONS))
    unknown = [key for key in params if key not in known]
    if not unknown:
        return
    problems = []
    for key in unknown:
        where = "--params" if key in from_cli else f"conf/{env or '<env>'}/parameters*.yml"
        problems.append(f"'{key}' (from {where}){_did_you_mean(key, known)}")
    raise ParameterError(
        f"Unknown parameter section(s) {', '.join(problems)}: no typed config has them and no "
        f"pipeline reads them, so their values would be silently ignored. Known sections: "
        f"{', '.join(known)}. Fix: correct the spelling (a section of your own that only a "
        "notebook reads goes into robust_mmr_pipeline.params.EXTRA_SECTIONS)."
    )


def schema_for(section: str) -> type:
    module_name, _, class_name = PARAM_SCHEMAS[section].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def validate_sections(params: Mapping[str, Any], sections: list[str]) -> None:
    """Validate every named section that has a registered typed config."""
    for section in sections:
        if section in PARAM_SCHEMAS:
            parsed = parse(schema_for(section), params.get(section), section)
            # Sections built from others (the ablation's runs) check the composition too.
            validate_with = getattr(parsed, "validate_with", None)
            if validate_with is not None:
                validate_with(params)
