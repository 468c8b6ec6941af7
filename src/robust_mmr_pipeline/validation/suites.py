"""Expectation suites per frame, built from the parameters.

:func:`build_checks` returns plain :class:`CheckSpec` records (check name, frame, GX
expectation class name and its arguments), so what is validated can be listed and tested
without importing Great Expectations; :func:`to_gx_suite` turns one frame's specs into a GX
``ExpectationSuite`` (importing GX lazily).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from robust_mmr_pipeline.schema import ANSWER_TYPES, PRIMARY_KEYS, SPLITS, TABLES, TEXT_KINDS
from robust_mmr_pipeline.textnorm import BIDI_PATTERN, visible_char_pattern
from robust_mmr_pipeline.validation.checks import CHECKS, Severity
from robust_mmr_pipeline.validation.config import ValidationParams
from robust_mmr_pipeline.validation.frames import Frame

# UTF-8 read as Latin-1/cp1252 ("Ã©" for "é", "â€™" for "’", "Â°" for "°"), U+FFFD, C0
# control characters other than tab/newline/carriage return, and bidirectional controls.
# Literal characters (not escapes) so the pattern means the same to Python's re and to RE2
# (Arrow strings).
ENCODING_PATTERN = (
    "\ufffd|â€|[ÃÂ][\u0080-\u00bf]|[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]|" + BIDI_PATTERN
)

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "images": ("source", "path", "domain"),
    "vqa": ("split",),
    "classification": ("label", "split"),
}
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {
    "pairs": {"text_kind": TEXT_KINDS},
    "vqa": {"answer_type": ANSWER_TYPES},
}
SPLIT_TABLES: tuple[str, ...] = ("vqa", "classification")
REFERENCING_TABLES: tuple[str, ...] = ("pairs", "vqa", "classification")


@dataclass(frozen=True)
class CheckSpec:
    """One expectation of one check on one frame.

    ``findings`` marks a ``row count == 0`` expectation over a table of findings (PHI
    warnings, rejects): each row is one unexpected record.
    """

    check: str
    frame: str
    expectation: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    column: str | None = None
    findings: bool = False

    @property
    def description(self) -> str:
        """What the check asserts (from the check catalogue)."""
        return CHECKS[self.check]

    @property
    def expectation_type(self) -> str:
        """GX's snake-case name of the expectation (``expect_column_values_to_be_unique``)."""
        name = self.expectation
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _pandas_type(arrow_type: pa.DataType) -> str:
    """The type name GX's ``expect_column_values_to_be_of_type`` expects for an Arrow type."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "str"
    return str(arrow_type.to_pandas_dtype().__name__)


def _table_checks(name: str, frame: Frame, params: ValidationParams) -> list[CheckSpec]:
    schema = TABLES[name]
    columns = set(frame.data.columns)
    specs = [
        CheckSpec(
            "columns",
            name,
            "ExpectTableColumnsToMatchOrderedList",
            # derived columns (``_...``) are appended after the schema's by frames.py
            {"column_list": [*schema.names, *(c for c in frame.data.columns if c[:1] == "_")]},
        )
    ]
    specs += [
        CheckSpec(
            "column_types",
            name,
            "ExpectColumnValuesToBeOfType",
            {"column": f.name, "type_": _pandas_type(f.type)},
            f.name,
        )
        for f in schema
        if f.name in columns
    ]
    if name in params.min_rows:
        specs.append(
            CheckSpec(
                "row_count",
                name,
                "ExpectTableRowCountToBeBetween",
                {"min_value": params.min_rows[name]},
            )
        )
    key = PRIMARY_KEYS.get(name)
    if key in columns:
        specs.append(
            CheckSpec("ids_not_null", name, "ExpectColumnValuesToNotBeNull", {"column": key}, key)
        )
        specs.append(
            CheckSpec("ids_unique", name, "ExpectColumnValuesToBeUnique", {"column": key}, key)
        )
    specs += [
        CheckSpec("required_values", name, "ExpectColumnValuesToNotBeNull", {"column": c}, c)
        for c in REQUIRED_COLUMNS.get(name, ())
        if c in columns
    ]
    specs += [
        CheckSpec(
            "enum_values",
            name,
            "ExpectColumnValuesToBeInSet",
            {"column": c, "value_set": list(values)},
            c,
        )
        for c, values in ENUMS.get(name, {}).items()
        if c in columns
    ]
    if name in REFERENCING_TABLES and "image_id" in columns:
        specs.append(
            CheckSpec(
                "image_refs_exist",
                name,
                "ExpectColumnValuesToBeInSet",
                {"column": "_image_known", "value_set": [True]},
                "image_id",
            )
        )
    if name in SPLIT_TABLES and "split" in columns:
        specs.append(
            CheckSpec(
                "split_values",
                name,
                "ExpectColumnValuesToBeInSet",
                {"column": "split", "value_set": list(SPLITS)},
                "split",
            )
        )
    for column, bounds in params.text_columns(name).items():
        if column not in columns:
            continue
        specs += [
            CheckSpec(
                "text_not_empty", name, "ExpectColumnValuesToNotBeNull", {"column": column}, column
            ),
            CheckSpec(
                "text_not_empty",
                name,
                "ExpectColumnValuesToMatchRegex",
                # a visible character: zero-width characters alone are blank
                {"column": column, "regex": visible_char_pattern()},
                column,
            ),
            CheckSpec(
                "text_length",
                name,
                "ExpectColumnValueLengthsToBeBetween",
                {"column": column, "min_value": bounds.min, "max_value": bounds.max},
                column,
            ),
            CheckSpec(
                "text_encoding",
                name,
                "ExpectColumnValuesToNotMatchRegex",
                {"column": column, "regex": ENCODING_PATTERN},
                column,
            ),
        ]
    if name == "vqa" and {"answer", "split"} <= columns:
        specs.append(
            CheckSpec(
                "answer_vocab",
                name,
                "ExpectColumnValuesToBeInSet",
                {"column": "_in_train_vocab", "value_set": [True]},
                "answer",
            )
        )
    if name == "rejects":
        specs.append(
            CheckSpec("rejects", name, "ExpectTableRowCountToEqual", {"value": 0}, findings=True)
        )
    return specs


def _image_file_checks(params: ValidationParams) -> list[CheckSpec]:
    side, size = params.images.side, params.images.bytes
    name = "image_files"
    return [
        CheckSpec(
            "image_exists",
            name,
            "ExpectColumnValuesToBeInSet",
            {"column": "exists", "value_set": [True]},
            "exists",
        ),
        CheckSpec(
            "image_in_root",
            name,
            "ExpectColumnValuesToBeInSet",
            {"column": "in_root", "value_set": [True]},
            "in_root",
        ),
        CheckSpec(
            "image_decodes",
            name,
            "ExpectColumnValuesToBeInSet",
            {"column": "decodes", "value_set": [True]},
            "decodes",
        ),
        CheckSpec(
            "image_pixels",
            name,
            "ExpectColumnValuesToBeBetween",
            {"column": "_pixels", "max_value": params.images.max_pixels},
            "width,height",
        ),
        *(
            CheckSpec(
                "image_size",
                name,
                "ExpectColumnValuesToBeBetween",
                {"column": c, "min_value": side.min, "max_value": side.max},
                c,
            )
            for c in ("width", "height")
        ),
        CheckSpec(
            "image_mode",
            name,
            "ExpectColumnValuesToBeInSet",
            {"column": "mode", "value_set": list(params.images.modes)},
            "mode",
        ),
        CheckSpec(
            "image_bytes",
            name,
            "ExpectColumnValuesToBeBetween",
            {"column": "bytes", "min_value": size.min, "max_value": size.max},
            "bytes",
        ),
        CheckSpec(
            "image_dims_match",
            name,
            "ExpectColumnValuesToBeInSet",
            {"column": "_dims_match", "value_set": [True]},
            "width,height",
        ),
    ]


def build_checks(
    frames: Mapping[str, Frame], params: ValidationParams
) -> dict[str, list[CheckSpec]]:
    """Frame name -> the expectations to run on it, leaving out checks whose severity is skip.

    Column expectations are only built for columns the frame has: a missing column is reported
    once, by the ``columns`` check, instead of failing every expectation that names it.
    """
    severities: dict[str, Severity] = params.severities()
    specs: dict[str, list[CheckSpec]] = {
        name: _table_checks(name, frames[name], params) for name in TABLES if name in frames
    }
    if "image_files" in frames:
        specs["image_files"] = _image_file_checks(params)
    for frame_name, check in (("phi_warnings", "phi"), ("phi_opted_out", "phi_opted_out")):
        if frame_name in frames:
            specs[frame_name] = [
                CheckSpec(
                    check, frame_name, "ExpectTableRowCountToEqual", {"value": 0}, findings=True
                )
            ]
    if "split_overlap" in frames:
        specs["split_overlap"] = [
            CheckSpec(
                "split_overlap",
                "split_overlap",
                "ExpectColumnValuesToBeInSet",
                {"column": "_leak_promised", "value_set": [False]},
                "splits",
            ),
            CheckSpec(
                "split_overlap_by_design",
                "split_overlap",
                "ExpectColumnValuesToBeInSet",
                {"column": "_leak_by_design", "value_set": [False]},
                "splits",
            ),
        ]
    if "class_counts" in frames:
        specs["class_counts"] = [
            CheckSpec(
                "class_min_count",
                "class_counts",
                "ExpectColumnValuesToBeBetween",
                {"column": "trainable", "min_value": params.min_class_count},
                "trainable",
            )
        ]
    return {
        frame: kept
        for frame, checks in specs.items()
        if (kept := [s for s in checks if severities[s.check] != "skip"])
    }


def to_gx_suite(name: str, specs: list[CheckSpec]) -> Any:
    """A GX ``ExpectationSuite`` named ``name``; expectation ``i`` carries ``meta.spec = i``."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name=name)
    for index, spec in enumerate(specs):
        expectation_class = getattr(gxe, spec.expectation)
        suite.add_expectation(
            expectation_class(**spec.kwargs, meta={"spec": index, "check": spec.check})
        )
    return suite
