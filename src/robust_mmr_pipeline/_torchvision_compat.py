"""Make ``torchvision`` importable beside a CPU-only torch whose C ops it cannot load.

timm imports torchvision (``torchvision.ops.misc``, ``torchvision.transforms``) and transformers
imports it when it is installed. PyPI's torchvision wheel is a CUDA build: next to the CPU torch
wheel its ``_C`` extension does not load, and ``torchvision/_meta_registrations.py`` then fails at
import with ``RuntimeError: operator torchvision::nms does not exist``. That kills ``import timm``
and transformers' model imports although neither needs the compiled ops.

``ensure_torchvision_importable()`` tries the import; only when it fails with exactly that error
does it declare the two operator schemas the registration file expects (``nms`` and ``qnms``,
without kernels) and import again. The pure-Python parts (transforms, ``ops.misc``) then work;
calling a compiled op such as ``torchvision.ops.nms`` still raises a clear "no kernel" error.
Where torchvision imports fine, or is absent, this does nothing.

Called once from the ``__init__`` of the packages that import timm or transformers (``model``,
``engine``, ``tasks``), so no module of those packages can import them first.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

_MISSING_OP_MESSAGE = "operator torchvision::nms does not exist"
_OP_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# Keeps the torch.library fragment alive: dropping it would unregister the schemas.
_fragment: Any = None
status: str = "unchecked"  # one of: unchecked, absent, native, patched


def _forget_partial_import() -> None:
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def ensure_torchvision_importable() -> str:
    """Import torchvision, declaring its missing op schemas first if the wheel needs them.

    Returns the outcome: ``absent`` (not installed), ``native`` (imported as is) or
    ``patched`` (imported after declaring the schemas). Idempotent.
    """
    global _fragment, status
    if status != "unchecked":
        return status
    if importlib.util.find_spec("torchvision") is None:
        status = "absent"
        return status
    try:
        importlib.import_module("torchvision")
        status = "native"
    except RuntimeError as exc:
        if _MISSING_OP_MESSAGE not in str(exc):
            raise
        import torch

        _forget_partial_import()
        _fragment = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _OP_SCHEMAS:
            _fragment.define(schema)
        importlib.import_module("torchvision")
        status = "patched"
    return status
