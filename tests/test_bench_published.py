"""The published-pipeline benchmark runs the whole ``vqa_med_2019`` chain on its synthetic
release (``--quick``) and reports every node's seconds; the 25-minute target is the benchmark's
own verdict at full size, not a unit test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_published.py"


def test_quick_benchmark_runs_the_published_chain_node_by_node(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--timeout-min", "15",
               "--workdir", str(tmp_path / "work"), "--keep"]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=1000, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["finished"] is True, (tmp_path / "work" / "run.log").read_text()[-3000:]
    assert result["release"]["qa"] == {"train": 160, "val": 48, "test": 16}
    nodes = {node["node"] for node in result["nodes"]}
    assert {"pretrain.pretrain_model", "finetune.finetune_tasks", "evaluation.evaluate_models",
            "as_released.evaluate_models"} <= nodes  # fmt: skip
    assert sum(node["seconds"] for node in result["nodes"]) <= result["run_seconds"] + 1
    # LP-FT left its frozen features beside each best checkpoint, for the frozen probes
    models = tmp_path / "work" / "project" / "data" / "06_models"
    assert list(models.glob("finetune/vqa/best/step-*/frozen_features.safetensors"))
    assert list(models.glob("finetune_as_released/vqa/best/step-*/frozen_features.safetensors"))
