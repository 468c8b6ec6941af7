"""After the work: where a run's results are, and the checkpoints a published run replaced
deleted once the manifest naming the new run is saved."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from robust_mmr_pipeline.launch import launched_process

# Where results land, relative to the project root (the catalog's layer folders).
RESULT_FOLDERS = {
    "reports": Path("data/08_reporting"),
    "checkpoints": Path("data/06_models"),
}


class RunSummaryHooks:
    """Print where the results of a successful run are: reports, checkpoints, MLflow store."""

    def __init__(self) -> None:
        self._started = time.time()

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self._started = time.time()

    @hook_impl
    def after_pipeline_run(self, run_params: dict[str, Any]) -> None:
        if not launched_process().is_main:
            return  # one summary per launch
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name")]
        label = ", ".join(n for n in names if n) or "__default__"
        lines = [f"Run finished (pipeline: {label})."]
        for label, folder in RESULT_FOLDERS.items():
            fresh = (
                sorted(
                    str(path)
                    for path in folder.rglob("*")
                    if path.is_file() and path.stat().st_mtime >= self._started - 1
                )
                if folder.is_dir()
                else []
            )
            if fresh:
                shown = fresh[:12] + (
                    [f"... and {len(fresh) - 12} more"] if len(fresh) > 12 else []
                )
                lines.append(f"  {label} ({folder}/):")
                lines += [f"    {item}" for item in shown]
        try:
            import mlflow

            lines.append(
                f"  MLflow tracking store: {mlflow.get_tracking_uri()} "
                "(browse with: make mlflow-ui)"
            )
        except ImportError:
            pass
        print("\n".join(lines))  # noqa: T201 - the user-facing summary of `kedro run`


def _named_checkpoints(data: Any) -> Iterator[str]:
    """Every ``checkpoint`` path a manifest names (at any depth: fine-tuning lists its tasks)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "checkpoint" and isinstance(value, str) and value:
                yield value
            else:
                yield from _named_checkpoints(value)


class ReplacedCheckpointHooks:
    """Delete the checkpoints a published run replaced once the manifest naming the new run is
    saved (pretrain_checkpoint.json, finetune_manifest.json, ...): until then the old manifest
    still names the earlier run's folders, which therefore stay (engine.checkpoint.RunTarget)."""

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if not launched_process().is_main:
            return  # the other processes of a launch saved nothing (LaunchedProcessHooks)
        from robust_mmr_pipeline.engine.checkpoint import REPLACED_FILE, retire_replaced

        for checkpoint in _named_checkpoints(data):
            output_dir = Path(checkpoint).parent.parent  # <output_dir>/<checkpoints|best>/step-*
            if (output_dir / REPLACED_FILE).is_file():
                retire_replaced(output_dir)
