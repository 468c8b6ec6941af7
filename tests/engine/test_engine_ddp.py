"""Two CPU processes (gloo DDP) reproduce the single-process run with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent / "ddp_train_script.py"


def _run(command: list[str], out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "KEDRO_DISABLE_TELEMETRY": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    completed = subprocess.run(
        [*command, str(SCRIPT), str(out_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return json.loads((out_dir / "result.json").read_text())


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path: Path) -> None:
    single = _run([sys.executable], tmp_path / "single")
    ddp = _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
        tmp_path / "ddp",
    )
    assert single["world_size"] == 1 and ddp["world_size"] == 2
    assert len(single["losses"]) == len(ddp["losses"]) == 5
    for rec_1, rec_2 in zip(single["losses"], ddp["losses"], strict=True):
        for key in ("loss", "mse", "aux", "lr"):
            assert rec_2[key] == pytest.approx(rec_1[key], rel=1e-5, abs=1e-8), (rec_1, rec_2)
    for name, values in single["params"].items():
        np.testing.assert_allclose(ddp["params"][name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    assert ddp["rng_ranks"] == 2 and single["rng_ranks"] == 1
    assert ddp["saved_step"] == single["saved_step"] == 5
    assert ddp["reloaded_equal"] and single["reloaded_equal"]
    # predict gathers across processes, drops the padding duplicates, keeps the order
    assert len(ddp["predictions"]) == 10
    np.testing.assert_allclose(ddp["predictions"], single["predictions"], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_two_processes_replace_a_run_and_publish_it_once(tmp_path: Path) -> None:
    from robust_mmr_pipeline.engine import list_checkpoints, read_trainer_state

    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node"]
    script = Path(__file__).resolve().parent / "ddp_replace_script.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    for steps in (3, 2):  # a first run, then a replacement (trained in .next-run, published)
        done = subprocess.run(
            [*launch, "2", str(script), str(tmp_path), str(steps)],
            env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first = json.loads((tmp_path / "result-3.json").read_text())
    second = json.loads((tmp_path / "result-2.json").read_text())
    root = tmp_path / "run" / "checkpoints"
    assert not first["staged"] and second["staged"]
    assert second["final"] == str(root / "step-00000002") and second["leftover"] == [
        "step-00000003"
    ]
    assert not (tmp_path / "run" / ".next-run").exists()
    assert [step for step, _ in list_checkpoints(root)] == [1, 2, 3]
    assert read_trainer_state(root / "step-00000002")["max_steps"] == 2  # the replacement's
