"""Helpers for the validation tests: the project's ``requires_shared`` marker and data root.

``tests/conftest.py`` cannot be imported as ``conftest`` from here (other test folders have
their own conftest.py, and pytest keeps only the last one under that name), so it is loaded by
path under a name of its own.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import zlib
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


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` (8-bit grey) followed by a few bytes
    of garbage image data: its size reads from the header, any decode fails. It stands for a
    huge image (a decompression bomb) without the memory to make one."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"\x78\x9c" + bytes(64))
    path.write_bytes(data + _chunk(b"IEND", b""))
    return path
