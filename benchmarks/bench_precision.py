"""fp32 vs bf16 autocast for the default pre-training model on this CPU: speed and learning curves.

Usage: python benchmarks/bench_precision.py [--out data/08_reporting/bench_precision.json]
                                            [--steps 60] [--rounds 5] [--threads 2]

1. Speed: one training step (forward + backward + AdamW) of the default small model
   (``pretrain.preset`` at ``size: small``, 64-px SynthRad images in 16-px patches, batch 32) in
   fp32 and under bf16 autocast, interleaved round by round; min and median seconds per step.
   A 2048² matmul in both dtypes is reported beside it (what the chip can do at best).
2. Learning curves: ``--steps`` pre-training steps on a small SynthRad cohort from the same seed
   in fp32 and in bf16, and in fp32 from a second seed; the largest gap between the smoothed
   loss curves of the two precisions is reported beside the gap between the two seeds (the
   noise the comparison must stay within).
3. What ``mixed_precision: auto`` decides for this model here (engine/precision.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robust_mmr_pipeline.engine import PairCollator, PairDataset, domain_vocabulary, train
from robust_mmr_pipeline.engine.data import ImageCache
from robust_mmr_pipeline.model import MMRModel, apply_preset
from robust_mmr_pipeline.model.tokenizer import special_token_ids, train_tokenizer
from robust_mmr_pipeline.model.views import TextDegrader
from robust_mmr_pipeline.sources.synthrad import SynthRadConfig, write_synthrad

PRESET = "robust_mmr"
BATCH = 32


def _data(root: Path) -> tuple[Any, Any, Any]:
    tables = write_synthrad(SynthRadConfig(n_studies=256, image_size=128, seed=11), root / "raw")
    cache = ImageCache.build(tables.images, root / "cache", root=root / "raw", image_size=64)
    pairs = tables.pairs.merge(tables.images[["image_id", "domain"]], on="image_id")
    tokenizer = train_tokenizer(pairs["text"].tolist(), vocab_size=1024, min_frequency=1)
    return pairs, cache, tokenizer


def _model_config(tokenizer: Any) -> Any:
    text = {"vocab_size": len(tokenizer), **special_token_ids(tokenizer)}
    return apply_preset(PRESET, {"vision": {"patch_size": 16}, "text": text})


def _speed(config: Any, batch: dict, rounds: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model = MMRModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-4)

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(batch, 0.5).loss
        loss.float().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times: dict[bool, list[float]] = {False: [], True: []}
    for bf16 in (False, True):
        step(bf16)
    for _ in range(rounds):
        for bf16 in (False, True):
            start = time.perf_counter()
            step(bf16)
            times[bf16].append(time.perf_counter() - start)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    matmul: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            x, y = a.to(dtype), b.to(dtype)
            start = time.perf_counter()
            x @ y
            matmul[name].append(time.perf_counter() - start)
    out: dict[str, Any] = {}
    for bf16, name in ((False, "fp32"), (True, "bf16")):
        out[f"step_{name}_min_s"] = min(times[bf16])
        out[f"step_{name}_median_s"] = statistics.median(times[bf16])
        out[f"matmul2048_{name}_gflops"] = 2 * 2048**3 / min(matmul[name]) / 1e9
    out["step_speedup_min"] = out["step_fp32_min_s"] / out["step_bf16_min_s"]
    return out


def _curve(config: Any, pairs: Any, cache: Any, tokenizer: Any, steps: int, seed: int,
           bf16: bool, out: Path) -> np.ndarray:  # fmt: skip
    """Smoothed loss curve of ``steps`` steps. bf16 goes through the trainer's ``auto`` with a
    verdict file saying bf16 (what auto does where bf16 measured faster): explicit ``bf16`` is
    refused on the CPU."""
    import os

    from robust_mmr_pipeline.engine.precision import CACHE_ENV, cpu_identity, model_key

    torch.manual_seed(seed)
    model = MMRModel(config)
    key = f"{cpu_identity()} | {model_key(model, BATCH)}"
    verdicts = out.with_suffix(".json")
    verdicts.write_text(json.dumps({key: {"use_bf16": bf16, "speedup": 0.0, "fp32_s": 0.0,
                                          "bf16_s": 0.0, "key": key}}))  # fmt: skip
    os.environ[CACHE_ENV] = str(verdicts)
    dataset = PairDataset(pairs, cache, domains=domain_vocabulary(pairs["domain"].tolist()))
    collate = PairCollator(tokenizer, max_length=config.text.max_length, padding="longest",
                           text_degrader=TextDegrader.for_model(config))  # fmt: skip
    trainer = {"max_steps": steps, "batch_size": BATCH, "lr": 5e-4, "head_lr_mult": 5.0,
               "seed": seed, "mixed_precision": "auto", "progress_bar": False,
               "checkpoint_every": 0, "log_every": 1000, "output_dir": str(out)}  # fmt: skip
    result = train(model, dataset, trainer, collate, tokenizer=tokenizer)
    loss = np.array([r["loss"] for r in result.losses])
    window = max(1, steps // 10)
    return np.convolve(loss, np.ones(window) / window, mode="valid")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/bench_precision.json"))
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs, cache, tokenizer = _data(root)
        config = _model_config(tokenizer)
        collate = PairCollator(tokenizer, max_length=config.text.max_length, padding="longest",
                               text_degrader=TextDegrader.for_model(config))  # fmt: skip
        dataset = PairDataset(pairs, cache, domains=domain_vocabulary(pairs["domain"].tolist()))
        batch = collate([dataset[i] for i in range(BATCH)])
        result: dict[str, Any] = {"preset": PRESET, "batch": BATCH, "threads": args.threads}
        result.update(_speed(config, batch, args.rounds))
        curves = {}
        for bf16, seed in ((False, 0), (True, 0), (False, 1)):
            out = root / f"{'bf16' if bf16 else 'fp32'}-{seed}"
            curves[(bf16, seed)] = _curve(
                config, pairs, cache, tokenizer, args.steps, seed, bf16, out
            )
        fp32, bf16, other_seed = curves[(False, 0)], curves[(True, 0)], curves[(False, 1)]
        result["curve_gap_bf16_vs_fp32"] = float(np.abs(bf16 - fp32).max())
        result["curve_gap_seed1_vs_seed0"] = float(np.abs(other_seed - fp32).max())
        result["curves_equal_within_noise"] = (
            result["curve_gap_bf16_vs_fp32"] <= result["curve_gap_seed1_vs_seed0"]
        )
        result["final_loss"] = {"fp32": float(fp32[-1]), "bf16": float(bf16[-1]),
                                "fp32_seed1": float(other_seed[-1])}  # fmt: skip
        import os

        from robust_mmr_pipeline.engine.precision import CACHE_ENV, decide_cpu_precision

        os.environ[CACHE_ENV] = str(root / "measured.json")  # a real measurement, not cached
        torch.manual_seed(0)
        result["auto_decides"] = decide_cpu_precision(MMRModel(config), batch, BATCH)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
