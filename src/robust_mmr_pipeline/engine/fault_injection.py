"""Deterministic fault injection for the resume tests: SIGKILL right after a named checkpoint.

With the environment variable ``ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT=<step>`` every process
SIGKILLs itself right after the checkpoint of that step is written: the deterministic "killed
mid-way" of the resume tests (no timed kill). Kept apart from the training loop, which only
calls :func:`kill_if_asked` after each checkpoint; unset, it does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

from robust_mmr_pipeline.engine.config import TrainerConfigError

LOGGER = logging.getLogger(__name__)
FAULT_KILL_AFTER_CHECKPOINT = "ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT"


def kill_if_asked(step: int) -> None:
    """SIGKILL this process after the checkpoint of ``step`` when the fault-injection variable
    names that step (see the module docstring)."""
    value = os.environ.get(FAULT_KILL_AFTER_CHECKPOINT, "").strip()
    if not value:
        return
    try:
        target = int(value)
    except ValueError as exc:
        raise TrainerConfigError(
            f"{FAULT_KILL_AFTER_CHECKPOINT}={value!r} must be a step number (or unset)."
        ) from exc
    if target == step:
        LOGGER.warning("%s=%d: killing this process (SIGKILL).", FAULT_KILL_AFTER_CHECKPOINT, step)
        logging.shutdown()  # flush the log files: SIGKILL runs no handler
        os.kill(os.getpid(), signal.SIGKILL)
