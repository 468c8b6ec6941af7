"""Replacing a finished run without ever deleting it early: train into ``.next-run/``, publish by
swapping folders, retire the replaced checkpoints once the new run's manifest is saved.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from robust_mmr_pipeline.engine.checkpoint_layout import (
    CHECKPOINTS_DIRNAME,
    FORMAT_VERSION,
    LAST_NAME,
    NEXT_RUN_DIRNAME,
    OLD_PREFIX,
    REPLACED_FILE,
    TMP_PREFIX,
    CheckpointError,
    clean_stale_temporaries,
    json_text,
    latest_checkpoint,
    list_checkpoints,
    point_last,
    read_json,
)
from robust_mmr_pipeline.io_utils import (
    atomic_write_text,
    fsync_dir,
    unique_suffix,
)
from robust_mmr_pipeline.launch import launched_process

LOGGER = logging.getLogger(__name__)

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
                    trash = target / f"{OLD_PREFIX}{path.name}-{unique_suffix()}"
                    _move_into_place(path, target / path.name, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                    new_names.add(path.name)
                fsync_dir(target)
                if latest is not None:
                    point_last(target, latest.name)
                shutil.rmtree(staged, ignore_errors=True)
            # what is left of the earlier run here (all of it where the new run wrote nothing)
            leftover += [p for _s, p in list_checkpoints(target) if p.name not in new_names]
        _mark_replaced(self.output_dir, leftover)
        shutil.rmtree(self.write_dir, ignore_errors=True)
        fsync_dir(self.output_dir)
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
    atomic_write_text(
        marker,
        json_text({"format_version": FORMAT_VERSION, "folders": entries}),
        tmp=output_dir / f"{TMP_PREFIX}{REPLACED_FILE}-{unique_suffix()}",
        durable=True,
    )


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
    fsync_dir(output_dir)
    if removed:
        LOGGER.info(
            "Removed %d checkpoint(s) of the replaced run (%s).",
            len(removed),
            ", ".join(str(path) for path in removed),
        )
    return removed
