"""Training loggers and checkpoint callbacks: small protocols the trainer calls.

The trainer calls a logger on the main process only:

* ``log_params(params)`` once at the start (trainer config, model class and config, world size,
  mixed precision, parameter count);
* ``log_metrics(metrics, step)`` every ``log_every`` steps (``train/loss``, ``train/<term>`` for
  each objective, ``train/lr``, ``train/grad_norm``, ``throughput/samples_per_s``,
  ``throughput/flops_per_s``) and after each evaluation (``eval/<name>``);
* ``log_checkpoint(path, step, final)`` after each checkpoint is committed.

Checkpoint callbacks (:class:`CheckpointCallback`) run on every process right after each
checkpoint is committed; :func:`environment_callbacks` registers those the environment asks
for (the resume tests' fault injection, :mod:`.fault_injection`), none otherwise.

The engine never imports Kedro; :class:`MLflowLogger` imports ``mlflow`` lazily and does
nothing unless an MLflow run is active (kedro-mlflow opens one around a pipeline run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

LOGGER = logging.getLogger(__name__)


@runtime_checkable
class TrainLogger(Protocol):
    """What the trainer calls; implement any subset meaningfully, all three must exist."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record run parameters once."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar metrics at an optimizer step."""

    def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
        """A checkpoint was committed at ``path``."""


class MemoryLogger:
    """Keeps everything in lists (tests, notebooks)."""

    def __init__(self) -> None:
        self.params: list[dict[str, Any]] = []
        self.metrics: list[tuple[int, dict[str, float]]] = []
        self.checkpoints: list[tuple[Path, int, bool]] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Append a copy of ``params``."""
        self.params.append(dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Append ``(step, metrics)``."""
        self.metrics.append((step, dict(metrics)))

    def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
        """Append ``(path, step, final)``."""
        self.checkpoints.append((Path(path), step, final))


class CompositeLogger:
    """Forwards every call to several loggers."""

    def __init__(self, *loggers: TrainLogger) -> None:
        self.loggers = [logger for logger in loggers if logger is not None]

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Forward to all loggers."""
        for logger in self.loggers:
            logger.log_params(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Forward to all loggers."""
        for logger in self.loggers:
            logger.log_metrics(metrics, step)

    def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
        """Forward to all loggers."""
        for logger in self.loggers:
            logger.log_checkpoint(path, step, final)


@runtime_checkable
class CheckpointCallback(Protocol):
    """Called on every process right after the checkpoint of ``step`` is committed."""

    def after_checkpoint(self, step: int) -> None:
        """The checkpoint of ``step`` is on disk."""


def environment_callbacks() -> list[CheckpointCallback]:
    """The checkpoint callbacks the environment asks for: the fault injection of the resume
    tests when ``ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT`` is set (:mod:`.fault_injection`;
    a malformed value raises TrainerConfigError); none otherwise."""
    from robust_mmr_pipeline.engine.fault_injection import fault_injection_from_environment

    fault = fault_injection_from_environment()
    return [fault] if fault is not None else []


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mapping -> ``{"a.b": "value"}`` with string values (MLflow params). A tuple is
    written as a list: the YAML list and the typed config's tuple of one setting (e.g.
    ``trainer.betas``) are one value, and MLflow refuses a param logged twice differently."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = str(list(value) if isinstance(value, tuple) else value)
    return flat


class MLflowLogger:
    """Logs to the active MLflow run: params, per-step metrics, checkpoints as artifacts.

    ``log_checkpoints``: ``"final"`` (default) uploads only the last checkpoint of the run,
    ``"all"`` every checkpoint, ``"none"`` none. Artifacts go under
    ``<artifact_path>/<checkpoint folder name>``. Without an active run every call is a no-op,
    so the trainer can be used with or without kedro-mlflow.
    """

    def __init__(
        self,
        log_checkpoints: Literal["final", "all", "none"] = "final",
        artifact_path: str = "checkpoints",
        param_prefix: str = "",
        max_param_length: int = 6000,
    ) -> None:
        if log_checkpoints not in ("final", "all", "none"):
            raise ValueError("log_checkpoints must be 'final', 'all' or 'none'")
        self.log_checkpoints = log_checkpoints
        self.artifact_path = artifact_path
        self.param_prefix = param_prefix
        self.max_param_length = max_param_length

    @staticmethod
    def _mlflow() -> Any:
        import mlflow

        return mlflow if mlflow.active_run() is not None else None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Flattened params (``trainer.lr`` ...), truncated to MLflow's value limit."""
        mlflow = self._mlflow()
        if mlflow is None:
            return
        flat = {
            key: value[: self.max_param_length]
            for key, value in flatten_params(params, prefix=self.param_prefix).items()
        }
        try:
            mlflow.log_params(flat)
        except Exception as exc:  # a resumed run may re-log a changed value
            LOGGER.warning("MLflow refused some params (%s); continuing.", exc)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Scalar metrics at ``step``."""
        mlflow = self._mlflow()
        if mlflow is None:
            return
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
        """Upload the checkpoint folder according to ``log_checkpoints``."""
        if self.log_checkpoints == "none" or (self.log_checkpoints == "final" and not final):
            return
        mlflow = self._mlflow()
        if mlflow is None:
            return
        path = Path(path)
        mlflow.log_artifacts(str(path), artifact_path=f"{self.artifact_path}/{path.name}")
