"""The pre-training benchmark runs end to end (``--quick``) and writes every number it promises.

Only the shape and sanity of the JSON are checked here: the speed targets (joint / M3AE-style
ratio, fraction of the matmul peak, GPU MFU) are the benchmark's own verdicts, not unit tests.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_pretrain.py"
RUNS = ("default", "mmr_joint", "mmr_m3ae_style")


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench_pretrain") / "result.json"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    # One thread: on a busy small machine, threads of one op wait for each other's turn and a
    # smoke run slows down many times over; this run checks the output, not the speed.
    command = [sys.executable, str(SCRIPT), "--quick", "--device", "cpu", "--threads", "1"]
    proc = subprocess.run(
        [*command, "--profile", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "joint / M3AE-style" in proc.stdout  # the summary table was printed
    return json.loads(out.read_text())


def test_top_level_facts(quick_result: dict) -> None:
    r = quick_result
    assert r["benchmark"] == "pretrain"
    assert r["device"] == "cpu"
    assert r["quick"] is True
    assert r["threads"] == 1
    for moment in ("start", "end"):
        load = r["load_average"][moment]
        assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
    config = r["config"]
    assert config["preset"] == "robust_mmr"  # conf/base/parameters_pretrain.yml's default
    assert config["size"] == "small"
    assert config["precision"] == "fp32"
    assert config["trainer"]["batch_size"] >= 1
    assert _positive(config["trainer"]["lr"])
    assert config["data"]["train_pairs"] >= config["trainer"]["batch_size"]
    assert config["data"]["tokenizer_vocab"] > 5


def test_matmul_peak(quick_result: dict) -> None:
    peak = quick_result["matmul_peak"]
    assert peak["dtype"] == "float32"
    assert peak["unit"] == "GFLOP/s"
    assert _positive(peak["peak"]) and _positive(peak["flops_per_s"])
    assert peak["flops_per_s"] >= 1e9 * peak["start"]["best"] * 0.999
    assert peak["flops_per_s"] >= 1e9 * peak["end"]["best"] * 0.999
    for entry in quick_result["model_shape_gemms"].values():
        assert _positive(entry["best_flops_per_s"]) and _positive(entry["fraction_of_peak"])


def test_runs_have_positive_numbers(quick_result: dict) -> None:
    runs = quick_result["runs"]
    assert set(runs) == set(RUNS)
    for name in RUNS:
        run = runs[name]
        for key in (
            "samples_per_s",
            "samples_per_s_mean",
            "flops_per_sample",
            "achieved_flops_per_s",
            "fraction_of_peak",
            "peak_memory_mb",
        ):
            assert _positive(run[key]), (name, key, run[key])
        assert run["timed_steps"] >= 1
        assert run["rounds"] == len(run["per_round"]) >= 1
        for record in run["per_round"]:
            assert _positive(record["samples_per_s"]) and _positive(record["peak_memory_mb"])
            assert all(_positive(t) for t in record["step_times_s"])
        steps = sum(len(r["step_times_s"]) for r in run["per_round"])
        assert steps == run["rounds"] * run["warmup_steps_per_round"] + run["timed_steps"]
        assert math.isfinite(run["loss_last"])
        expected = run["flops_per_sample"] * run["samples_per_s"]
        assert run["achieved_flops_per_s"] == pytest.approx(expected, rel=1e-2)
    assert runs["default"]["preset"] == "robust_mmr"
    assert runs["mmr_joint"]["preset"] == runs["mmr_m3ae_style"]["preset"] == "mmr"
    assert runs["mmr_joint"]["m3ae_style"] is False
    assert runs["mmr_m3ae_style"]["m3ae_style"] is True
    assert set(runs["mmr_joint"]["objectives"]) == {"mim", "mlm", "itm"}
    # Same model, same objectives: the M3AE-style step does more work per sample.
    assert runs["mmr_m3ae_style"]["flops_per_sample"] > runs["mmr_joint"]["flops_per_sample"]


def test_verdicts_and_profile(quick_result: dict) -> None:
    ratio = quick_result["joint_vs_m3ae"]
    assert _positive(ratio["ratio"]) and ratio["target"] == 2.0
    assert isinstance(ratio["met"], bool)
    assert _positive(ratio["analytic_flops_ratio"])
    assert len(ratio["ratio_by_round"]) == quick_result["config"]["rounds"]
    for name in ("default", "mmr"):
        eff = quick_result["efficiency"][name]
        assert _positive(eff["fraction_of_peak"]) and eff["target"] == pytest.approx(0.30)
        assert isinstance(eff["met"], bool)
    profile = quick_result["profile"]  # forced with --profile
    assert profile.get("skipped") is not True
    assert profile["top_ops"] and all(
        _positive(op["self_ms_per_step"]) for op in profile["top_ops"]
    )
    assert 0 < profile["gemm_and_attention_share"] <= 1
    assert _positive(profile["total_self_time_ms_per_step"])
    gpu = quick_result["gpu"]
    assert gpu["skipped"] is True and gpu["reason"]
