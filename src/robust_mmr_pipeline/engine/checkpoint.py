"""Checkpoint I/O: safetensors + JSON, written atomically, loaded without unpickling anything.

Folder layout (``root`` is ``<output_dir>/checkpoints``)::

    root/
      step-00000100/
        model.safetensors        weights (safetensors.torch.save_model: tied weights stored once)
        model.json               {"model_class": "pkg.module.Class", "config": {...}}
        trainer_state.json       step, epoch, batch_in_epoch, samples_seen, history tail, config
        optimizer.safetensors    optimizer state tensors, key "state/<param index>/<name>"
        optimizer.json           optimizer param groups + non-tensor state values
        scheduler.json           LR scheduler state_dict (JSON)
        scaler.json              fp16 GradScaler state (only with mixed_precision="fp16")
        rng.safetensors          torch CPU / CUDA generator states per rank
        rng.json                 numpy and Python RNG states per rank
        tokenizer/               tokenizer.save_pretrained(...) (only when a tokenizer is given)
      step-00000200/
      last -> step-00000200      relative symlink (a text file holding the name where symlinks
                                 are unsupported)
      superseded.json            only while a fresh run replaces an earlier run's checkpoints:
                                 the folders to delete once it has written its first one

Atomicity: a checkpoint is written into ``root/.tmp-<name>-<random>/``, every file and the folder
are fsync'ed, then the folder is renamed to its final name with ``os.replace`` and the parent is
fsync'ed; ``last`` is replaced the same way. A crash leaves at most a ``.tmp-*`` folder, which
listing ignores and the next save removes; a folder with a final name is always complete.

Replacing a run: :func:`supersede_checkpoints` marks the checkpoints of an earlier run instead of
deleting them; the trainer then starts fresh and deletes them only after it has written its own
first checkpoint. A run that fails before that (a bad model setting, a kill) leaves the earlier
checkpoints, and whatever points at them, intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file, save_model
from safetensors.torch import load_model as _st_load_model
from torch import nn

from robust_mmr_pipeline.engine.registry import (
    _annotated_config_type,
    build_model,
    class_path,
    registered_name,
    resolve_model_class,
)
from robust_mmr_pipeline.engine.rng import RngState, rng_state_from_files, rng_states_to_files

LOGGER = logging.getLogger(__name__)

CHECKPOINTS_DIRNAME = "checkpoints"
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
SUPERSEDED_FILE = "superseded.json"
REQUIRED_FILES: tuple[str, ...] = (MODEL_WEIGHTS, MODEL_META)
FORMAT_VERSION = 1

_STEP_RE = re.compile(r"^step-(\d+)$")
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"


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


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in filenames:
            _fsync_file(Path(dirpath) / filename)
        _fsync_dir(Path(dirpath))


def write_json(path: Path, data: Any) -> None:
    """Write JSON (UTF-8, sorted keys, exact float repr)."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True), encoding="utf-8")


def read_json(path: Path) -> Any:
    """Read a JSON file, raising :class:`CheckpointError` with the path on failure."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Cannot read checkpoint file {path}: {exc}") from exc


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success it atomically becomes ``target``.

    On any exception the temporary folder is removed and ``target`` is left as it was. An
    existing ``target`` is replaced (moved aside, swapped in, then deleted).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f"{_TMP_PREFIX}{target.name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists() or target.is_symlink():
            old = target.parent / f"{_OLD_PREFIX}{target.name}-{uuid.uuid4().hex[:12]}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temporaries(root: Path) -> list[Path]:
    """Remove ``.tmp-*`` / ``.old-*`` leftovers of interrupted saves under ``root``."""
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for child in root.iterdir():
        if child.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child)
    return removed


def _point_last(root: Path, name: str) -> None:
    """Atomically make ``root/last`` point at ``root/name``."""
    link = root / LAST_NAME
    tmp = root / f"{_TMP_PREFIX}{LAST_NAME}-{uuid.uuid4().hex[:12]}"
    try:
        os.symlink(name, tmp, target_is_directory=True)
    except (OSError, RuntimeError):  # RuntimeError covers platforms without symlinks
        tmp.write_text(name, encoding="utf-8")
        _fsync_file(tmp)
    if link.is_dir() and not link.is_symlink():
        raise CheckpointError(f"{link} is a real folder; remove it so it can point at {name}.")
    os.replace(tmp, link)
    _fsync_dir(root)


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


# --------------------------------------------------------------------------- state <-> files


def model_metadata(model: nn.Module, warn: bool = True) -> dict[str, Any]:
    """``model.json`` content: the registered class path and the model's config as a dict.

    ``warn`` logs a warning when the class is not registered (load_model would refuse it).
    """
    cls = type(model)
    name = registered_name(cls) or class_path(cls)
    if warn and registered_name(cls) is None:
        LOGGER.warning(
            "Model class %s is not registered with register_model_class: load_model() will "
            "refuse to rebuild it from this checkpoint.",
            name,
        )
    config = getattr(model, "config", None)
    if config is None:
        config_dict: dict[str, Any] = {}
    elif hasattr(config, "to_dict"):
        config_dict = dict(config.to_dict())
    elif isinstance(config, Mapping):
        config_dict = dict(config)
    else:
        raise CheckpointError(
            f"{name}.config must have to_dict() or be a mapping to be saved, got {type(config)}"
        )
    json.dumps(config_dict)  # fail early, with the offending type in the message
    return {"format_version": FORMAT_VERSION, "model_class": name, "config": config_dict}


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def optimizer_state_to_files(
    state_dict: Mapping[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten ``optimizer.state_dict()`` into tensors (safetensors) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for index, param_state in state_dict["state"].items():
        entry: dict[str, Any] = {}
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                name = f"state/{index}/{key}"
                tensors[name] = value.detach().to("cpu").clone().contiguous()
                entry[key] = {"tensor": name}
            else:
                entry[key] = {"value": _jsonable(value)}
        state_meta[str(index)] = entry
    groups = [_jsonable(dict(group)) for group in state_dict["param_groups"]]
    meta = {"format_version": FORMAT_VERSION, "state": state_meta, "param_groups": groups}
    return tensors, meta


def optimizer_state_from_files(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_files`: a dict for ``optimizer.load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for index, entry in meta["state"].items():
        param_state: dict[str, Any] = {}
        for key, spec in entry.items():
            param_state[key] = tensors[spec["tensor"]] if "tensor" in spec else spec["value"]
        state[int(index)] = param_state
    groups = []
    for saved in meta["param_groups"]:
        group = dict(saved)
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def _scheduler_state_to_json(state: Mapping[str, Any]) -> dict[str, Any]:
    out = _jsonable(dict(state))
    try:
        json.dumps(out)
    except TypeError as exc:
        raise CheckpointError(f"Scheduler state is not JSON-serialisable: {exc}") from exc
    return out


# --------------------------------------------------------------------------- save


def write_checkpoint_files(
    folder: Path,
    model: nn.Module,
    contents: CheckpointContents,
    tokenizer: Any = None,
) -> None:
    """Write every checkpoint file into an existing (temporary) ``folder``."""
    folder = Path(folder)
    meta = model_metadata(model)
    save_model(model, str(folder / MODEL_WEIGHTS), metadata={"format": "pt"})
    write_json(folder / MODEL_META, meta)
    if contents.optimizer_state is not None:
        tensors, opt_meta = optimizer_state_to_files(contents.optimizer_state)
        save_file(tensors, str(folder / OPTIMIZER_TENSORS), metadata={"format": "pt"})
        write_json(folder / OPTIMIZER_META, opt_meta)
    if contents.scheduler_state is not None:
        write_json(folder / SCHEDULER_STATE, _scheduler_state_to_json(contents.scheduler_state))
    if contents.scaler_state is not None:
        write_json(folder / SCALER_STATE, _jsonable(dict(contents.scaler_state)))
    if contents.rng_states is not None:
        rng_tensors, rng_meta = rng_states_to_files(contents.rng_states)
        save_file(rng_tensors, str(folder / RNG_TENSORS), metadata={"format": "pt"})
        write_json(folder / RNG_META, rng_meta)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    state = dict(contents.trainer_state)
    state.setdefault("format_version", FORMAT_VERSION)
    write_json(folder / TRAINER_STATE, _jsonable(state))


def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    contents: CheckpointContents,
    *,
    tokenizer: Any = None,
    keep_last: int = 0,
    before_commit: Callable[[Path], None] | None = None,
) -> Path:
    """Atomically write ``root/step-XXXXXXXX``, point ``root/last`` at it and prune old ones.

    ``keep_last`` > 0 keeps that many step checkpoints (always including the new one);
    0 keeps all. ``before_commit`` (tests, hooks) is called with the temporary folder once
    every file is written, before the rename. Returns the final folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / step_dirname(step)
    with atomic_directory(target) as tmp:
        write_checkpoint_files(tmp, model, contents, tokenizer)
        if before_commit is not None:
            before_commit(tmp)
    _point_last(root, target.name)
    if keep_last > 0:
        prune_checkpoints(root, keep_last)
    return target


def prune_checkpoints(root: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints (never the ``last`` target)."""
    root = Path(root)
    found = list_checkpoints(root)
    latest = latest_checkpoint(root)
    removed = []
    for _step, path in found[: max(0, len(found) - keep_last)]:
        if latest is not None and path.resolve() == latest.resolve():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


# --------------------------------------------------------------------------- load


def read_trainer_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``trainer_state.json`` of a checkpoint."""
    path = resolve_checkpoint(path)
    return read_json(path / TRAINER_STATE)


def load_model_weights(model: nn.Module, path: str | os.PathLike[str], strict: bool = True) -> None:
    """Load ``model.safetensors`` of a checkpoint into ``model`` (no pickle involved)."""
    path = resolve_checkpoint(path)
    missing, unexpected = _st_load_model(model, str(path / MODEL_WEIGHTS), strict=strict)
    if missing or unexpected:
        LOGGER.warning("Loading %s: missing keys %s, unexpected keys %s", path, missing, unexpected)


def load_training_contents(path: str | os.PathLike[str], rank: int = 0) -> CheckpointContents:
    """Optimizer, scheduler, scaler and trainer state plus this rank's RNG state (no pickle)."""
    path = resolve_checkpoint(path)
    optimizer_state = None
    if (path / OPTIMIZER_META).is_file():
        optimizer_state = optimizer_state_from_files(
            load_file(str(path / OPTIMIZER_TENSORS)), read_json(path / OPTIMIZER_META)
        )
    scheduler_state = (
        read_json(path / SCHEDULER_STATE) if (path / SCHEDULER_STATE).is_file() else None
    )
    scaler_state = read_json(path / SCALER_STATE) if (path / SCALER_STATE).is_file() else None
    rng_states = None
    if (path / RNG_META).is_file():
        tensors = load_file(str(path / RNG_TENSORS))
        meta = read_json(path / RNG_META)
        state = rng_state_from_files(tensors, meta, rank)
        rng_states = [state] if state is not None else None
    return CheckpointContents(
        trainer_state=read_json(path / TRAINER_STATE),
        optimizer_state=optimizer_state,
        scheduler_state=scheduler_state,
        scaler_state=scaler_state,
        rng_states=rng_states,
    )


MODEL_META_KEYS: tuple[str, ...] = ("format_version", "model_class", "config")


def _unknown_config_keys(config_type: Any, data: Any, prefix: str) -> list[str]:
    """Key paths in ``data`` that the config dataclass ``config_type`` does not have."""
    if not dataclasses.is_dataclass(config_type):  # ``X | None``: the dataclass inside
        inner = [a for a in typing.get_args(config_type) if dataclasses.is_dataclass(a)]
        config_type = inner[0] if inner else None
    if config_type is None or not isinstance(data, Mapping):
        return []
    hints = typing.get_type_hints(config_type)
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = [f"{prefix}{key}" for key in data if key not in names]
    for key, value in data.items():
        if key in names:
            unknown += _unknown_config_keys(hints.get(key), value, f"{prefix}{key}.")
    return unknown


def read_model_meta(path: Path) -> dict[str, Any]:
    """``model.json`` of the checkpoint folder ``path``, checked key by key.

    An unknown top-level key, a missing ``model_class``, or a ``config`` key its model's config
    class does not have raises :class:`CheckpointError` naming the folder, the file and the key
    path (``config.vision.patch_sise``): nothing in model.json is silently ignored.
    """
    file = path / MODEL_META
    meta = read_json(file)
    where = f"Checkpoint {path}: {MODEL_META}"
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where} holds a JSON {type(meta).__name__}, not an object.")
    unknown = sorted(set(meta) - set(MODEL_META_KEYS))
    if unknown:
        raise CheckpointError(
            f"{where} has unknown key(s) {unknown} (allowed: {list(MODEL_META_KEYS)}). Fix: "
            f"remove them from {file}, or use a checkpoint written by this project."
        )
    if "model_class" not in meta:
        raise CheckpointError(f"{where} lacks the key 'model_class'.")
    if not isinstance(meta.get("config", {}), dict):
        raise CheckpointError(f"{where} key 'config' must be an object.")
    cls = resolve_model_class(meta["model_class"])
    config_type = getattr(cls, "config_class", None) or _annotated_config_type(cls)
    unknown = _unknown_config_keys(config_type, meta.get("config", {}), "config.")
    if unknown:
        raise CheckpointError(
            f"{where} has unknown key(s) {unknown} for {meta['model_class']}. Fix: remove or "
            f"correct them in {file} (a checkpoint of another version of the project?)."
        )
    return meta


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The tokenizer saved in a checkpoint's ``tokenizer/`` folder, or None."""
    folder = resolve_checkpoint(path) / TOKENIZER_DIR
    if not folder.is_dir():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of what makes a tokenizer encode the way it does: the fast tokenizer's JSON
    (vocabulary, normalizer, pre-tokenizer, post-processor, added tokens) without the runtime
    truncation / padding state, else its vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
    else:
        spec = {"vocab": dict(tokenizer.get_vocab())}
    text = json.dumps(spec, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_tokenizer_matches(tokenizer: Any, checkpoint_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`CheckpointError` when ``tokenizer`` is not the one saved with the checkpoint.

    A model's token embeddings are indexed by its tokenizer's ids: continuing (resuming or
    fine-tuning) with another tokenizer silently scrambles them.
    """
    path = resolve_checkpoint(checkpoint_dir)
    saved = load_tokenizer(path)
    if tokenizer is None or saved is None:
        return
    if tokenizer_fingerprint(tokenizer) != tokenizer_fingerprint(saved):
        raise CheckpointError(
            f"The tokenizer given to continue from {path} is not the one saved with it "
            f"({path / TOKENIZER_DIR}): its token ids would not match the model's embeddings. "
            "Use the checkpoint's tokenizer (engine.load_tokenizer(checkpoint) / "
            "load_model(checkpoint)), or start a fresh run."
        )


# --------------------------------------------------------------------------- superseding


def _folder_identity(path: Path) -> list[int]:
    """Device and inode of a folder: a later folder written under the same name (an atomic
    replace) has another inode, so it is never mistaken for the superseded one."""
    info = path.stat()
    return [int(info.st_dev), int(info.st_ino)]


def supersede_checkpoints(root: str | os.PathLike[str], extra_roots: Sequence[Path] = ()) -> int:
    """Mark the step checkpoints under ``root`` (and ``extra_roots``) as belonging to an earlier
    run, to be deleted by :func:`remove_superseded` once a fresh run in ``root`` has written its
    first checkpoint. Returns how many folders are marked (none: no marker is left behind).
    """
    root = Path(root)
    folders = [path for r in (root, *map(Path, extra_roots)) for _, path in list_checkpoints(r)]
    marker = root / SUPERSEDED_FILE
    if not folders:
        marker.unlink(missing_ok=True)
        return 0
    root.mkdir(parents=True, exist_ok=True)
    # paths relative to the marker's folder: the project may be moved between runs
    entries = [
        {"path": os.path.relpath(path, root), "id": _folder_identity(path)} for path in folders
    ]
    tmp = root / f"{_TMP_PREFIX}{SUPERSEDED_FILE}-{uuid.uuid4().hex[:12]}"
    write_json(tmp, {"format_version": FORMAT_VERSION, "folders": entries})
    _fsync_file(tmp)
    os.replace(tmp, marker)
    _fsync_dir(root)
    return len(entries)


def superseded_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """The marked folders of an earlier run under ``root`` that still exist unchanged."""
    marker = Path(root) / SUPERSEDED_FILE
    if not marker.is_file():
        return []
    found = []
    for entry in read_json(marker).get("folders", []):
        path = Path(os.path.normpath(Path(root) / entry["path"]))
        if path.is_dir() and not path.is_symlink() and _folder_identity(path) == entry["id"]:
            found.append(path)
    return found


def remove_superseded(root: str | os.PathLike[str]) -> list[Path]:
    """Delete the marked folders of the earlier run (never one written since) and the marker."""
    root = Path(root)
    removed = superseded_checkpoints(root)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    (root / SUPERSEDED_FILE).unlink(missing_ok=True)
    _fsync_dir(root)
    return removed


def keep_superseded(root: str | os.PathLike[str]) -> None:
    """Forget the marker: the earlier run's checkpoints stay (e.g. that run is being resumed)."""
    (Path(root) / SUPERSEDED_FILE).unlink(missing_ok=True)


def load_model(
    checkpoint_dir: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Rebuild a model from a checkpoint alone: ``(model, tokenizer_or_None, meta)``.

    The class comes from ``model.json`` through the allow-list registry (never an arbitrary
    import), the weights from ``model.safetensors``; the model is returned in eval mode on
    ``device``. ``meta`` holds ``model_class``, ``config``, ``checkpoint_dir`` and
    ``trainer_state`` (None when absent).
    """
    path = verify_checkpoint(checkpoint_dir)
    meta = read_model_meta(path)
    try:
        model = build_model(meta["model_class"], dict(meta.get("config", {})))
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"Checkpoint {path}: {MODEL_META} key 'config' does not build "
            f"{meta['model_class']}: {exc}. Fix: load a checkpoint written by this version of "
            "the project, or correct the value in model.json."
        ) from exc
    load_model_weights(model, path)
    model.to(device)
    model.eval()
    tokenizer = load_tokenizer(path)
    trainer_state = read_json(path / TRAINER_STATE) if (path / TRAINER_STATE).is_file() else None
    info = {
        "model_class": meta["model_class"],
        "config": meta.get("config", {}),
        "checkpoint_dir": str(path),
        "trainer_state": trainer_state,
    }
    return model, tokenizer, info
