"""Deterministic fault injection for the resume tests: a signal right after a named checkpoint.

With the environment variable ``ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT=<step>`` every process
sends itself a signal right after the checkpoint of that step is written: SIGKILL, or SIGINT
(Ctrl-C) with ``ROBUST_MMR_FAULT_SIGNAL=SIGINT``. The deterministic "killed / interrupted
mid-way" of the resume tests (no timed kill, no polling). Kept apart from the training loop,
which only calls :func:`kill_if_asked` after each checkpoint; unset, it does nothing.
"""

from __future__ import annotations

import logging
import os
import signal

from robust_mmr_pipeline.engine.config import TrainerConfigError

LOGGER = logging.getLogger(__name__)
FAULT_KILL_AFTER_CHECKPOINT = "ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT"
FAULT_SIGNAL = "ROBUST_MMR_FAULT_SIGNAL"
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}


def kill_if_asked(step: int) -> None:
    """Signal this process after the checkpoint of ``step`` when the fault-injection variable
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
    name = os.environ.get(FAULT_SIGNAL, "SIGKILL").strip().upper()
    if name not in SIGNALS:
        raise TrainerConfigError(f"{FAULT_SIGNAL}={name!r} must be one of {sorted(SIGNALS)}.")
    if target == step:
        LOGGER.warning("%s=%d: sending this process %s.", FAULT_KILL_AFTER_CHECKPOINT, step, name)
        if SIGNALS[name] == signal.SIGKILL:
            logging.shutdown()  # flush the log files: SIGKILL runs no handler
        # SIGINT: Python raises KeyboardInterrupt here, exactly where a Ctrl-C would land
        os.kill(os.getpid(), SIGNALS[name])
