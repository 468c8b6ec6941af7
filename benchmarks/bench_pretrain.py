"""Pre-training speed: matmul peak, samples/s, achieved FLOP/s and memory of the training step.

One run measures, on this machine and at one thread count:

1. ``matmul_peak``: the best GEMM rate torch reaches here, fp32 ``n x n @ n x n`` on CPU
   (GFLOP/s), bf16 on CUDA (TFLOP/s); best of ``repeats`` (the median shows the noise).
2. ``runs``: full pre-training steps through the engine's real loop (``engine.train``: forward,
   backward, gradient clipping, AdamW, LR schedule; MLflow and progress bar off) on real SynthRad
   data generated into a temporary folder (``--studies`` studies at 128 px, the image cache at
   the model's ``image_size``, a WordPiece tokenizer trained on the train texts):

   * ``default``: the DEFAULT config of ``conf/base/parameters_pretrain.yml`` (its preset,
     size, ``model:`` overrides and trainer settings: batch size, lr, ...);
   * ``mmr_joint`` / ``mmr_m3ae_style``: the ``mmr`` preset (MLM + MIM + ITM, same model), once
     with our one joint masked pass and once driven M3AE-style (``m3ae_style=True``: three
     forward passes per step, the full image in the MLM and ITM passes).
     ``joint_vs_m3ae.ratio`` = samples/s ours / M3AE-style (target >= 2).

   Each step's time comes from the engine itself (``throughput/samples_per_s`` logged every
   step); the first ``--warmup`` steps are left out.
3. ``achieved_flops_per_s = model.flops_per_sample() * samples/s`` and its fraction of the
   measured matmul peak (target >= 30 % on CPU for the default config). Below target, the
   default config is profiled with ``torch.profiler`` over a few steps of the same loop and the
   top ops, the GEMM share of the step and the GEMM rate inside the model are written out.
4. ``peak_memory_mb``: max RSS of the process during each run on CPU (the kernel's high-water
   mark is reset before each run), ``torch.cuda.max_memory_allocated`` on GPU.
5. On CUDA (``--device cuda``, the default when a GPU is visible) the same runs use the GPU
   config: size ``base`` (ViT-B / BERT-base sized), bf16 autocast, and the MFU against the
   measured bf16 peak (target >= 35 %; also against the datasheet peak when the GPU is known).
   On CPU the GPU section says it was skipped.

The load average at the start and the end is recorded: on a shared machine the numbers are
only as good as the load lets them be.

    python benchmarks/bench_pretrain.py --out data/08_reporting/bench_pretrain.json
    python benchmarks/bench_pretrain.py --quick --out /tmp/bench_pretrain.json   # smoke run
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd
import torch
import yaml

from robust_mmr_pipeline.engine import (
    ImageCache,
    PairCollator,
    PairDataset,
    TrainerConfig,
    domain_vocabulary,
    train,
)
from robust_mmr_pipeline.model import MMRModel
from robust_mmr_pipeline.model.views import TextDegrader
from robust_mmr_pipeline.recipes import pretrain as recipe
from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad

REPO_ROOT = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO_ROOT / "conf" / "base" / "parameters_pretrain.yml"
DEFAULT_OUT = Path("data/08_reporting/bench_pretrain.json")

CPU_TARGET_FRACTION = 0.30  # achieved FLOP/s / fp32 matmul peak, default config
GPU_TARGET_MFU = 0.35  # achieved FLOP/s / bf16 matmul peak, size "base"
TARGET_RATIO = 2.0  # samples/s joint / M3AE-style, mmr preset
GPU_SIZE = "base"
SYNTHRAD_IMAGE_SIZE = 128

# Dense bf16 tensor-core peaks from the datasheets (TFLOP/s), matched on the device name.
NOMINAL_BF16_TFLOPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("H200",), 989.4),
    (("H100", "PCIE"), 756.0),
    (("H100", "NVL"), 835.0),
    (("H100",), 989.4),
    (("A100",), 312.0),
)
GEMM_OPS = frozenset(
    {
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::baddbmm",
        "aten::_scaled_dot_product_flash_attention_for_cpu",
        "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
        "aten::_scaled_dot_product_efficient_attention",
        "aten::_scaled_dot_product_efficient_attention_backward",
        "aten::_scaled_dot_product_flash_attention",
        "aten::_scaled_dot_product_flash_attention_backward",
        "aten::_scaled_dot_product_cudnn_attention",
        "aten::_scaled_dot_product_cudnn_attention_backward",
        "aten::_efficient_attention_forward",
        "aten::_efficient_attention_backward",
        "aten::_flash_attention_forward",
        "aten::_flash_attention_backward",
    }
)
FLOP_COUNTED_OPS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """What one benchmark run does (resolved from the command line and the device)."""

    device: str
    threads: int
    steps: int
    warmup: int
    rounds: int
    budget_s: float
    batch_size: int | None
    studies: int
    matmul_n: int
    matmul_repeats: int
    matmul_seconds: float
    profile_steps: int
    force_profile: bool
    quick: bool
    size: str
    precision: str
    target_fraction: float


def resolve_settings(args: argparse.Namespace) -> Settings:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch.")
    cuda = device == "cuda"
    quick = bool(args.quick)
    if quick:
        steps, warmup, studies, rounds = 2, 1, 48, 1
        budget = 60.0
        matmul_n, repeats, profile_steps = (1024 if cuda else 384), 3, 1
        matmul_seconds = 0.3
        batch = args.batch_size or 8
    else:
        steps, warmup, studies, rounds = (20, 5, 320, 3) if cuda else (8, 2, 320, 3)
        budget = 480.0 if cuda else 180.0
        matmul_n, repeats, profile_steps = (8192 if cuda else 2048), (10 if cuda else 8), 3
        matmul_seconds = 2.0
        batch = args.batch_size or (64 if cuda else None)
    return Settings(
        device=device,
        threads=int(args.threads or os.cpu_count() or 1),
        steps=args.steps or steps,
        warmup=warmup if args.warmup is None else args.warmup,
        # >= 3 interleaved rounds outside --quick: one round cannot tell load from speed
        rounds=(args.rounds or rounds) if quick else max(3, args.rounds or rounds),
        budget_s=budget if args.budget_s is None else float(args.budget_s),
        batch_size=batch,
        studies=args.studies or studies,
        matmul_n=args.matmul_n or matmul_n,
        matmul_repeats=repeats,
        matmul_seconds=matmul_seconds,
        profile_steps=profile_steps,
        force_profile=bool(args.profile),
        quick=quick,
        size=GPU_SIZE if cuda else "",
        precision="bf16" if cuda else "fp32",
        target_fraction=GPU_TARGET_MFU if cuda else CPU_TARGET_FRACTION,
    )


def load_pretrain_params(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("pretrain"), dict):
        raise SystemExit(f"{path} has no 'pretrain:' mapping.")
    return data["pretrain"]


# --------------------------------------------------------------------------- helpers


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM) of this process (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """VmHWM of this process in MiB (falls back to ru_maxrss, the lifetime maximum)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def nominal_bf16_tflops(name: str) -> float | None:
    upper = name.upper()
    for markers, value in NOMINAL_BF16_TFLOPS:
        if all(m in upper for m in markers):
            return value
    return None


def rounded(value: float, digits: int = 4) -> float:
    return round(value, digits) if math.isfinite(value) else value


# --------------------------------------------------------------------------- matmul peak


def gemm_rate(
    m: int,
    k: int,
    n: int,
    device: str,
    dtype: torch.dtype,
    repeats: int,
    min_seconds: float = 0.0,
) -> dict:
    """FLOP/s of ``[m, k] @ [k, n]``: best and median of at least ``repeats`` timings, repeated
    until ``min_seconds`` have passed (a burst of load from other processes then spoils only
    some timings, and the best one still shows what the machine can do)."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    flops = 2.0 * m * k * n
    # One timing should last >= ~50 ms so the clock and launch overheads do not matter.
    inner = 1
    for _ in range(2):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    a @ b
    synchronize(device)
    once = max(time.perf_counter() - start, 1e-7)
    inner = max(1, min(1000, math.ceil(0.05 / once)))
    times: list[float] = []
    deadline = time.perf_counter() + min_seconds
    while len(times) < repeats or time.perf_counter() < deadline:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            a @ b
        synchronize(device)
        times.append((time.perf_counter() - start) / inner)
    best, median = min(times), statistics.median(times)
    return {
        "shape": [m, k, n],
        "dtype": str(dtype).removeprefix("torch."),
        "repeats": len(times),
        "matmuls_per_timing": inner,
        "best_s": best,
        "median_s": median,
        "best_flops_per_s": flops / best,
        "median_flops_per_s": flops / median,
    }


def matmul_rate(settings: Settings) -> dict[str, Any]:
    """One measurement of the big-GEMM rate (fp32 on CPU, bf16 on CUDA)."""
    dtype = torch.bfloat16 if settings.device == "cuda" else torch.float32
    n = settings.matmul_n
    return gemm_rate(
        n, n, n, settings.device, dtype, settings.matmul_repeats, settings.matmul_seconds
    )


def matmul_peak(settings: Settings, start: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """The peak: the best of the measurements at the start and at the end of the benchmark."""
    unit, scale = ("TFLOP/s", 1e12) if settings.device == "cuda" else ("GFLOP/s", 1e9)
    best = max(start["best_flops_per_s"], end["best_flops_per_s"])

    def brief(rate: dict[str, Any]) -> dict[str, Any]:
        return {
            "best": rounded(rate["best_flops_per_s"] / scale, 3),
            "median": rounded(rate["median_flops_per_s"] / scale, 3),
            "timings": rate["repeats"],
            "matmuls_per_timing": rate["matmuls_per_timing"],
        }

    out: dict[str, Any] = {
        "dtype": start["dtype"],
        "shape": start["shape"],
        "unit": unit,
        "peak": rounded(best / scale, 3),
        "flops_per_s": best,
        "threads": torch.get_num_threads(),
        "start": brief(start),
        "end": brief(end),
    }
    if settings.device == "cuda":
        name = torch.cuda.get_device_name(0)
        nominal = nominal_bf16_tflops(name)
        out["device_name"] = name
        out["nominal_bf16_tflops"] = nominal
        if nominal:
            out["measured_over_nominal"] = rounded(out["peak"] / nominal)
    return out


def model_shape_gemms(config: Any, batch_size: int, settings: Settings) -> dict[str, Any]:
    """The GEMM rate at the default model's own shapes (tokens x width), vs the big-GEMM peak."""
    dtype = torch.bfloat16 if settings.device == "cuda" else torch.float32
    text_tokens = batch_size * config.text.max_length
    d_text, d_fusion = config.text.hidden_size, config.fusion.hidden_size
    d_vision = config.vision.embed_dim
    kept = round(config.vision.num_patches * (1 - config.objectives.mim_mask_ratio))
    vision_tokens = batch_size * (1 + kept)
    shapes = {
        "text_ffn_up": (text_tokens, d_text, config.text.intermediate_size),
        "fusion_qkv": (text_tokens, d_fusion, 3 * d_fusion),
        "vision_ffn_up": (vision_tokens, d_vision, round(config.vision.mlp_ratio * d_vision)),
    }
    out = {}
    repeats = 3 if settings.quick else 5
    for name, (m, k, n) in shapes.items():
        rate = gemm_rate(m, k, n, settings.device, dtype, repeats, settings.matmul_seconds / 4)
        out[name] = {"shape": [m, k, n], "best_flops_per_s": rate["best_flops_per_s"]}
    return out


# --------------------------------------------------------------------------- data


@dataclass
class BenchData:
    """SynthRad pairs, tokenizer and image caches (one per image size) in a temp folder."""

    root: Path
    images: pd.DataFrame
    pairs: pd.DataFrame
    tokenizer: Any
    caches: dict[int, str] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def cache_dir(self, image_size: int, channels: int, resize_mode: str, workers: int) -> str:
        if image_size not in self.caches:
            start = time.perf_counter()
            manifest = recipe.build_image_cache(
                self.images,
                {"synthrad": str(self.root / "raw")},
                str(self.root / f"cache_{image_size}"),
                image_size=image_size,
                channels=channels,
                resize_mode=resize_mode,
                workers=workers,
            )
            self.caches[image_size] = manifest["cache_dir"]
            self.timings_s[f"image_cache_{image_size}px"] = time.perf_counter() - start
        return self.caches[image_size]


def build_data(root: Path, params: Mapping[str, Any], studies: int, max_length: int) -> BenchData:
    """Write SynthRad, select the train-split pairs of the configured text kinds, fit the
    tokenizer on their texts (as the pre-training pipeline does)."""
    start = time.perf_counter()
    tables = write_synthrad(
        SynthRadConfig(n_studies=studies, image_size=SYNTHRAD_IMAGE_SIZE, seed=0), root / "raw"
    )
    generated = time.perf_counter() - start
    splits = tables.classification[["image_id", "split"]]
    kinds = list(params.get("text_kinds") or ["report", "caption"])
    pairs = (
        tables.pairs[tables.pairs["text_kind"].isin(kinds)]
        .merge(tables.images[["image_id", "domain"]], on="image_id")
        .merge(splits, on="image_id")
    )
    pairs = pairs[pairs["split"] == "train"].sort_values("pair_id").reset_index(drop=True)
    tok_params = params.get("tokenizer") or {}
    start = time.perf_counter()
    tokenizer = recipe.fit_tokenizer(
        pairs["text"].tolist(),
        vocab_size=int(tok_params.get("vocab_size", 4096)),
        min_frequency=int(tok_params.get("min_frequency", 2)),
        max_length=max_length,
    )
    data = BenchData(root=root, images=tables.images, pairs=pairs, tokenizer=tokenizer)
    data.timings_s["synthrad"] = generated
    data.timings_s["tokenizer"] = time.perf_counter() - start
    return data


# --------------------------------------------------------------------------- training runs


class StepRecorder:
    """Engine logger (``log_every=1``): each optimizer step's wall time and loss.

    The engine logs ``throughput/samples_per_s`` over the window since the last log, i.e. one
    step: its time is ``samples_per_step / samples_per_s`` (forward, backward, clipping,
    optimizer and scheduler; logging and checkpoints excluded). ``on_step`` runs after each
    step (the profiler's step marker).
    """

    def __init__(self, samples_per_step: int, on_step: Callable[[], None] | None = None) -> None:
        self.samples_per_step = samples_per_step
        self.on_step = on_step
        self.step_times: list[float] = []
        self.losses: list[float] = []

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Nothing to record."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record the step's time and loss."""
        rate = metrics.get("throughput/samples_per_s")
        if rate is None:
            return
        self.step_times.append(self.samples_per_step / float(rate))
        self.losses.append(float(metrics.get("train/loss", float("nan"))))
        if self.on_step is not None:
            self.on_step()

    def log_checkpoint(self, path: Path, step: int, final: bool) -> None:
        """Nothing to record."""


@dataclass(frozen=True)
class RunSpec:
    name: str
    preset: str
    m3ae_style: bool


def trainer_settings(
    params: Mapping[str, Any], settings: Settings, max_steps: int, output_dir: Path
) -> dict[str, Any]:
    trainer = copy.deepcopy(dict(params.get("trainer") or {}))
    trainer.update(
        max_steps=max_steps,
        checkpoint_every=0,
        keep_last=1,
        log_every=1,
        progress_bar=False,
        output_dir=str(output_dir),
        resume=False,
        resume_from=None,
        eval_every=0,
    )
    if settings.batch_size:
        trainer["batch_size"] = settings.batch_size
    if settings.device == "cuda":
        trainer["mixed_precision"] = "bf16"
        trainer["cpu"] = False
    else:
        trainer["cpu"] = torch.cuda.is_available()
    return trainer


def model_config_for(spec: RunSpec, params: Mapping[str, Any], settings: Settings, tok: Any):
    overrides = copy.deepcopy(dict(params.get("model") or {}))
    if spec.name != "default":
        # joint vs M3AE-style compares the mmr preset's own objectives: an objective switched
        # on over the preset in conf (e.g. gla_global) has no M3AE-style pass
        overrides.pop("objectives", None)
    if spec.m3ae_style:
        overrides["m3ae_style"] = True
    size = settings.size or str(params.get("size", "small"))
    return recipe.build_model_config(spec.preset, size, overrides, tok)


def train_once(
    spec: RunSpec,
    params: Mapping[str, Any],
    settings: Settings,
    data: BenchData,
    output_dir: Path,
    max_steps: int,
    on_step: Callable[[], None] | None = None,
) -> tuple[Any, Any, StepRecorder, dict[str, Any]]:
    """Build the model and dataset of ``spec`` and run ``engine.train`` for ``max_steps``.

    The engine writes a final checkpoint; it is deleted afterwards (GPU-sized ones are GBs).
    """
    config = model_config_for(spec, params, settings, data.tokenizer)
    cache_params = params.get("image_cache") or {}
    cache_dir = data.cache_dir(
        config.vision.image_size,
        config.vision.in_chans,
        str(cache_params.get("resize_mode", "pad")),
        int(cache_params.get("workers", 0)),
    )
    trainer = trainer_settings(params, settings, max_steps, output_dir)
    trainer_config = TrainerConfig.from_dict(trainer)
    dataset = PairDataset(
        data.pairs, ImageCache(cache_dir), domains=domain_vocabulary(data.pairs["domain"])
    )
    collate = PairCollator(
        data.tokenizer,
        max_length=config.text.max_length,
        padding="longest",
        text_degrader=TextDegrader.for_model(config),
    )
    torch.manual_seed(trainer_config.seed)
    model = MMRModel(config)
    recorder = StepRecorder(trainer_config.batch_size * trainer_config.grad_accum, on_step)
    try:
        result = train(
            model, dataset, trainer_config, collate, tokenizer=data.tokenizer, logger=recorder
        )
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    return model, result, recorder, trainer


def measure_round(
    spec: RunSpec,
    params: Mapping[str, Any],
    settings: Settings,
    data: BenchData,
    workdir: Path,
    round_index: int,
) -> dict[str, Any]:
    """One fresh training run of ``spec``: warm-up + ``settings.steps`` timed steps."""
    if settings.device == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
    load = load_average()
    rss_reset = settings.device == "cpu" and reset_peak_rss()
    started = time.perf_counter()
    model, result, recorder, trainer = train_once(
        spec,
        params,
        settings,
        data,
        workdir / f"{spec.name}_{round_index}",
        settings.warmup + settings.steps,
    )
    wall = time.perf_counter() - started
    timed = recorder.step_times[settings.warmup :]
    if not timed:
        raise RuntimeError(f"{spec.name}: no timed step (steps={settings.steps}).")
    if settings.device == "cuda":
        peak_mb, memory_metric = result.peak_memory_mb, "torch.cuda.max_memory_allocated"
    else:
        peak_mb = peak_rss_mb()
        memory_metric = (
            "max RSS of the process during the run (VmHWM reset before it)"
            if rss_reset
            else "max RSS of the process so far (ru_maxrss; could not reset per run)"
        )
    config = model.config
    record = {
        "round": round_index,
        "load_1m_before": load[0] if load else None,
        "step_times_s": list(recorder.step_times),
        "timed": timed,
        "samples_per_step": recorder.samples_per_step,
        "samples_per_s": recorder.samples_per_step / statistics.median(timed),
        "samples_per_s_incl_warmup": result.samples_per_s,
        "peak_memory_mb": peak_mb,
        "memory_metric": memory_metric,
        "loss_first": recorder.losses[0],
        "loss_last": recorder.losses[-1],
        "wall_s": wall,
        "flops_per_sample": float(model.flops_per_sample()),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "mixed_precision": result.mixed_precision,
        "objectives": list(config.objectives.enabled()),
        "model_config": config.to_dict(),
        "trainer": trainer,
    }
    del model, result
    gc.collect()
    return record


def summarize_rounds(rounds: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Throughput of one config over its rounds.

    ``samples_per_s`` (the headline) is the best round's ``samples_per_step / median step
    time``: on a shared machine bursts of load from other processes stall single steps (the
    median ignores them) or whole rounds (the best round ignores them), the same best-of-N
    rule as the matmul peak. ``samples_per_s_pooled_median`` (median step of all rounds) and
    ``samples_per_s_mean`` (all timed samples over all timed time) show how much load cost.
    """
    first = rounds[0]
    timed = [t for r in rounds for t in r["timed"]]
    per_step = first["samples_per_step"]
    best = max(rounds, key=lambda r: r["samples_per_s"])
    samples_per_s = best["samples_per_s"]
    config = first["model_config"]
    return {
        "preset": config["preset"],
        "m3ae_style": config["m3ae_style"],
        "objectives": first["objectives"],
        "batch_size": first["trainer"]["batch_size"],
        "samples_per_step": per_step,
        "rounds": len(rounds),
        "warmup_steps_per_round": warmup,
        "timed_steps": len(timed),
        "samples_per_s": rounded(samples_per_s, 3),
        "best_round": best["round"],
        "samples_per_s_pooled_median": rounded(per_step / statistics.median(timed), 3),
        "samples_per_s_mean": rounded(per_step * len(timed) / sum(timed), 3),
        "step_time_s": {
            "best_round_median": rounded(statistics.median(best["timed"])),
            "median": rounded(statistics.median(timed)),
            "mean": rounded(sum(timed) / len(timed)),
            "min": rounded(min(timed)),
            "max": rounded(max(timed)),
        },
        "flops_per_sample": first["flops_per_sample"],
        "achieved_flops_per_s": first["flops_per_sample"] * samples_per_s,
        "peak_memory_mb": round(max(r["peak_memory_mb"] for r in rounds), 1),
        "memory_metric": first["memory_metric"],
        "mixed_precision": first["mixed_precision"],
        "num_parameters": first["num_parameters"],
        "loss_first": rounded(first["loss_first"]),
        "loss_last": rounded(rounds[-1]["loss_last"]),
        "per_round": [
            {
                "round": r["round"],
                "load_1m_before": r["load_1m_before"],
                "samples_per_s": rounded(r["samples_per_s"], 3),
                "samples_per_s_incl_warmup": rounded(r["samples_per_s_incl_warmup"], 3),
                "peak_memory_mb": round(r["peak_memory_mb"], 1),
                "wall_s": round(r["wall_s"], 1),
                "step_times_s": [rounded(t) for t in r["step_times_s"]],
            }
            for r in rounds
        ],
        "model_config": config,
        "trainer": first["trainer"],
    }


def profile_run(
    spec: RunSpec,
    params: Mapping[str, Any],
    settings: Settings,
    data: BenchData,
    workdir: Path,
    active: int,
    top: int = 15,
) -> dict[str, Any]:
    """torch.profiler over ``active`` steps of the engine loop (after 2 others).

    Schedule: the setup and step 1 are skipped (wait), step 2 warms the profiler up, steps
    3 .. 2 + n are recorded. Reports the top ops by self time (CPU: aten ops' self CPU time;
    CUDA: GPU kernels' time), the share of GEMM / attention, the optimizer step, and the GEMM
    rate inside the model (the profiler's FLOP counts of mm / addmm / bmm / baddbmm over
    their time).
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, schedule

    cuda = settings.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(
        activities=activities,
        schedule=schedule(wait=1, warmup=1, active=active, repeat=1),
        record_shapes=True,
        with_flops=True,
    )
    with prof:
        model, _result, recorder, _trainer = train_once(
            spec, params, settings, data, workdir / f"{spec.name}_profile", 2 + active, prof.step
        )
    del model
    gc.collect()
    events = prof.key_averages()

    if cuda:  # GPU kernels: their own device time (an aten op's device time repeats it)
        ops = [e for e in events if e.device_type == DeviceType.CUDA]

        def self_time(evt: Any) -> float:  # microseconds
            return float(evt.self_device_time_total)

        def is_gemm(name: str) -> bool:
            lowered = name.lower()
            markers = (
                "gemm", "xmma", "nvjet", "cutlass", "flash", "fmha", "sdpa", "attention", "matmul",
            )  # fmt: skip
            return any(m in lowered for m in markers)

        def op_time(evt: Any) -> float:  # an aten op's time on the GPU, kernels included
            return float(evt.device_time_total)
    else:
        ops = [e for e in events if not e.key.startswith(("ProfilerStep", "Optimizer."))]

        def self_time(evt: Any) -> float:
            return float(evt.self_cpu_time_total)

        def is_gemm(name: str) -> bool:
            return name in GEMM_OPS

        op_time = self_time

    total_self = sum(self_time(e) for e in ops) or 1.0
    ranked = sorted(ops, key=self_time, reverse=True)[:top]
    gemm_self = sum(self_time(e) for e in ops if is_gemm(e.key))
    counted = [e for e in events if e.key in FLOP_COUNTED_OPS]
    counted_flops = sum(float(e.flops or 0) for e in counted)
    counted_s = sum(op_time(e) for e in counted) / 1e6
    optimizer = [e for e in events if e.key.startswith("Optimizer.step")]
    optimizer_s = sum(float(e.cpu_time_total) for e in optimizer) / 1e6
    profiled_steps = recorder.step_times[2 : 2 + active]
    out: dict[str, Any] = {
        "config": spec.name,
        "profiled_steps": active,
        "time_basis": "GPU kernel time" if cuda else "self CPU time of aten ops",
        "step_time_s_under_profiler": rounded(sum(profiled_steps) / max(len(profiled_steps), 1)),
        "total_self_time_ms_per_step": rounded(total_self / 1e3 / active, 2),
        "gemm_and_attention_share": rounded(gemm_self / total_self),
        "optimizer_step_cpu_ms_per_step": rounded(optimizer_s * 1e3 / active, 2),
        "gemm_flops_per_s_in_model": rounded(counted_flops / counted_s, 1) if counted_s else None,
        "top_ops": [
            {
                "name": e.key,
                "calls_per_step": round(e.count / active, 1),
                "self_ms_per_step": rounded(self_time(e) / 1e3 / active, 3),
                "share": rounded(self_time(e) / total_self),
            }
            for e in ranked
        ],
    }
    if not cuda:  # on CPU the optimizer's wall time is op time too
        out["optimizer_step_share"] = rounded(optimizer_s * 1e6 / total_self)
    return out


# --------------------------------------------------------------------------- main


def run(settings: Settings, params: Mapping[str, Any], params_file: Path) -> dict[str, Any]:
    torch.set_num_threads(settings.threads)
    load_start = load_average()
    started = time.perf_counter()
    peak_start = matmul_rate(settings)

    default_spec = RunSpec("default", str(params.get("preset", "robust_mmr")), False)
    specs = [
        default_spec,
        RunSpec("mmr_joint", "mmr", False),
        RunSpec("mmr_m3ae_style", "mmr", True),
    ]
    default_config = model_config_for(default_spec, params, settings, None)
    with tempfile.TemporaryDirectory(prefix="bench_pretrain_") as tmp:
        workdir = Path(tmp)
        data = build_data(workdir, params, settings.studies, default_config.text.max_length)
        batch = settings.batch_size or int((params.get("trainer") or {}).get("batch_size", 32))
        shapes = model_shape_gemms(default_config, batch, settings)
        rounds: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in specs}
        rounds_started = time.perf_counter()
        rounds_note = "all planned rounds ran at full length"
        round_settings = settings
        for index in range(settings.rounds):
            if index > 0 and settings.budget_s > 0:
                # A noisy machine needs several interleaved rounds more than long ones: when
                # the budget runs short, the remaining rounds get fewer timed steps (never
                # fewer than 2), they are not dropped.
                spent = time.perf_counter() - rounds_started
                per_step = spent / (index * len(specs) * (settings.warmup + settings.steps))
                left = settings.budget_s - (time.perf_counter() - started)
                remaining = (settings.rounds - index) * len(specs)
                affordable = int(left / (1.5 * per_step * remaining)) - settings.warmup
                steps = max(2, min(settings.steps, affordable))
                if steps < round_settings.steps:
                    round_settings = dataclasses.replace(settings, steps=steps)
                    rounds_note = (
                        f"rounds {index + 1}..{settings.rounds} shortened to {steps} timed "
                        f"steps to fit the {settings.budget_s:.0f} s budget (--budget-s)"
                    )
                    print(f"-- {rounds_note}", flush=True)
            # Alternate the order so slow drifts of the machine's load hit every config alike.
            for spec in specs if index % 2 == 0 else specs[::-1]:
                print(
                    f"-- round {index + 1}/{settings.rounds} {spec.name}: {spec.preset} "
                    f"(m3ae_style={spec.m3ae_style}, {round_settings.steps} timed steps)",
                    flush=True,
                )
                record = measure_round(spec, params, round_settings, data, workdir, index)
                rounds[spec.name].append(record)
                print(
                    f"   {record['samples_per_s']:.2f} samples/s, {record['wall_s']:.1f} s "
                    f"(load {record['load_1m_before']})",
                    flush=True,
                )
        runs = {
            name: summarize_rounds(records, settings.warmup) for name, records in rounds.items()
        }
        peak = matmul_peak(settings, peak_start, matmul_rate(settings))
        peak_flops = float(peak["flops_per_s"])
        for entry in [*runs.values(), *shapes.values()]:
            key = "achieved_flops_per_s" if "achieved_flops_per_s" in entry else "best_flops_per_s"
            entry["fraction_of_peak"] = rounded(entry[key] / peak_flops)
        below = runs["default"]["fraction_of_peak"] < settings.target_fraction
        if below or settings.force_profile:
            spent = settings.budget_s > 0 and time.perf_counter() - started > settings.budget_s
            active = 1 if spent else settings.profile_steps  # past the budget: a short look
            print(f"-- profiling the default config ({active} step(s))", flush=True)
            profile = profile_run(default_spec, params, settings, data, workdir, active)
            profile["reason"] = "below target" if below else "--profile"
        else:
            profile = {"skipped": True, "reason": "default config meets the target fraction"}
        data_info = {
            "source": "SynthRad (write_synthrad), generated into a temporary folder",
            "studies": settings.studies,
            "synthrad_image_size": SYNTHRAD_IMAGE_SIZE,
            "train_pairs": len(data.pairs),
            "text_kinds": list(params.get("text_kinds") or ["report", "caption"]),
            "tokenizer_vocab": len(data.tokenizer),
            "cache_image_sizes": sorted(data.caches),
            "prep_seconds": {k: round(v, 2) for k, v in data.timings_s.items()},
        }

    joint, m3ae = runs["mmr_joint"], runs["mmr_m3ae_style"]
    ratio = joint["samples_per_s"] / m3ae["samples_per_s"]
    m3ae_by_round = {r["round"]: r["samples_per_s"] for r in m3ae["per_round"]}
    ratio_by_round = [
        rounded(r["samples_per_s"] / m3ae_by_round[r["round"]], 3)
        for r in joint["per_round"]
        if r["round"] in m3ae_by_round
    ]
    target = settings.target_fraction
    efficiency = {
        name: {
            "fraction_of_peak": runs[key]["fraction_of_peak"],
            "target": target,
            "met": runs[key]["fraction_of_peak"] >= target,
        }
        for name, key in (("default", "default"), ("mmr", "mmr_joint"))
    }
    cuda = settings.device == "cuda"
    if cuda:
        nominal = peak.get("nominal_bf16_tflops")
        gpu: dict[str, Any] = {
            "skipped": False,
            "size": settings.size,
            "precision": "bf16 autocast",
            "bf16_peak_tflops_measured": peak["peak"],
            "nominal_bf16_tflops": nominal,
            "target_mfu": GPU_TARGET_MFU,
        }
        for name, key in (("default", "default"), ("mmr", "mmr_joint")):
            mfu = runs[key]["fraction_of_peak"]
            gpu[f"mfu_{name}"] = mfu
            gpu[f"mfu_{name}_met"] = mfu >= GPU_TARGET_MFU
            if nominal:
                gpu[f"mfu_{name}_vs_nominal"] = rounded(
                    runs[key]["achieved_flops_per_s"] / (nominal * 1e12)
                )
    else:
        gpu = {
            "skipped": True,
            "reason": "no CUDA run (--device cpu or no GPU visible): the size 'base' bf16 MFU "
            "is measured with --device cuda",
        }
    return {
        "benchmark": "pretrain",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": settings.device,
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_name(),
        "threads": torch.get_num_threads(),
        "throughput_basis": "samples_per_s = samples per step / median timed step time of the "
        "best round (best of N, like the matmul peak); samples_per_s_pooled_median and "
        "samples_per_s_mean pool all rounds; warm-up steps excluded",
        "quick": settings.quick,
        "load_average": {"start": load_start, "end": load_average()},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
        },
        "config": {
            "params_file": str(params_file),
            "preset": default_spec.preset,
            "size": settings.size or str(params.get("size", "small")),
            "model_overrides": params.get("model") or {},
            "trainer": runs["default"]["trainer"],
            "precision": settings.precision,
            "rounds_planned": settings.rounds,
            "rounds": max(run["rounds"] for run in runs.values()),
            "rounds_note": rounds_note,
            "budget_s": settings.budget_s,
            "warmup_steps_per_round": settings.warmup,
            "timed_steps_per_round": settings.steps,
            "data": data_info,
        },
        "matmul_peak": peak,
        "model_shape_gemms": shapes,
        "runs": runs,
        "joint_vs_m3ae": {
            "preset": "mmr",
            "ratio": rounded(ratio, 3),
            "ratio_by_round": ratio_by_round,
            "target": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO,
            "analytic_flops_ratio": rounded(m3ae["flops_per_sample"] / joint["flops_per_sample"]),
        },
        "efficiency": efficiency,
        "profile": profile,
        "gpu": gpu,
        "seconds": round(time.perf_counter() - started, 1),
    }


def print_summary(result: Mapping[str, Any]) -> None:
    peak = result["matmul_peak"]
    cuda = result["device"] == "cuda"
    scale, unit = (1e12, "TFLOP/s") if cuda else (1e9, "GFLOP/s")
    header = (
        f"{'run':<16}{'preset':<12}{'samples/s':>10}{'step s':>9}{'GFLOP/smp':>11}"
        f"{unit:>10}{'% peak':>8}{'peak MB':>10}"
    )
    print(
        f"\npretrain benchmark on {result['device_name']} ({result['device']}, "
        f"{result['threads']} threads, {result['config']['precision']})"
    )
    print(
        f"matmul peak {peak['peak']} {peak['unit']} ({peak['dtype']} {peak['shape'][0]}^3; best "
        f"at start {peak['start']['best']}, at end {peak['end']['best']})"
    )
    print(header)
    print("-" * len(header))
    for name, run in result["runs"].items():
        print(
            f"{name:<16}{run['preset']:<12}{run['samples_per_s']:>10.2f}"
            f"{run['step_time_s']['best_round_median']:>9.3f}{run['flops_per_sample'] / 1e9:>11.3f}"
            f"{run['achieved_flops_per_s'] / scale:>10.2f}{100 * run['fraction_of_peak']:>7.1f}%"
            f"{run['peak_memory_mb']:>10.0f}"
        )
    ratio = result["joint_vs_m3ae"]
    print(
        f"joint / M3AE-style samples/s: {ratio['ratio']:.2f}x (target >= {ratio['target']}, "
        f"{'met' if ratio['met'] else 'MISSED'}; analytic FLOPs ratio "
        f"{ratio['analytic_flops_ratio']:.2f}x)"
    )
    for name, eff in result["efficiency"].items():
        print(
            f"{name}: {100 * eff['fraction_of_peak']:.1f}% of peak (target >= "
            f"{100 * eff['target']:.0f}%, {'met' if eff['met'] else 'MISSED'})"
        )
    profile = result["profile"]
    if not profile.get("skipped"):
        print(
            f"profile ({profile['config']}): GEMM + attention "
            f"{100 * profile['gemm_and_attention_share']:.0f}% of op time, optimizer step "
            f"{profile['optimizer_step_cpu_ms_per_step']:.1f} ms (CPU) per step; top ops:"
        )
        for op in profile["top_ops"][:8]:
            print(f"  {op['name']:<58}{100 * op['share']:>6.1f}%{op['self_ms_per_step']:>10.2f} ms")
    gpu = result["gpu"]
    if gpu.get("skipped"):
        print(f"GPU: skipped ({gpu['reason']})")
    else:
        for name in ("default", "mmr"):
            nominal = gpu.get(f"mfu_{name}_vs_nominal")
            mfu = gpu[f"mfu_{name}"]
            print(
                f"GPU {gpu['size']} bf16 {name}: MFU {100 * mfu:.1f}% of the measured peak "
                f"(target >= {100 * gpu['target_mfu']:.0f}%)"
                + (f", {100 * nominal:.1f}% of the datasheet peak" if nominal else "")
            )
    print(f"rounds: {result['config']['rounds']} ({result['config']['rounds_note']})")
    load = result["load_average"]
    print(f"load average start {load['start']} end {load['end']}; {result['seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=None, help="untimed first steps per run")
    parser.add_argument(
        "--rounds", type=int, default=None, help="fresh runs per config, alternating (CPU: 3)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the config's (CPU), 64 (CUDA)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: auto")
    parser.add_argument("--studies", type=int, default=None, help="SynthRad studies to generate")
    parser.add_argument("--matmul-n", type=int, default=None, help="GEMM size of the peak")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE, help="pre-training params")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="skip further rounds when they would pass this many seconds (CPU: 180; 0: off)",
    )
    parser.add_argument("--profile", action="store_true", help="profile even when on target")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (tests)")
    args = parser.parse_args(argv)
    for name in ("steps", "rounds", "batch_size", "threads", "studies", "matmul_n"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "threads" else 1):
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.budget_s is not None and args.budget_s < 0:
        parser.error("--budget-s must be >= 0")
    settings = resolve_settings(args)
    params = load_pretrain_params(args.params)
    result = run(settings, params, args.params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_summary(result)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
