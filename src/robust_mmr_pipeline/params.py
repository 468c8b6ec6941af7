"""Typed parameters: each pipeline's ``params:<section>`` becomes a validated dataclass.

Validation uses pydantic's ``TypeAdapter`` over plain dataclasses (types are coerced and checked,
``__post_init__`` checks run) plus a strict walk that rejects unknown keys, so a typo in
``conf/`` fails before the run instead of being ignored. The ``ParameterValidationHooks`` in
``hooks.py`` call :func:`validate_sections` for every section the pipeline about to run reads.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")

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


class ParameterError(ValueError):
    """Parameters do not match their typed config; the message names the key and the fix."""


def _dataclass_of(annotation: Any) -> type | None:
    """The dataclass inside ``annotation`` (``X``, ``X | None``, ``Optional[X]``), if any."""
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _dataclass_of(arg)
            if found is not None:
                return found
    return None


def _unknown_keys(cls: type, data: Mapping[str, Any], prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    problems = [
        f"{prefix}{key} (allowed: {', '.join(sorted(names))})" for key in data if key not in names
    ]
    for key, value in data.items():
        if key not in names:
            continue
        hint = hints.get(key)
        inner = _dataclass_of(hint)
        if inner is not None and isinstance(value, Mapping):
            problems += _unknown_keys(inner, value, f"{prefix}{key}.")
        item = _dataclass_of(_list_item(hint))
        if item is not None and isinstance(value, list):
            for index, element in enumerate(value):
                if isinstance(element, Mapping):
                    problems += _unknown_keys(item, element, f"{prefix}{key}[{index}].")
    return problems


def _list_item(annotation: Any) -> Any:
    """The item type of ``list[X]`` / ``tuple[X, ...]`` (possibly inside ``| None``), else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _list_item(arg)
            if found is not None:
                return found
        return None
    if typing.get_origin(annotation) in (list, tuple):
        args = typing.get_args(annotation)
        return args[0] if args else None
    return None


def parse(cls: type[T], data: Mapping[str, Any] | None, section: str) -> T:
    """Build ``cls`` from a parameters mapping, raising ParameterError naming the bad keys."""
    data = dict(data or {})
    unknown = _unknown_keys(cls, data, "")
    if unknown:
        raise ParameterError(
            f"params:{section}: unknown key(s) {unknown}. Check the spelling in "
            f"conf/*/parameters_{section}.yml or your --params."
        )
    try:
        return TypeAdapter(cls).validate_python(data)
    except ValidationError as exc:
        raise ParameterError(
            f"params:{section} is invalid (fix it in conf/*/parameters_{section}.yml or "
            f"--params):\n{exc}"
        ) from exc


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
