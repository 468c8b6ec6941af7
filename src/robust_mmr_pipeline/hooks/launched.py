"""A multi-process launch: every process runs the nodes, process 0 alone writes."""

from __future__ import annotations

import logging
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.pipeline import Pipeline

from robust_mmr_pipeline.hooks.run_lock import pipeline_names
from robust_mmr_pipeline.launch import launched_process

logger = logging.getLogger(__name__)


class LaunchedProcessHooks:
    """A multi-process launch (``accelerate launch -m robust_mmr_pipeline run``, ``torchrun``)
    runs the same Kedro run in every process: each runs every node (training steps are
    collective), and process 0 alone writes.

    In the other processes every dataset the pipeline writes becomes a ``MemoryDataset`` (the
    nodes' outputs stay in memory: no file of ``data/`` is written twice, the loss table and
    the manifests come from process 0) and kedro-mlflow's tracking is off for the run. Process
    0 holds the run lock and the MLflow run (:class:`ProjectRunLockHooks`,
    :class:`MlflowRunStateHooks`); the training engine writes checkpoints from process 0 only.
    Each process logs its place (rank, pid) once, so a log of the launch reads unambiguously.
    Runs ``tryfirst``: before kedro-mlflow's hook decides whether to open a run.
    """

    def __init__(self) -> None:
        self._context: Any = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._context = context

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog) -> None:
        process = launched_process()
        if not process.launched:
            return
        if process.is_main:
            logger.info(
                "Launch of %d processes: %s writes data/, the MLflow run and checkpoints and "
                "holds the run lock; the others keep their outputs in memory.",
                process.world_size,
                process.describe(),
            )
            return
        from kedro.io import MemoryDataset

        mlflow_config = getattr(self._context, "mlflow", None)
        if mlflow_config is not None:
            disabled = mlflow_config.tracking.disable_tracking
            disabled.pipelines = sorted({*disabled.pipelines, *pipeline_names(run_params)})
        outputs = sorted(pipeline.all_outputs())
        for name in outputs:
            catalog[name] = MemoryDataset(copy_mode="assign")
        logger.info(
            "Launch of %d processes: %s runs the nodes with process 0 and keeps its %d outputs "
            "in memory (no MLflow run, no run lock: process 0 holds them).",
            process.world_size,
            process.describe(),
            len(outputs),
        )
