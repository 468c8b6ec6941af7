"""A checkpoint folder on disk: its file names, its error type, and finding intact checkpoints.

See :mod:`robust_mmr_pipeline.engine.checkpoint` for the layout and the atomicity guarantees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from robust_mmr_pipeline.engine.rng import RngState
from robust_mmr_pipeline.io_utils import (
    fsync_dir,
    fsync_file,
    unique_suffix,
)

CHECKPOINTS_DIRNAME = "checkpoints"
# the checkpoint chosen on validation (fine-tuning's best step, pre-training's best probe)
BEST_DIRNAME = "best"
LAST_NAME = "last"
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
SCHEDULER_STATE = "scheduler.json"
SCALER_STATE = "scaler.json"
RNG_TENSORS = "rng.safetensors"
RNG_META = "rng.json"
TOKENIZER_DIR = "tokenizer"
NEXT_RUN_DIRNAME = ".next-run"
REPLACED_FILE = "replaced.json"
REQUIRED_FILES: tuple[str, ...] = (MODEL_WEIGHTS, MODEL_META)
FORMAT_VERSION = 1

_STEP_RE = re.compile(r"^step-(\d+)$")
TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or unreadable; the message names the path."""


@dataclass(frozen=True)
class CheckpointContents:
    """Everything a training checkpoint holds besides the weights of ``model``."""

    trainer_state: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    scaler_state: dict[str, Any] | None = None
    rng_states: list[RngState] | None = None


# --------------------------------------------------------------------------- file helpers


def step_dirname(step: int) -> str:
    """Folder name of the checkpoint taken after ``step`` optimizer steps."""
    return f"step-{int(step):08d}"


def write_json(path: Path, data: Any) -> None:
    """Write JSON (UTF-8, sorted keys, exact float repr)."""
    path.write_text(json_text(data), encoding="utf-8")


def json_text(data: Any) -> str:
    """The JSON text of a checkpoint file: sorted keys, exact float repr."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=True)


def read_json(path: Path) -> Any:
    """Read a JSON file, raising :class:`CheckpointError` with the path on failure."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Cannot read checkpoint file {path}: {exc}") from exc


def clean_stale_temporaries(root: Path) -> list[Path]:
    """Remove ``.tmp-*`` / ``.old-*`` leftovers of interrupted saves under ``root``."""
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        if child.name.startswith((TMP_PREFIX, OLD_PREFIX)):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child)
    return removed


def point_last(root: Path, name: str) -> None:
    """Atomically make ``root/last`` point at ``root/name``."""
    link = root / LAST_NAME
    tmp = root / f"{TMP_PREFIX}{LAST_NAME}-{unique_suffix()}"
    try:
        os.symlink(name, tmp, target_is_directory=True)
    except (OSError, RuntimeError):  # RuntimeError covers platforms without symlinks
        tmp.write_text(name, encoding="utf-8")
        fsync_file(tmp)
    if link.is_dir() and not link.is_symlink():
        raise CheckpointError(f"{link} is a real folder; remove it so it can point at {name}.")
    os.replace(tmp, link)
    fsync_dir(root)


# --------------------------------------------------------------------------- discovery


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete step checkpoints under ``root`` as ``(step, path)``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_RE.match(child.name)
        if match and child.is_dir() and not child.is_symlink():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint ``root/last`` points to (or the highest step folder), or None."""
    root = Path(root)
    link = root / LAST_NAME
    if link.is_symlink() or link.is_file():
        name = os.readlink(link) if link.is_symlink() else link.read_text("utf-8").strip()
        candidate = root / name
        if candidate.is_dir() and (candidate / MODEL_META).exists():
            return candidate
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint folder from a checkpoint folder, a ``checkpoints`` root or an output dir."""
    path = Path(path)
    if path.is_symlink():
        path = path.parent / os.readlink(path)
    elif path.is_file():  # a 'last' pointer written as a text file
        path = path.parent / path.read_text(encoding="utf-8").strip()
    if (path / MODEL_META).is_file():
        return path
    for root in (path, path / CHECKPOINTS_DIRNAME):
        latest = latest_checkpoint(root)
        if latest is not None:
            return latest
    raise CheckpointError(
        f"No checkpoint found at {path}: expected a folder with {MODEL_META} and "
        f"{MODEL_WEIGHTS}, or a folder holding step-* checkpoints and a '{LAST_NAME}' pointer."
    )


def verify_checkpoint(path: str | os.PathLike[str]) -> Path:
    """Check a checkpoint is complete and readable (JSON parses, safetensors headers open)."""
    path = resolve_checkpoint(path)
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"Checkpoint {path} is incomplete: {name} is missing.")
    for name in (MODEL_META, TRAINER_STATE, OPTIMIZER_META, SCHEDULER_STATE, RNG_META):
        if (path / name).is_file():
            read_json(path / name)
    for name in (MODEL_WEIGHTS, OPTIMIZER_TENSORS, RNG_TENSORS):
        if (path / name).is_file():
            try:
                with safe_open(str(path / name), framework="pt") as handle:
                    list(handle.keys())
            except Exception as exc:
                raise CheckpointError(
                    f"Checkpoint file {path / name} is unreadable: {exc}"
                ) from exc
    return path
