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

This module saves and loads; beside it: :mod:`.checkpoint_layout` (file names, discovery,
verification), :mod:`.checkpoint_state` (optimizer / scheduler / model metadata to files),
:mod:`.checkpoint_meta` (``model.json`` checks, the saved tokenizer), :mod:`.run_replacement`
(replacing a run). Everything is importable from here.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file, save_model
from safetensors.torch import load_model as _st_load_model
from torch import nn

from robust_mmr_pipeline.engine.checkpoint_layout import (
    BEST_DIRNAME,
    CHECKPOINTS_DIRNAME,
    FORMAT_VERSION,
    LAST_NAME,
    MODEL_META,
    MODEL_WEIGHTS,
    NEXT_RUN_DIRNAME,
    OLD_PREFIX,
    OPTIMIZER_META,
    OPTIMIZER_TENSORS,
    REPLACED_FILE,
    REQUIRED_FILES,
    RNG_META,
    RNG_TENSORS,
    SCALER_STATE,
    SCHEDULER_STATE,
    TMP_PREFIX,
    TOKENIZER_DIR,
    TRAINER_STATE,
    CheckpointContents,
    CheckpointError,
    clean_stale_temporaries,
    json_text,
    latest_checkpoint,
    list_checkpoints,
    point_last,
    read_json,
    resolve_checkpoint,
    step_dirname,
    verify_checkpoint,
    write_json,
)
from robust_mmr_pipeline.engine.checkpoint_meta import (
    MODEL_META_KEYS,
    check_tokenizer_matches,
    load_tokenizer,
    read_model_meta,
    tokenizer_fingerprint,
)
from robust_mmr_pipeline.engine.checkpoint_state import (
    jsonable,
    model_metadata,
    optimizer_state_from_files,
    optimizer_state_to_files,
    scheduler_state_to_json,
)
from robust_mmr_pipeline.engine.registry import build_model
from robust_mmr_pipeline.engine.rng import rng_state_from_files, rng_states_to_files
from robust_mmr_pipeline.engine.run_replacement import (
    RunTarget,
    replaced_checkpoints,
    retire_replaced,
    start_run,
)
from robust_mmr_pipeline.io_utils import atomic_directory

LOGGER = logging.getLogger(__name__)

# The checkpoint API in one place: this module's save/load and, re-exported, what the modules
# beside it define (layout and discovery, model.json and tokenizer, state files, replacing a run).
__all__ = [
    "BEST_DIRNAME",
    "CHECKPOINTS_DIRNAME",
    "FORMAT_VERSION",
    "LAST_NAME",
    "MODEL_META",
    "MODEL_META_KEYS",
    "MODEL_WEIGHTS",
    "NEXT_RUN_DIRNAME",
    "OLD_PREFIX",
    "OPTIMIZER_META",
    "OPTIMIZER_TENSORS",
    "REPLACED_FILE",
    "REQUIRED_FILES",
    "RNG_META",
    "RNG_TENSORS",
    "SCALER_STATE",
    "SCHEDULER_STATE",
    "TMP_PREFIX",
    "TOKENIZER_DIR",
    "TRAINER_STATE",
    "CheckpointContents",
    "CheckpointError",
    "RunTarget",
    "check_tokenizer_matches",
    "clean_stale_temporaries",
    "json_text",
    "jsonable",
    "latest_checkpoint",
    "list_checkpoints",
    "load_model",
    "load_model_weights",
    "load_tokenizer",
    "load_training_contents",
    "model_metadata",
    "optimizer_state_from_files",
    "optimizer_state_to_files",
    "point_last",
    "prune_checkpoints",
    "read_json",
    "read_model_meta",
    "read_trainer_state",
    "replaced_checkpoints",
    "resolve_checkpoint",
    "retire_replaced",
    "save_best",
    "save_checkpoint",
    "scheduler_state_to_json",
    "start_run",
    "step_dirname",
    "tokenizer_fingerprint",
    "verify_checkpoint",
    "write_checkpoint_files",
    "write_json",
]

# --------------------------------------------------------------------------- state <-> files


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
        write_json(folder / SCHEDULER_STATE, scheduler_state_to_json(contents.scheduler_state))
    if contents.scaler_state is not None:
        write_json(folder / SCALER_STATE, jsonable(dict(contents.scaler_state)))
    if contents.rng_states is not None:
        rng_tensors, rng_meta = rng_states_to_files(contents.rng_states)
        save_file(rng_tensors, str(folder / RNG_TENSORS), metadata={"format": "pt"})
        write_json(folder / RNG_META, rng_meta)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder / TOKENIZER_DIR))
    state = dict(contents.trainer_state)
    state.setdefault("format_version", FORMAT_VERSION)
    write_json(folder / TRAINER_STATE, jsonable(state))


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
    with atomic_directory(target, tmp_prefix=TMP_PREFIX, old_prefix=OLD_PREFIX) as tmp:
        write_checkpoint_files(tmp, model, contents, tokenizer)
        if before_commit is not None:
            before_commit(tmp)
    point_last(root, target.name)
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
