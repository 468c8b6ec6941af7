"""A real ``kedro run`` re-running pre-training, killed (SIGKILL) or interrupted (Ctrl-C, i.e.
SIGINT) right after its first checkpoint, loses nothing of the finished run it was replacing:
that run's checkpoints and ``pretrain_checkpoint.json`` stay valid and fine-tuning still works
from them. The interrupted run's MLflow run is recorded KILLED, not FINISHED. A replacement that
finishes takes the earlier run's place and the manifest names it.

The signal comes from the trainer's fault-injection hook right after the replacement's
``step-00000002`` checkpoint (``engine/fault_injection.py``): no polling, no sleep, no race.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from robust_mmr_pipeline.engine import list_checkpoints, read_trainer_state, verify_checkpoint
from robust_mmr_pipeline.engine.checkpoint import NEXT_RUN_DIRNAME, REPLACED_FILE
from robust_mmr_pipeline.engine.fault_injection import FAULT_KILL_AFTER_CHECKPOINT, FAULT_SIGNAL
from robust_mmr_pipeline.hooks import TAG_KILLED, TAG_PID

RUN_DIR = Path("data/06_models/pretrain/robust_mmr")
MANIFEST = Path("data/06_models/pretrain_checkpoint.json")
# far more steps than the test ever lets the replacement run: it is stopped at its first one
ENDLESS = {
    "pretrain.trainer.max_steps": 100000,
    "pretrain.trainer.checkpoint_every": 2,
    "pretrain.register_model": "false",
}


def _start_pretrain(
    project: Path, settings: dict[str, object], fault: dict[str, str] | None = None
) -> subprocess.Popen:
    kedro = str(Path(sys.executable).with_name("kedro"))
    command = [kedro, "run", "--pipelines", "pretrain", "--env", "test", "--params"]
    command.append(",".join(f"{key}={value}" for key, value in settings.items()))
    # Ctrl-C reaches a Python started from a background shell only if SIGINT is not ignored
    # there: restore the default disposition, then exec kedro (which keeps it)
    restore = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    restore += "os.execv(sys.argv[1], sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", restore, *command],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src"), **(fault or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _finished_run(project: Path) -> tuple[dict, list[str]]:
    manifest = json.loads((project / MANIFEST).read_text())
    root = project / RUN_DIR / "checkpoints"
    return manifest, [path.name for _step, path in list_checkpoints(root)]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_an_interrupted_rerun_keeps_the_finished_run(
    chain_project: Path, run_kedro, stop: signal.Signals
) -> None:
    project = chain_project
    manifest, folders = _finished_run(project)
    assert folders == ["step-00000002", "step-00000004"]
    final = Path(manifest["last_checkpoint"])
    assert final == RUN_DIR / "checkpoints" / "step-00000004"
    chosen = Path(manifest["checkpoint"])  # the step the validation watch chose (best/)
    saved_at = read_trainer_state(project / final)["saved_at"]

    # the replacement signals itself right after its first checkpoint (step 2)
    fault = {FAULT_KILL_AFTER_CHECKPOINT: "2", FAULT_SIGNAL: stop.name}
    proc = _start_pretrain(project, ENDLESS, fault)
    output = proc.communicate(timeout=900)[0].decode(errors="replace")
    first = project / RUN_DIR / NEXT_RUN_DIRNAME / "checkpoints" / "step-00000002"
    assert first.is_dir(), output[-4000:]  # it was stopped after its first checkpoint
    if stop == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, output[-4000:]
    else:
        assert proc.returncode not in (0, -signal.SIGKILL), output[-4000:]
        assert "Aborted" in output, output[-4000:]

    # the finished run, and the manifest naming it, are exactly as they were
    assert _finished_run(project) == (manifest, folders)
    assert verify_checkpoint(project / final) == project / final
    assert verify_checkpoint(project / chosen) == project / chosen
    assert read_trainer_state(project / final)["saved_at"] == saved_at
    assert read_trainer_state(project / final)["max_steps"] == 4
    assert not (project / RUN_DIR / REPLACED_FILE).exists()

    # the MLflow run of the interrupted process is not recorded FINISHED
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    (interrupted,) = client.search_runs(experiments, f"tags.`{TAG_PID}` = '{proc.pid}'")
    if stop == signal.SIGINT:
        assert interrupted.info.status == "KILLED", interrupted.info
        assert "interrupted" in interrupted.data.tags[TAG_KILLED]
    else:  # nothing runs in a SIGKILLed process; the next start marks it (tested elsewhere)
        assert interrupted.info.status == "RUNNING"

    # fine-tuning still works from the finished run
    run_kedro("finetune", params={"finetune": {"tasks": ["vqa"]}})
    finetuned = json.loads((project / "data/06_models/finetune_manifest.json").read_text())
    assert finetuned["backbone_checkpoint"] == str(chosen)
    assert verify_checkpoint(project / finetuned["tasks"]["vqa"]["checkpoint"])


@pytest.mark.slow
def test_a_finished_rerun_replaces_the_earlier_run_and_the_manifest_names_it(
    chain_project: Path, run_kedro
) -> None:
    project = chain_project
    manifest, _folders = _finished_run(project)
    run_kedro("pretrain", params={"pretrain": {"trainer": {"max_steps": 6, "checkpoint_every": 3}}})
    manifest, folders = _finished_run(project)
    # the earlier run's step-2 and step-4 went once the new manifest was saved
    assert folders == ["step-00000003", "step-00000006"]
    assert manifest["last_checkpoint"] == str(RUN_DIR / "checkpoints" / "step-00000006")
    assert verify_checkpoint(project / manifest["checkpoint"])  # the watch's choice
    assert read_trainer_state(project / manifest["last_checkpoint"])["max_steps"] == 6
    assert not (project / RUN_DIR / NEXT_RUN_DIRNAME).exists()
    assert not (project / RUN_DIR / REPLACED_FILE).exists()
