"""The one config mechanism: pydantic dataclasses that forbid unknown keys, one parse, one error.

Every configuration (each ``params:<section>``, the trainer, the model and task configs, a
source's options, SynthRad, a checkpoint's ``model.json``) is a class decorated with
:func:`config`: a pydantic dataclass with ``extra="forbid"``, so types are checked, lists
become tuples where a tuple is declared, and a key that no field has is an error. Partial
overrides merged over defaults later (``pretrain.model``, ``finetune.trainer``, ...) are typed
by :func:`overrides_of`: the same fields, all optional, unknown keys still forbidden. Every
mistake becomes one :class:`ParameterError` built in one place (:func:`error_from`): one
paragraph naming the section, the dotted key, the bad value, a "did you mean" and the fix.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import importlib
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import pydantic.dataclasses
from pydantic import BeforeValidator, ConfigDict, PlainValidator, TypeAdapter, ValidationError
from typing_extensions import TypedDict, is_typeddict

T = TypeVar("T")

FORBID = ConfigDict(extra="forbid")
_PREFIX = "Invalid parameters in params:"


class ParameterError(ValueError):
    """A configuration does not match its typed config; the message names the key and the fix."""


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


# A folder or file name given as ``str`` or ``pathlib.Path`` (kept as str: JSON-safe).
PathStr = Annotated[str, BeforeValidator(_fspath)]


@typing.overload
def config(cls: type[T], *, frozen: bool = False) -> type[T]: ...
@typing.overload
def config(cls: None = None, *, frozen: bool = False) -> Callable[[type[T]], type[T]]: ...
def config(cls: Any = None, *, frozen: bool = False) -> Any:
    """Make ``cls`` a config: a pydantic dataclass forbidding unknown keys whose constructor
    raises :class:`ParameterError` (not pydantic's ValidationError) for a bad value."""

    def wrap(target: type[T]) -> type[T]:
        built = pydantic.dataclasses.dataclass(frozen=frozen, config=FORBID)(target)
        init = built.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except ValidationError as exc:
                raise error_from(exc, built.__name__, built, "", prefix="Invalid ") from None

        built.__init__ = __init__  # type: ignore[method-assign]
        return built  # type: ignore[return-value]

    return wrap if cls is None else wrap(cls)


@functools.cache
def overrides_of(cls: type) -> Any:
    """A ``TypedDict`` (``total=False``) of ``cls``'s fields, nested configs again as overrides,
    unknown keys forbidden: the typed form of a partial override merged over defaults later
    (the validated value stays a plain dict holding only the keys given)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {
        f.name: overrides_of(hints[f.name]) if _is_config(hints[f.name]) else hints[f.name]
        for f in dataclasses.fields(cls)
        if f.init
    }
    partial: Any = TypedDict(f"{cls.__name__}Overrides", fields, total=False)  # type: ignore[operator]
    partial.__pydantic_config__ = FORBID
    return partial


@dataclasses.dataclass(frozen=True)
class _Lazy:
    """``Annotated`` marker: a partial override of the config class ``target`` (module:Class)."""

    target: str

    def config_class(self) -> type:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


def lazy_overrides(target: str) -> Any:
    """The type of a partial override of the config ``target`` ("module:Class"), imported on
    first validation: a section that must stay light (no torch when Kedro lists pipelines)
    still types ``pretrain.model`` by the model's config. Its errors keep their key paths."""
    marker = _Lazy(target)

    def check(value: Any) -> Any:
        adapter = _adapter(overrides_of(marker.config_class()))
        return adapter.dump_python(adapter.validate_python(value))  # plain dicts, merged later

    return Annotated[dict[str, Any], PlainValidator(check), marker]


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@functools.cache
def _adapter(cls: Any) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def parse(
    cls: type[T],
    data: Mapping[str, Any] | None,
    section: str,
    fix: str | None = None,
    prefix: str = _PREFIX,
) -> T:
    """Build ``cls`` from a mapping, raising :class:`ParameterError` naming the bad keys.

    ``section`` prefixes every key path (``pretrain`` -> ``pretrain.trainer.max_steps``);
    ``fix`` says where to correct it (default: the section's parameters file or ``--params``);
    ``prefix`` starts the message (default: "Invalid parameters in params:").
    """
    if _is_config(cls) and isinstance(data, cls):
        return data
    try:
        return _adapter(cls).validate_python({} if data is None else data)
    except ValidationError as exc:
        raise error_from(exc, section, cls, fix, prefix) from None


def error_from(
    exc: ValidationError, section: str, root: Any, fix: str | None, prefix: str = _PREFIX
) -> ParameterError:
    """pydantic's errors as one :class:`ParameterError` paragraph (no input dump, no URL)."""
    if fix is None:
        fix = f"Fix it in conf/<env>/parameters_{section.partition('.')[0]}.yml or your --params."
    for error in exc.errors():
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, ParameterError):  # raised by a nested config's own checks
            if getattr(inner, "located", False) or prefix != _PREFIX:
                return inner  # it says where already, or it is a direct construction
            where = _dotted(section, error.get("loc", ()))
            return _located(f"{prefix}{where}: {str(inner).rstrip('.')}. {fix}")
    problems = "; ".join(_problem(error, section, root) for error in exc.errors())
    return _located(f"{prefix}{section}: {problems}. {fix}")


def _located(message: str) -> ParameterError:
    error = ParameterError(message.strip())
    error.located = True  # type: ignore[attr-defined]  # says where: outer configs keep it
    return error


def _problem(error: Mapping[str, Any], section: str, root: Any) -> str:
    loc = tuple(error.get("loc", ()))
    path = _dotted(section, loc)
    if error["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        allowed = _keys_at(root, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        maybe = f" (did you mean {hint[0]!r}?)" if hint else ""
        return f"unknown key '{path}'{maybe} (allowed there: {', '.join(allowed)})"
    message = str(error["msg"]).removeprefix("Value error, ").rstrip(".")
    if error["type"] == "value_error" and not loc:
        return message  # a check of the whole section: the header names it
    if error["type"] in ("value_error", "missing"):
        return f"{path}: {message}"
    if loc and loc[-1] == "[key]":  # a mapping key outside its vocabulary
        return f"{_dotted(section, loc[:-2])}: key {error.get('input')!r}: {message}"
    shown = repr(error.get("input"))
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return f"{path} = {shown}: {message}"


def _dotted(section: str, loc: Sequence[Any]) -> str:
    """``section.key.sub[0].leaf``: keys joined by dots, list positions in brackets."""
    return section + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def _unwrap(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and ``| None``: the part that has keys or items."""
    while typing.get_origin(tp) is Annotated:
        lazy = [m for m in tp.__metadata__ if isinstance(m, _Lazy)]
        tp = overrides_of(lazy[0].config_class()) if lazy else typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


def _keys_at(root: Any, loc: Sequence[Any]) -> list[str]:
    """The allowed keys of the mapping at ``loc`` inside ``root`` (for "did you mean")."""
    tp = _unwrap(root)
    for part in loc:
        if _is_config(tp) or is_typeddict(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            if part not in hints:
                continue  # a union member's tag in the location, not a key
            tp = _unwrap(hints[part])
        elif typing.get_origin(tp) in (dict, list, tuple, Mapping, Sequence):
            args = typing.get_args(tp)
            tp = _unwrap(args[-1] if typing.get_origin(tp) in (dict, Mapping) else args[0])
    if _is_config(tp):
        return sorted(f.name for f in dataclasses.fields(tp) if f.init)
    if is_typeddict(tp):
        return sorted(typing.get_type_hints(tp))
    return []


def deep_merge(base: Mapping[str, Any] | None, update: Mapping[str, Any] | None) -> dict[str, Any]:
    """``update`` merged into ``base`` recursively (mappings merge, anything else, lists
    included, replaces); neither argument is modified."""
    out = copy.deepcopy(dict(base or {}))
    for key, value in (update or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
