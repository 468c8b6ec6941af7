"""Reader arguments: source name, root folder, typed options with a clear error for unknown keys."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from robust_mmr_pipeline.sources.common.bad_records import IngestionError

T = TypeVar("T")


_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_name(name: str) -> str:
    """Validate a source name (it prefixes every id the source produces)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise IngestionError(
            f"source name {name!r} is not usable as an id prefix: use letters, digits, '_', '-' "
            "or '.', starting with a letter or digit (set `name` in ingestion.sources)."
        )
    return name


def check_root(root: Path | str, kind: str) -> Path:
    """Return ``root`` as a Path, raising IngestionError when the folder does not exist."""
    path = Path(root)
    if not path.is_dir():
        raise IngestionError(
            f"{kind}: dataset folder {path} does not exist. Point the source's `root` at your "
            f"copy of {kind} as published."
        )
    return path


def _type_label(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_label(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is tuple:
        return f"list of {_type_label(typing.get_args(annotation)[0])}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping of {_type_label(key)} to {_type_label(value)}"
    return getattr(annotation, "__name__", str(annotation))


_NO_MATCH = object()


def _coerce(value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation`` (lists become tuples), or ``_NO_MATCH``."""
    origin = typing.get_origin(annotation)
    result: Any = _NO_MATCH
    if annotation is Any:
        result = value
    elif annotation is type(None):
        result = None if value is None else _NO_MATCH
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            result = _coerce(value, arg)
            if result is not _NO_MATCH:
                break
    elif origin is Literal:
        result = value if value in typing.get_args(annotation) else _NO_MATCH
    elif annotation is bool:
        result = value if isinstance(value, bool) else _NO_MATCH
    elif annotation is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        result = value if ok else _NO_MATCH
    elif annotation is str:
        result = value if isinstance(value, str) else _NO_MATCH
    elif origin is tuple:
        (item_type, *_rest) = typing.get_args(annotation)
        if isinstance(value, list | tuple):
            items = [_coerce(item, item_type) for item in value]
            result = _NO_MATCH if any(i is _NO_MATCH for i in items) else tuple(items)
    elif origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if isinstance(value, Mapping):
            pairs = [(_coerce(k, key_type), _coerce(v, value_type)) for k, v in value.items()]
            bad = any(k is _NO_MATCH or v is _NO_MATCH for k, v in pairs)
            result = _NO_MATCH if bad else dict(pairs)
    return result


def parse_options(cls: type[T], options: Mapping[str, Any] | T | None, kind: str) -> T:
    """Build the adapter's frozen options dataclass ``cls`` from a mapping.

    Unknown keys and values of the wrong type raise IngestionError naming the key and the
    allowed keys (or the expected type). YAML lists become tuples. An instance of ``cls`` is
    returned unchanged.
    """
    if isinstance(options, cls):
        return options
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise IngestionError(
            f"{kind}: options must be a mapping of option name to value, got "
            f"{type(options).__name__}."
        )
    allowed = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = [key for key in options if key not in allowed]
    if unknown:
        raise IngestionError(
            f"{kind}: unknown option(s) {sorted(map(str, unknown))}; allowed options for "
            f"{kind}: {allowed}. Check the spelling under the source's `options`."
        )
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in options.items():
        converted = _coerce(value, hints[key])
        if converted is _NO_MATCH:
            raise IngestionError(
                f"{kind}: option {key!r} must be {_type_label(hints[key])}, got {value!r}."
            )
        values[key] = converted
    try:
        return cls(**values)
    except ValueError as exc:
        raise IngestionError(f"{kind}: invalid options: {exc}") from exc
