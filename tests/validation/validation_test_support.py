"""Helpers for the validation tests: the project's ``requires_shared`` marker and data root.

``tests/conftest.py`` cannot be imported as ``conftest`` from here (other test folders have
their own conftest.py, and pytest keeps only the last one under that name), so it is loaded by
path under a name of its own.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_NAME = "robust_mmr_tests_root_conftest"
_PATH = Path(__file__).resolve().parents[1] / "conftest.py"


def _root_conftest() -> ModuleType:
    module = sys.modules.get(_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_NAME, _PATH)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {_PATH}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module
        spec.loader.exec_module(module)
    return module


requires_shared = _root_conftest().requires_shared
SHARED_DATA: Path = _root_conftest().SHARED_DATA
