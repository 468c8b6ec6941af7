"""Pre-training through the real launcher: ``accelerate launch`` of the Kedro run, as the README's
"Scale-out" section tells a team, with two CPU processes (gloo) standing for two GPUs.

1. ``accelerate launch --config_file conf/accelerate/one_node.yaml --num_processes 2``, both
   processes killed right after the step-2 checkpoint: process 0 alone holds the run lock and the
   MLflow run; the checkpoint records which samples each process read (disjoint halves of the
   one-process global batch).
2. The same run resumed with ``conf/accelerate/multi_node.yaml``: two launchers on this machine,
   one process each (``--machine_rank 0`` / ``1``): one MLflow run, one loss table, checkpoints.
3. Resumed once more on one process (``kedro run``): it continues the two-process run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from scaleout_support import free_port

from robust_mmr_pipeline.engine import GlobalBatchSampler
from robust_mmr_pipeline.engine.fault_injection import FAULT_KILL_AFTER_CHECKPOINT
from robust_mmr_pipeline.hooks import TAG_PID

pytestmark = [pytest.mark.slow, pytest.mark.scaleout]

OUTPUT_DIR = "data/06_models/launched"
CHECKPOINTS = f"{OUTPUT_DIR}/robust_mmr/checkpoints"
BATCH = 8  # conf/test: pretrain.trainer.batch_size, the global micro-batch
PARAMS = {
    "pretrain.output_dir": OUTPUT_DIR,
    "pretrain.trainer.checkpoint_every": 2,
    "pretrain.trainer.keep_last": 0,
    "pretrain.register_model": "false",
}
PLACE = re.compile(r"Launch of (\d+) processes: process (\d+) of \d+ \(pid (\d+)\)")
SHARE = re.compile(r"Process (\d+) of \d+ reads samples \[(\d+), (\d+)\) of each global batch of "
                   r"(\d+), \d+ global batches per epoch of (\d+) samples")  # fmt: skip


def _env(project: Path, kill_after: int | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "PYTHONUNBUFFERED": "1"}
    env["COLUMNS"] = "400"  # one log record per line
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    env.pop(FAULT_KILL_AFTER_CHECKPOINT, None)
    if kill_after is not None:
        env[FAULT_KILL_AFTER_CHECKPOINT] = str(kill_after)
    return env


def _run_args(**params: object) -> list[str]:
    settings = {**PARAMS, **params}
    return ["run", "--pipelines", "pretrain", "--env", "test", "--params",
            ",".join(f"{key}={value}" for key, value in settings.items())]  # fmt: skip


def _launch(project: Path, config: str, *options: str, kill_after: int | None = None,
            **params: object) -> subprocess.Popen:  # fmt: skip
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", f"conf/accelerate/{config}",
               *options, "-m", "robust_mmr_pipeline", *_run_args(**params)]  # fmt: skip
    return subprocess.Popen(
        command, cwd=project, env=_env(project, kill_after),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _output(process: subprocess.Popen) -> str:
    return process.communicate(timeout=900)[0].decode(errors="replace")


def _places(output: str) -> dict[int, int]:
    """rank -> pid, from the line each process of a launch logs."""
    places = {int(rank): int(pid) for _world, rank, pid in PLACE.findall(output)}
    assert sorted(places) == [0, 1], output[-6000:]
    return places


def _trainer_state(project: Path, step: int) -> dict:
    return json.loads(
        (project / CHECKPOINTS / f"step-{step:08d}" / "trainer_state.json").read_text()
    )


def _runs(project: Path) -> list:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, "tags.`kedro_command` LIKE '%pretrain%'")


def _assert_split_like_one_process(state: dict, num_samples: int) -> None:
    """The step's samples: rank 0 read the first half of the one-process global batch, rank 1
    the second half, none both."""
    step = state["step_samples"]
    by_process = step["by_process"]
    assert [len(samples) for samples in by_process] == [BATCH // 2] * 2
    assert not set(by_process[0]) & set(by_process[1])
    epoch, batch = state["epoch"], state["batch_in_epoch"] - 1  # the step's own global batch
    sampler = GlobalBatchSampler(num_samples, BATCH, seed=state["config"]["seed"])
    assert by_process[0] + by_process[1] == sampler.global_batch(epoch, batch)


def test_launched_pretraining_writes_once_and_resumes_on_one_process(chain_project: Path) -> None:
    project = chain_project
    lock_folder = project / "data/.kedro-run"
    loss_table = project / "data/08_reporting/pretrain_losses.csv"
    upstream_losses = loss_table.read_bytes()  # the upstream chain's run

    # 1. one node, two processes, both killed right after the step-2 checkpoint
    launch = _launch(project, "one_node.yaml", "--num_processes", "2",
                     "--main_process_port", str(free_port()), kill_after=2)  # fmt: skip
    output = _output(launch)
    assert launch.returncode != 0, output[-6000:]
    first = _places(output)
    shares = {
        int(rank): (int(lo), int(hi), int(n)) for rank, lo, hi, _b, n in SHARE.findall(output)
    }
    assert shares[0][:2] == (0, BATCH // 2) and shares[1][:2] == (BATCH // 2, BATCH), output[-6000:]
    num_samples = shares[0][2]
    assert shares[1][2] == num_samples  # both ranks read the same data set
    # a kill leaves the lock holder's record: process 0 of the launch, alone, exclusive
    (record,) = [json.loads(p.read_text()) for p in lock_folder.glob("*.json")]
    assert record["process"]["pid"] == first[0] and record["mode"] == "exclusive"
    assert record["pipelines"] == ["pretrain"]
    state = _trainer_state(project, 2)
    assert state["world_size"] == 2
    _assert_split_like_one_process(state, num_samples)
    (killed,) = _runs(project)  # one MLflow run for the launch, process 0's
    assert killed.data.tags[TAG_PID] == str(first[0]) and killed.info.status == "RUNNING"
    assert loss_table.read_bytes() == upstream_losses  # written at the end of a run only

    # 2. resumed on "two machines" of one process each (multi_node.yaml, machine ranks 0 and 1)
    port = str(free_port())
    machines = [
        _launch(
            project,
            "multi_node.yaml",
            "--num_processes",
            "2",
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
            **{"pretrain.trainer.resume": "true"},
        )
        for rank in (0, 1)
    ]
    outputs = [_output(machine) for machine in machines]
    for machine, text in zip(machines, outputs, strict=True):
        assert machine.returncode == 0, text[-6000:]
    second = _places("\n".join(outputs))
    assert second[0] in {int(pid) for _w, _r, pid in PLACE.findall(outputs[0])}  # machine 0
    assert not list(lock_folder.glob("*.json"))  # released
    state = _trainer_state(project, 4)
    assert state["world_size"] == 2 and state["step"] == 4
    _assert_split_like_one_process(state, num_samples)
    runs = {run.data.tags[TAG_PID]: run for run in _runs(project)}
    assert set(runs) == {str(first[0]), str(second[0])}  # nothing from any process 1
    assert runs[str(first[0])].info.status == "KILLED"  # marked by the resuming process 0
    finished = runs[str(second[0])]
    assert finished.info.status == "FINISHED"
    losses = pd.read_csv(loss_table)
    assert losses["step"].tolist() == [1, 2, 3, 4]  # the launch's history, written once
    manifest = json.loads((project / "data/06_models/pretrain_checkpoint.json").read_text())
    assert manifest["step"] == 4 and manifest["last_checkpoint"].endswith("step-00000004")

    # 3. the two-process run resumes on one process (plain `kedro run`)
    kedro = Path(sys.executable).with_name("kedro")
    single = subprocess.run(
        [str(kedro), *_run_args(**{"pretrain.trainer.resume": "true",
                                   "pretrain.trainer.max_steps": 6})],
        cwd=project, env=_env(project), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert single.returncode == 0, single.stdout[-4000:] + single.stderr[-4000:]
    state = _trainer_state(project, 6)
    assert state["world_size"] == 1 and len(state["step_samples"]["by_process"]) == 1
    sampler = GlobalBatchSampler(num_samples, BATCH, seed=state["config"]["seed"])
    assert state["step_samples"]["by_process"][0] == sampler.global_batch(
        state["epoch"], state["batch_in_epoch"] - 1
    )
    resumed = pd.read_csv(loss_table)
    assert resumed["step"].tolist() == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_frame_equal(resumed.head(4), losses)  # the launch's steps, kept
    assert len(_runs(project)) == 3
