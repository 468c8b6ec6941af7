"""Both branches of the torchvision import guard, each in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A stand-in torchvision whose import registers a fake kernel for torchvision::nms, exactly the
# call that breaks PyPI's CUDA torchvision beside CPU torch when its C ops did not load.
BROKEN_TORCHVISION = """
import torch
torch.library.register_fake("torchvision::nms")(lambda dets, scores, iou_threshold: dets)
"""
HEALTHY_TORCHVISION = """
value = 42
"""

PROBE = textwrap.dedent(
    """
    import sys
    from robust_mmr_pipeline import _torchvision_compat as compat
    # without the import guard the venv's .pth file installs (tested on its own below)
    guard = compat.TorchvisionImportGuard
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, guard)]
    outcome = compat.ensure_torchvision_importable()
    import torchvision
    print(outcome, torchvision.__file__.startswith(sys.argv[1]), compat._fragment is not None)
    """
)


# The import guard the venv's .pth file installs: a program that imports torchvision (here after
# an availability check by find_spec, as accelerate does) without calling the project first.
GUARD_PROBE = textwrap.dedent(
    """
    import importlib.util, sys
    from robust_mmr_pipeline import _torchvision_compat as compat
    compat.install_import_guard()
    assert importlib.util.find_spec("torchvision") is not None
    import torchvision
    print(compat.status, torchvision.__file__.startswith(sys.argv[1]), compat._fragment is not None)
    """
)


def _probe_with(package_source: str, tmp_path: Path, probe: str = PROBE) -> list[str]:
    package = tmp_path / "fake" / "torchvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(package_source)
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "fake")],
        env={"PYTHONPATH": str(tmp_path / "fake"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_broken_wheel_is_patched(tmp_path: Path) -> None:
    assert _probe_with(BROKEN_TORCHVISION, tmp_path) == ["patched", "True", "True"]


def test_healthy_torchvision_is_left_alone(tmp_path: Path) -> None:
    assert _probe_with(HEALTHY_TORCHVISION, tmp_path) == ["native", "True", "False"]


def test_import_guard_patches_a_broken_wheel_imported_by_another_program(tmp_path: Path) -> None:
    assert _probe_with(BROKEN_TORCHVISION, tmp_path, GUARD_PROBE) == ["patched", "True", "True"]


def test_import_guard_leaves_a_healthy_torchvision_alone(tmp_path: Path) -> None:
    assert _probe_with(HEALTHY_TORCHVISION, tmp_path, GUARD_PROBE) == ["native", "True", "False"]


def test_the_accelerate_command_starts_in_this_environment() -> None:
    # `accelerate` imports timm -> torchvision at start, before any module of the project: the
    # guard the .pth file of `make install` puts in place is what lets it start beside CPU torch
    accelerate = Path(sys.executable).with_name("accelerate")
    result = subprocess.run(
        [str(accelerate), "launch", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--num_processes" in result.stdout


def test_other_runtime_errors_propagate(tmp_path: Path) -> None:
    package = tmp_path / "fake" / "torchvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('something else broke')\n")
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "fake")],
        env={"PYTHONPATH": str(tmp_path / "fake"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "something else broke" in result.stderr


@pytest.mark.slow
def test_timm_and_transformers_import_in_this_environment() -> None:
    code = (
        "from robust_mmr_pipeline._torchvision_compat import ensure_torchvision_importable as e;"
        "e(); import timm; from transformers import BertModel;"
        "timm.create_model('vit_tiny_patch16_224', pretrained=False, img_size=32, patch_size=8);"
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip().endswith("ok"), result.stderr
