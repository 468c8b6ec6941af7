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

    <output_dir>/.next-run/      a fresh run that replaces an earlier one trains here (its own
                                 checkpoints/, best/) until it is published
    <output_dir>/replaced.json   the earlier run's folders left after publishing, deleted once
                                 the manifest naming the new run is saved

Atomicity: a checkpoint is written into ``root/.tmp-<name>-<random>/``, every file and the folder
are fsync'ed, then the folder is renamed to its final name with ``os.replace`` and the parent is
fsync'ed; ``last`` is replaced the same way. A crash leaves at most a ``.tmp-*`` folder, which
listing ignores and the next save removes; a folder with a final name is always complete.

Replacing a run (:func:`start_run`, :class:`RunTarget`): nothing of a finished run is deleted
before the run replacing it has written its final checkpoint. The new run trains in
``.next-run/``; once it has finished, :meth:`RunTarget.publish` moves its checkpoints into place
(a folder of the same name exchanged atomically) and points ``last`` at its latest; the earlier
run's remaining folders go once the manifest naming the new checkpoint is saved
(:func:`retire_replaced`). A run killed or failed at any point before leaves the earlier run,
and every manifest pointing at it, intact; a later ``resume: true`` continues it in
``.next-run/``, a later fresh run discards it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import sys
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
from robust_mmr_pipeline.launch import launched_process

LOGGER = logging.getLogger(__name__)

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


def save_best(
    root: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    state: Mapping[str, Any],
    tokenizer: Any,
    is_main_process: bool,
) -> None:
    """Keep ``model`` at ``step`` as THE best-on-validation checkpoint under ``root`` (one kept;
    ``state`` joins ``step`` in its trainer state). Only the main process writes."""
    if is_main_process:
        save_checkpoint(
            root,
            step,
            model,
            CheckpointContents(trainer_state={"step": step, **state}),
            tokenizer=tokenizer,
            keep_last=1,
        )


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


# --------------------------------------------------------------------------- replacing a run


def _exchange(first: Path, second: Path) -> bool:
    """Swap two folders in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    False where the platform or file system cannot (then nothing changed)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    status = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), f"{first} <-> {second}")


def _move_into_place(new: Path, target: Path, trash: Path) -> None:
    """Make ``new`` the folder at ``target``; an existing ``target`` goes to ``trash``.

    ``target`` never stops existing where the folders can be exchanged atomically; elsewhere it
    is missing between two renames."""
    if not target.exists():
        os.replace(new, target)
        return
    if _exchange(new, target):  # ``new`` now holds the earlier folder
        os.replace(new, trash)
        return
    os.replace(target, trash)
    os.replace(new, target)


def _folder_identity(path: Path) -> list[int]:
    """Device and inode of a folder: a later folder written under the same name (an atomic
    replace) has another inode, so it is never mistaken for the replaced one."""
    info = path.stat()
    return [int(info.st_dev), int(info.st_ino)]


def _has_checkpoints(folder: Path) -> bool:
    return bool(list_checkpoints(folder))


@dataclass(frozen=True)
class RunTarget:
    """Where a training run writes its checkpoint folders, and how it replaces an earlier run.

    ``folders`` are the checkpoint roots of ``output_dir`` the run owns (``checkpoints``, and
    ``best`` for fine-tuning). A fresh run in an ``output_dir`` that holds checkpoints writes
    into ``output_dir/.next-run/`` (``write_dir``) instead, so nothing of the earlier run is
    touched while it trains; :meth:`publish` moves the finished run into ``output_dir``. A run
    that is killed or fails before that leaves the earlier run, and whatever points at it,
    exactly as it was.
    """

    output_dir: Path
    write_dir: Path
    folders: tuple[str, ...] = (CHECKPOINTS_DIRNAME,)

    @property
    def staged(self) -> bool:
        """Whether this run replaces an earlier one (it writes into the staging folder)."""
        return self.write_dir != self.output_dir

    def final_path(self, path: str | os.PathLike[str]) -> Path:
        """Where ``path`` (under ``write_dir``) lies once the run is published."""
        path = Path(path)
        if not self.staged:
            return path
        return self.output_dir / path.relative_to(self.write_dir)

    def publish(self) -> list[Path]:
        """Move the finished staged run into ``output_dir``; return the earlier run's folders
        left to retire (on the main process; the others wait for it and get ``[]``).

        Folder by folder, each step checkpoint of the new run takes its place (a folder of the
        same name is exchanged atomically), then ``last`` points at the new run's latest. The
        earlier run's other step folders stay, listed in ``output_dir/replaced.json``, until
        :func:`retire_replaced` deletes them: the pipeline calls it once the manifest naming
        the new checkpoint is saved, so no manifest ever names a folder that is gone.
        """
        if not self.staged:
            return []
        from accelerate import PartialState

        state = PartialState()  # the training run's: every process has read what it needs
        state.wait_for_everyone()
        leftover = self._publish() if state.is_main_process else []
        state.wait_for_everyone()
        return leftover

    def _publish(self) -> list[Path]:
        leftover: list[Path] = []
        for name in self.folders:
            staged, target = self.write_dir / name, self.output_dir / name
            new_names = set()
            if staged.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                clean_stale_temporaries(target)
                latest = latest_checkpoint(staged)
                for _step, path in list_checkpoints(staged):
                    trash = target / f"{_OLD_PREFIX}{path.name}-{uuid.uuid4().hex[:12]}"
                    _move_into_place(path, target / path.name, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                    new_names.add(path.name)
                _fsync_dir(target)
                if latest is not None:
                    _point_last(target, latest.name)
                shutil.rmtree(staged, ignore_errors=True)
            # what is left of the earlier run here (all of it where the new run wrote nothing)
            leftover += [p for _s, p in list_checkpoints(target) if p.name not in new_names]
        _mark_replaced(self.output_dir, leftover)
        shutil.rmtree(self.write_dir, ignore_errors=True)
        _fsync_dir(self.output_dir)
        if leftover:
            LOGGER.info(
                "Published the new run in %s; %d checkpoint(s) of the earlier run (%s) are "
                "deleted once the manifest naming the new one is saved.",
                self.output_dir,
                len(leftover),
                ", ".join(p.name for p in leftover),
            )
        return leftover


def start_run(
    output_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    resume_from: str | os.PathLike[str] | None = None,
    folders: Sequence[str] = (CHECKPOINTS_DIRNAME,),
    prepare: bool = True,
) -> RunTarget:
    """The :class:`RunTarget` of a training run with these settings (``prepare``: also empty
    the staging folder of an unfinished earlier replacement, which a fresh run discards).

    ``resume`` continues the unfinished replacement in the staging folder when there is one,
    else the run in ``output_dir`` itself. A fresh run (or one started ``resume_from`` a given
    checkpoint) writes into ``output_dir`` when it holds no checkpoints, else into the staging
    folder.
    """
    output_dir = Path(output_dir)
    folders = tuple(folders)
    staging = output_dir / NEXT_RUN_DIRNAME
    for name in folders:  # checked before any training: publishing must be able to point it
        link = output_dir / name / LAST_NAME
        if link.is_dir() and not link.is_symlink():
            raise CheckpointError(
                f"{link} is a real folder, not the pointer to the latest checkpoint (a copy "
                "that followed symbolic links?). Fix: delete it (the step-* folders beside it "
                "hold the checkpoints), then run again."
            )
    if resume and not resume_from:
        if any(_has_checkpoints(staging / name) for name in folders):
            return RunTarget(output_dir, staging, folders)
        return RunTarget(output_dir, output_dir, folders)
    replaces = any(_has_checkpoints(output_dir / name) for name in folders)
    # one process discards (nothing is written there before the training run's first barrier)
    if prepare and launched_process().is_main and staging.exists():
        unfinished = [p.name for name in folders for _s, p in list_checkpoints(staging / name)]
        LOGGER.info(
            "Discarding an unfinished replacement run in %s (%s); the published run in %s is "
            "untouched.",
            staging,
            ", ".join(unfinished) or "no checkpoint",
            output_dir,
        )
        shutil.rmtree(staging, ignore_errors=True)
    return RunTarget(output_dir, staging if replaces else output_dir, folders)


def _mark_replaced(output_dir: Path, folders: Sequence[Path]) -> None:
    marker = output_dir / REPLACED_FILE
    if not folders:
        marker.unlink(missing_ok=True)
        return
    # paths relative to the marker's folder: the project may be moved between runs
    entries = [
        {"path": os.path.relpath(path, output_dir), "id": _folder_identity(path)}
        for path in folders
    ]
    tmp = output_dir / f"{_TMP_PREFIX}{REPLACED_FILE}-{uuid.uuid4().hex[:12]}"
    write_json(tmp, {"format_version": FORMAT_VERSION, "folders": entries})
    _fsync_file(tmp)
    os.replace(tmp, marker)
    _fsync_dir(output_dir)


def replaced_checkpoints(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The earlier run's folders under ``output_dir`` still waiting to be retired (those that
    still exist unchanged)."""
    marker = Path(output_dir) / REPLACED_FILE
    if not marker.is_file():
        return []
    found = []
    for entry in read_json(marker).get("folders", []):
        path = Path(os.path.normpath(Path(output_dir) / entry["path"]))
        if path.is_dir() and not path.is_symlink() and _folder_identity(path) == entry["id"]:
            found.append(path)
    return found


def retire_replaced(output_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the folders of the run a published run replaced (never one written since).

    Call it once whatever named the earlier run's checkpoints (a manifest) names the new
    run's; the Kedro hook :class:`robust_mmr_pipeline.hooks.ReplacedCheckpointHooks` does it
    after a manifest is saved."""
    output_dir = Path(output_dir)
    removed = replaced_checkpoints(output_dir)
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    (output_dir / REPLACED_FILE).unlink(missing_ok=True)
    _fsync_dir(output_dir)
    if removed:
        LOGGER.info(
            "Removed %d checkpoint(s) of the replaced run (%s).",
            len(removed),
            ", ".join(str(path) for path in removed),
        )
    return removed


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
