"""Allow-list of model classes a checkpoint may rebuild itself with.

A checkpoint's ``model.json`` names its class as a dotted path (``"module.Class"``). Loading
never imports an arbitrary path: :func:`resolve_model_class` returns a class only when it was
registered with :func:`register_model_class`. For a path under ``robust_mmr_pipeline.`` that is
not registered yet, the module is imported once (its import registers the class, e.g. the model
package decorates ``MMRModel``) and the registry is consulted again; any other path is refused
without importing anything.

Building: :func:`build_model` calls, in order of preference, the ``from_config`` callable given
at registration, ``cls.from_config(config_dict)``, ``cls(cls.config_class.from_dict(d))``,
``cls(T.from_dict(d))`` where ``T`` is the type annotation of ``__init__``'s ``config``
parameter, and finally ``cls(**config_dict)``.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

ALLOWED_PREFIX = "robust_mmr_pipeline."

ModelT = TypeVar("ModelT", bound=type[nn.Module])
ConfigBuilder = Callable[[dict[str, Any]], nn.Module]


class ModelClassNotAllowedError(ValueError):
    """A checkpoint names a model class that is not in the allow-list registry."""


@dataclass(frozen=True)
class _Entry:
    cls: type[nn.Module]
    from_config: ConfigBuilder | None


_REGISTRY: dict[str, _Entry] = {}


def class_path(cls: type) -> str:
    """Dotted path ``module.QualName`` under which a class is saved and registered."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_model_class(
    cls: ModelT | None = None,
    *,
    name: str | None = None,
    from_config: ConfigBuilder | None = None,
) -> Any:
    """Allow checkpoints to rebuild ``cls``; usable as ``@register_model_class`` or a call.

    ``name`` overrides the dotted path (default :func:`class_path`); ``from_config`` builds a
    model from the ``config`` dict of ``model.json`` (default: see module docstring).
    Returns the class unchanged, so it works as a decorator with or without arguments.
    """

    def _register(target: ModelT) -> ModelT:
        if not (inspect.isclass(target) and issubclass(target, nn.Module)):
            raise TypeError(f"register_model_class expects an nn.Module subclass, got {target!r}")
        key = name or class_path(target)
        existing = _REGISTRY.get(key)
        if existing is not None and existing.cls is not target:
            same_origin = class_path(existing.cls) == class_path(target)
            if not same_origin:
                raise ValueError(
                    f"Model class name {key!r} is already registered for {existing.cls!r}."
                )
        _REGISTRY[key] = _Entry(cls=target, from_config=from_config)
        return target

    if cls is None:
        return _register
    return _register(cls)


def unregister_model_class(name: str) -> None:
    """Remove a dotted path from the registry (no error when absent)."""
    _REGISTRY.pop(name, None)


def registered_model_classes() -> dict[str, type[nn.Module]]:
    """A copy of the registry: dotted path -> class."""
    return {key: entry.cls for key, entry in _REGISTRY.items()}


def registered_name(cls: type) -> str | None:
    """The name under which ``cls`` is registered, or None."""
    for key, entry in _REGISTRY.items():
        if entry.cls is cls:
            return key
    return None


def _entry(path: str) -> _Entry:
    if not isinstance(path, str) or not path:
        raise ModelClassNotAllowedError(f"model_class must be a dotted path string, got {path!r}")
    entry = _REGISTRY.get(path)
    if entry is not None:
        return entry
    if path.startswith(ALLOWED_PREFIX):
        module_name = path.rsplit(".", 1)[0]
        # Walk up until an importable module is found (handles nested qualnames).
        while module_name.startswith(ALLOWED_PREFIX.rstrip(".")):
            try:
                importlib.import_module(module_name)
                break
            except ModuleNotFoundError:
                if "." not in module_name:
                    break
                module_name = module_name.rsplit(".", 1)[0]
        entry = _REGISTRY.get(path)
        if entry is not None:
            return entry
    allowed = sorted(_REGISTRY)
    raise ModelClassNotAllowedError(
        f"Refusing to load model class {path!r}: it is not in the model registry "
        f"(registered: {allowed}). Only classes registered with "
        "robust_mmr_pipeline.engine.register_model_class can be rebuilt from a checkpoint; "
        f"unregistered paths are imported only under {ALLOWED_PREFIX!r}."
    )


def resolve_model_class(path: str) -> type[nn.Module]:
    """The registered class for ``path``; raises :class:`ModelClassNotAllowedError` otherwise."""
    return _entry(path).cls


def build_model(path: str, config: dict[str, Any]) -> nn.Module:
    """Instantiate the registered class ``path`` from its saved ``config`` dict."""
    entry = _entry(path)
    cls = entry.cls
    if entry.from_config is not None:
        return entry.from_config(dict(config))
    factory = getattr(cls, "from_config", None)
    if callable(factory):
        return factory(dict(config))
    config_class = getattr(cls, "config_class", None)
    if config_class is not None and callable(getattr(config_class, "from_dict", None)):
        return cls(config_class.from_dict(dict(config)))
    annotated = _annotated_config_type(cls)
    if annotated is not None:
        return cls(annotated.from_dict(dict(config)))
    return cls(**dict(config))


def _annotated_config_type(cls: type) -> Any:
    """The type hint of ``cls.__init__``'s ``config`` parameter when it has ``from_dict``."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError, AttributeError):
        return None
    hint = hints.get("config")
    if hint is None:
        return None
    candidates = typing.get_args(hint) or (hint,)
    for candidate in candidates:
        if inspect.isclass(candidate) and callable(getattr(candidate, "from_dict", None)):
            return candidate
    return None
