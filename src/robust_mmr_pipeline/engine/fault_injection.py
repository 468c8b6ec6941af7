"""Deterministic fault injection for the resume tests: a signal right after a named checkpoint.

With the environment variable ``ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT=<step>`` every process
sends itself a signal right after the checkpoint of that step is written: SIGKILL, or SIGINT
(Ctrl-C) with ``ROBUST_MMR_FAULT_SIGNAL=SIGINT``. The deterministic "killed / interrupted
mid-way" of the resume tests (no timed kill, no polling). A checkpoint callback
(:class:`KillAfterCheckpoint`) that :func:`.callbacks.environment_callbacks` registers only
when the variable is set: the training loop knows nothing of it.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

from robust_mmr_pipeline.engine.config import TrainerConfigError

LOGGER = logging.getLogger(__name__)
FAULT_KILL_AFTER_CHECKPOINT = "ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT"
FAULT_SIGNAL = "ROBUST_MMR_FAULT_SIGNAL"
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}


@dataclass(frozen=True)
class KillAfterCheckpoint:
    """Signal this process (``signal_name``) right after the checkpoint of ``step``."""

    step: int
    signal_name: str = "SIGKILL"

    def after_checkpoint(self, step: int) -> None:
        if step != self.step:
            return
        name = self.signal_name
        LOGGER.warning("%s=%d: sending this process %s.", FAULT_KILL_AFTER_CHECKPOINT, step, name)
        if SIGNALS[name] == signal.SIGKILL:
            logging.shutdown()  # flush the log files: SIGKILL runs no handler
        # SIGINT: Python raises KeyboardInterrupt here, exactly where a Ctrl-C would land
        os.kill(os.getpid(), SIGNALS[name])


def fault_injection_from_environment() -> KillAfterCheckpoint | None:
    """The fault the environment asks for (see the module docstring); None when unset.

    Raises :class:`TrainerConfigError` naming the variable for a value that is not a step
    number or a signal outside :data:`SIGNALS`.
    """
    value = os.environ.get(FAULT_KILL_AFTER_CHECKPOINT, "").strip()
    if not value:
        return None
    try:
        target = int(value)
    except ValueError as exc:
        raise TrainerConfigError(
            f"{FAULT_KILL_AFTER_CHECKPOINT}={value!r} must be a step number (or unset)."
        ) from exc
    name = os.environ.get(FAULT_SIGNAL, "SIGKILL").strip().upper()
    if name not in SIGNALS:
        raise TrainerConfigError(f"{FAULT_SIGNAL}={name!r} must be one of {sorted(SIGNALS)}.")
    return KillAfterCheckpoint(target, name)
