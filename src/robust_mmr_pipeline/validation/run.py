"""Validate every table with Great Expectations and gather the results into one summary.

GX runs fully in memory: an ephemeral data context (nothing is written to disk, no project
folder is created), progress bars off, analytics off (``GX_ANALYTICS_ENABLED=false``). Each
frame is one pandas data asset with a whole-dataframe batch definition, one expectation suite
and one validation definition, run with the frame as the batch parameter.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from robust_mmr_pipeline.schema import PRIMARY_KEYS, TABLES
from robust_mmr_pipeline.validation.checks import CHECKS, Severity
from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.frames import Frame, build_frames
from robust_mmr_pipeline.validation.phi import GUARD_COLUMNS, QUARANTINED, guard_quality
from robust_mmr_pipeline.validation.suites import CheckSpec, build_checks, to_gx_suite
from robust_mmr_pipeline.validation.summaries import summarise

logger = logging.getLogger(__name__)

MAX_TEXT = 160


def plain(value: Any) -> Any:
    """A JSON-ready version of one cell: None for missing, Python scalars, long text cut."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def records(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """Rows of ``frame`` (only ``columns``) as JSON-ready dicts."""
    shown = [c for c in columns if c in frame.columns]
    return [
        {c: plain(v) for c, v in zip(shown, row, strict=True)}
        for row in frame[shown].itertuples(index=False, name=None)
    ]


def _gx_context() -> Any:
    """A fresh ephemeral GX data context with progress bars and analytics off."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _exception_text(info: Any) -> str | None:
    """The exception GX caught while evaluating an expectation, if any."""
    if not isinstance(info, Mapping) or not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    for value in info.values():
        text = _exception_text(value)
        if text:
            return text
    return None


def _columns_examples(frame: Frame, expected: list[str]) -> list[dict[str, Any]]:
    observed = list(frame.display)
    wanted = [c for c in expected if not c.startswith("_")]
    return [
        {
            "missing": [c for c in wanted if c not in observed],
            "unexpected": [c for c in observed if c not in wanted],
            "observed": observed,
        }
    ]


def check_record(
    spec: CheckSpec, severity: Severity, result: Any, frame: Frame, max_examples: int
) -> dict[str, Any]:
    """One expectation's outcome as a JSON-ready dict (with a few example records)."""
    res: Mapping[str, Any] = result.result or {}
    error = _exception_text(result.exception_info)
    success = bool(result.success) and error is None
    observed = res.get("observed_value")
    unexpected = res.get("unexpected_count")
    examples: list[dict[str, Any]] = []
    if spec.findings:
        unexpected = int(observed or 0)
        examples = records(frame.data.head(max_examples), frame.display)
    elif not success and spec.check == "columns":
        examples = _columns_examples(frame, list(spec.kwargs["column_list"]))
    elif not success:
        labels = [
            label
            for label in res.get("partial_unexpected_index_list") or []
            if not isinstance(label, Mapping) and label in frame.data.index
        ][:max_examples]
        examples = records(frame.data.loc[labels], frame.display)
    element_count = int(res.get("element_count", len(frame.data)) or 0)
    return {
        "table": spec.frame,
        "check": spec.check,
        "column": spec.column,
        "expectation": spec.expectation_type,
        "kwargs": {k: plain(v) for k, v in spec.kwargs.items()},
        "description": spec.description,
        "severity": severity,
        "success": success,
        "status": "pass" if success else severity,
        "element_count": element_count,
        # rows the expectation applies to (GX leaves nulls out of column value expectations)
        "evaluated_count": element_count - int(res.get("missing_count") or 0),
        "unexpected_count": None if unexpected is None else int(unexpected),
        "unexpected_percent": plain(res.get("unexpected_percent")),
        "observed_value": plain(observed),
        "examples": examples,
        "error": error,
    }


def run_checks(
    frames: Mapping[str, Frame],
    specs: Mapping[str, list[CheckSpec]],
    severities: Mapping[str, Severity],
    max_examples: int,
) -> list[dict[str, Any]]:
    """Run each frame's suite through GX; one record per expectation, in suite order."""
    import great_expectations as gx

    context = _gx_context()
    datasource = context.data_sources.add_pandas("robust_mmr_validation")
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": max_examples}
    out: list[dict[str, Any]] = []
    for name, checks in specs.items():
        frame = frames[name]
        asset = datasource.add_dataframe_asset(name)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"{name}_whole")
        suite = context.suites.add(to_gx_suite(f"{name}_suite", checks))
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_validation", data=batch_definition, suite=suite)
        )
        run = definition.run(
            batch_parameters={"dataframe": frame.data}, result_format=result_format
        )
        by_index = {int(r.expectation_config.meta["spec"]): r for r in run.results}
        for index, spec in enumerate(checks):
            out.append(
                check_record(spec, severities[spec.check], by_index[index], frame, max_examples)
            )
    return out


def _by_check(
    checks: list[dict[str, Any]], severities: Mapping[str, Severity]
) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for name in CHECKS:
        mine = [c for c in checks if c["check"] == name]
        counts = [c["unexpected_count"] for c in mine if c["unexpected_count"] is not None]
        summary[name] = {
            "severity": severities[name],
            "evaluated": bool(mine),
            "success": all(c["success"] for c in mine),
            "expectations": len(mine),
            "failed_expectations": sum(not c["success"] for c in mine),
            "unexpected_count": int(sum(counts)),
            "description": CHECKS[name],
        }
    return summary


def validate_all(
    tables: Mapping[str, pd.DataFrame],
    image_checks: pd.DataFrame,
    phi_warnings: pd.DataFrame,
    params: ValidationParams,
) -> dict[str, Any]:
    """Validate the unified tables, the per-image table and the PHI warnings.

    Returns the JSON-ready summary: top-level ``success`` (no fatal check failed),
    ``fatal_failures`` / ``warnings`` (counts of failed expectations), ``checks`` (one record
    per expectation: table, check, column, expectation, severity, success, unexpected count,
    examples), ``by_check`` (per check name), ``rows``, ``phi`` and ``summaries`` (class
    balance, per-domain counts, answer vocabulary, split overlap per source, ...).
    """
    started = time.perf_counter()
    # only the guard's own columns: a findings table never shows more (e.g. a raw match)
    phi_warnings = phi_warnings[[c for c in GUARD_COLUMNS if c in phi_warnings.columns]]
    missing = [name for name in TABLES if name not in tables]
    if missing:
        raise KeyError(f"validate_all: table(s) {missing} not given; pass all of {list(TABLES)}.")
    severities = params.severities()
    text_columns = {t: list(params.text_columns(t)) for t in TABLES}
    frames = build_frames(
        tables,
        image_checks,
        phi_warnings,
        text_columns,
        params.answer_vocab_scope,
        [tuple(p) for p in params.split_overlap.between],
        list(params.split_overlap.disjoint_sources),
        list(params.phi.allowed_sources),
    )
    specs = build_checks(frames, params)
    checks = run_checks(frames, specs, severities, params.max_examples)
    fatal = [c for c in checks if c["status"] == "fatal"]
    warned = [c for c in checks if c["status"] == "warn"]
    import great_expectations as gx

    summary: dict[str, Any] = {
        "success": not fatal,
        "fatal_failures": len(fatal),
        "warnings": len(warned),
        "expectations": len(checks),
        "rows": {name: len(tables[name]) for name in TABLES},
        "primary_keys": dict(PRIMARY_KEYS),
        "checks": checks,
        "by_check": _by_check(checks, severities),
        "phi": _phi_summary(
            phi_warnings,
            params.phi.allowed_sources,
            params.max_examples * 4,
            guard_quality(params.phi.patterns()),
        ),
        "summaries": summarise(frames, params),
        "great_expectations": gx.__version__,
    }
    summary = json_safe(summary)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    logger.info(
        "Validation: %d expectations, %d fatal failure(s), %d warning(s) in %.1f s.",
        len(checks),
        len(fatal),
        len(warned),
        summary["seconds"],
    )
    return summary


def _phi_summary(
    phi_warnings: pd.DataFrame,
    allowed_sources: Mapping[str, str],
    max_rows: int,
    guard: Mapping[str, Any],
) -> dict[str, Any]:
    """Counts of the (masked) PHI findings, what became of their records, and the guard's
    recall / false-positive rate on its labelled sentences."""
    opted_out = {str(k): str(v) for k, v in allowed_sources.items()}

    def counts(column: str, frame: pd.DataFrame = phi_warnings) -> dict[str, int]:
        if column not in frame.columns:
            return {}
        return {str(k): int(v) for k, v in frame[column].value_counts().items()}

    quarantined = 0
    if "action" in phi_warnings.columns:
        rows = phi_warnings[phi_warnings["action"] == QUARANTINED]
        quarantined = len(rows.drop_duplicates(["table", "id"]))
    return {
        "count": len(phi_warnings),
        "quarantined_rows": quarantined,
        "by_kind": counts("kind"),
        "by_table": counts("table"),
        "by_source": counts("source"),
        "opted_out_sources": opted_out,
        "guard": dict(guard),
        "examples": records(phi_warnings.head(max_rows), list(phi_warnings.columns)),
    }
