"""The evaluation benchmark runs end to end (``--quick``) and reports what it promises: the
fine-tuning and evaluation seconds of the same release and the stage table adding up to the
evaluation. The speed targets are the benchmark's own verdicts, not unit tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_evaluation.py"


def test_quick_benchmark_reports_evaluation_against_finetuning(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out),
               "--workdir", str(tmp_path / "work"), "--keep"]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["quick"] is True and result["config"]["perturbed_sets"] == 18
    assert result["finetune_seconds"] > 0 and result["evaluation_seconds"] > 0
    stages = {s["stage"] for s in result["stages"]}
    assert {"baselines_fit", "frozen_probe_fit", "score_perturbed_sets", "bootstrap"} <= stages
    total = sum(s["seconds"] for s in result["stages"])
    assert total <= result["evaluation_seconds"] + 0.5  # exclusive stages: no double counting
    # LP-FT left the frozen train features beside its checkpoint for the frozen probe
    plan = json.loads((tmp_path / "work" / "plan.json").read_text())
    assert (Path(plan["checkpoint"]) / "frozen_features.safetensors").is_file()
    results = pd.read_parquet(tmp_path / "work" / "results.parquet")
    perturbed = results[results["condition"] == "perturbed"]
    assert len(perturbed.drop_duplicates(["perturbation", "severity"])) == 18
    # text-only baselines are not re-scored on image-perturbed sets (nothing changes for them)
    image_sets = perturbed[perturbed["modality"] == "image"]
    assert {"ours", "from_scratch", "image_pixels"} <= set(image_sets["model"])
    assert not {"majority", "question_prior", "text_tfidf"} & set(image_sets["model"])
    assert "text_tfidf" in set(perturbed[perturbed["modality"] == "text"]["model"])
