"""Make ``torchvision`` importable beside a CPU-only torch whose C ops it cannot load.

timm imports torchvision (``torchvision.ops.misc``, ``torchvision.transforms``) and transformers
imports it when it is installed. PyPI's torchvision wheel is a CUDA build: next to the CPU torch
wheel its ``_C`` extension does not load, and ``torchvision/_meta_registrations.py`` then fails at
import with ``RuntimeError: operator torchvision::nms does not exist``. That kills ``import timm``
and transformers' model imports although neither needs the compiled ops.

The fix, in one place: when torchvision's import fails with exactly that error, the two operator
schemas the registration file expects (``nms`` and ``qnms``, without kernels) are declared and
the import is run again. The pure-Python parts (transforms, ``ops.misc``) then work; calling a
compiled op such as ``torchvision.ops.nms`` still raises a clear "no kernel" error. Where
torchvision imports fine, or is absent, this does nothing. Two ways in:

* ``ensure_torchvision_importable()``, called once from the ``__init__`` of the packages that
  import timm or transformers (``model``, ``engine``, ``tasks``), so no module of those packages
  can import them first;
* ``install_import_guard()``, run at interpreter start by the ``.pth`` file ``make install``
  writes into the virtual environment, for programs that import timm before any module of this
  project: the ``accelerate`` command (``accelerate launch`` imports timm at start). It only
  puts a finder on ``sys.meta_path``; torch is imported when torchvision is, never before.
"""

from __future__ import annotations

import sys

# Nothing else is imported at module level: the .pth file imports this module at every
# interpreter start (importlib.util and typing alone would cost ~15 ms there).

_MISSING_OP_MESSAGE = "operator torchvision::nms does not exist"
_OP_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# Keeps the torch.library fragment alive: dropping it would unregister the schemas.
_fragment: object = None
status: str = "unchecked"  # one of: unchecked, absent, native, patched


def _forget_partial_import(keep_package: bool = False) -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        if not (keep_package and name == "torchvision"):
            del sys.modules[name]


def _declare_missing_schemas() -> None:
    global _fragment
    import torch

    _fragment = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _OP_SCHEMAS:
        _fragment.define(schema)


def ensure_torchvision_importable() -> str:
    """Import torchvision, declaring its missing op schemas first if the wheel needs them.

    Returns the outcome: ``absent`` (not installed), ``native`` (imported as is) or
    ``patched`` (imported after declaring the schemas). Idempotent.
    """
    global status
    import importlib
    import importlib.util

    if status != "unchecked":
        return status
    if importlib.util.find_spec("torchvision") is None:
        status = "absent"
        return status
    try:
        importlib.import_module("torchvision")
        if status == "unchecked":  # the import guard, when installed, has set it
            status = "native"
    except RuntimeError as exc:
        if _MISSING_OP_MESSAGE not in str(exc):
            raise
        _forget_partial_import()
        _declare_missing_schemas()
        importlib.import_module("torchvision")
        status = "patched"
    return status


class _GuardedLoader:
    """torchvision's own loader; on the missing-op error it declares the schemas and runs the
    package's ``__init__`` again (its half-imported submodules forgotten)."""

    def __init__(self, loader: object) -> None:
        self._loader = loader

    def create_module(self, spec: object) -> object:
        return self._loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        global status
        try:
            self._loader.exec_module(module)
            status = "native"
        except RuntimeError as exc:
            if _MISSING_OP_MESSAGE not in str(exc):
                raise
            _forget_partial_import(keep_package=True)
            _declare_missing_schemas()
            self._loader.exec_module(module)
            status = "patched"

    def __getattr__(self, name: str) -> object:  # resource readers etc. of the real loader
        return getattr(self._loader, name)


class TorchvisionImportGuard:
    """A ``sys.meta_path`` finder: finds torchvision through the other finders and wraps its
    loader. It stays in place until torchvision is imported (``find_spec`` alone, e.g.
    accelerate's availability checks, imports nothing). Not derived from ``importlib.abc``:
    importing that costs every interpreter start 20 ms."""

    def __init__(self) -> None:
        self._searching = False

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != "torchvision" or self._searching:
            return None
        import importlib.util

        self._searching = True  # the other finders answer the inner search
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _GuardedLoader(spec.loader)
        return spec


def install_import_guard() -> None:
    """Put :class:`TorchvisionImportGuard` first on ``sys.meta_path`` (once; not when
    torchvision is imported already)."""
    if "torchvision" in sys.modules or any(
        isinstance(finder, TorchvisionImportGuard) for finder in sys.meta_path
    ):
        return
    sys.meta_path.insert(0, TorchvisionImportGuard())
