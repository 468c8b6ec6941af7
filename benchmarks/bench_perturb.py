"""Milliseconds per batch of every image perturbation (and the token perturbation).

Default workload: 64 grayscale 128 x 128 images at severity 3 on CPU, the size of a training
step's perturbed view. Each perturbation runs ``--warmup`` untimed calls, then ``--repeats``
timed calls; the JSON reports the median and the minimum (the minimum is the better estimate
on a shared machine). Text perturbations are timed per report string.

    python benchmarks/bench_perturb.py --out data/08_reporting/bench_perturb.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from robust_mmr_pipeline.perturb import (
    list_image_perturbations,
    list_text_perturbations,
    perturb_image,
    perturb_text,
    perturb_token_ids,
)

REPORT = (
    "FINDINGS: PA and lateral views of the chest. The heart size is normal. There is a 2.5 cm "
    "opacity in the right upper lobe, likely consistent with pneumonia. No pleural effusion "
    "or pneumothorax. No acute fracture is seen. Two small nodules measure 4 mm. "
    "IMPRESSION: Right upper lobe consolidation, r/o pneumonia. Follow-up CXR recommended."
)


def structured_images(batch: int, channels: int, size: int, device: torch.device) -> torch.Tensor:
    """``[batch, channels, size, size]`` in [0, 1]: gradients, a disc, a bar and a texture."""
    g = torch.Generator().manual_seed(0)
    params = torch.rand(batch, 6, generator=g)
    coords = torch.linspace(0.0, 1.0, size)
    yy, xx = coords.view(1, size, 1), coords.view(1, 1, size)
    p = [params[:, i].view(batch, 1, 1) for i in range(6)]
    image = 0.2 + 0.4 * (p[0] * xx + (1 - p[0]) * yy)
    disc = (yy - p[1]) ** 2 + (xx - p[2]) ** 2 < (0.1 + 0.2 * p[3]) ** 2
    image = torch.where(disc, torch.full_like(image, 0.8), image)
    bar = ((yy - p[4]).abs() < 0.08) & ((xx - 0.5).abs() < 0.3)
    image = torch.where(bar, torch.full_like(image, 0.1), image)
    image = image + 0.05 * torch.sin(2 * math.pi * (6 * xx + 4 * yy) * (1 + p[5]))
    return image.clamp(0, 1)[:, None].expand(batch, channels, size, size).contiguous().to(device)


def _time(fn: Callable[[], object], warmup: int, repeats: int, device: torch.device) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3)}


def run(args: argparse.Namespace) -> dict:
    """Time every perturbation; returns the JSON-ready result."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    images = structured_images(args.batch, args.channels, args.size, device)
    generator = torch.Generator(device=device).manual_seed(0)
    image_results = {}
    for name in list_image_perturbations():
        image_results[name] = _time(
            lambda name=name: perturb_image(images, name, args.severity, generator),
            args.warmup,
            args.repeats,
            device,
        )
        print(f"{name:16s} {image_results[name]['median_ms']:9.2f} ms", flush=True)
    ids = torch.randint(5, 30000, (args.batch, 64), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    ids, special = ids.to(device), special.to(device)
    token_result = _time(
        lambda: perturb_token_ids(ids, args.severity, special, 30522, generator),
        args.warmup,
        args.repeats,
        device,
    )
    text_results = {
        name: _time(
            lambda name=name: perturb_text(REPORT, name, args.severity, seed=0),
            args.warmup,
            args.repeats,
            torch.device("cpu"),
        )
        for name in list_text_perturbations()
    }
    return {
        "workload": {
            "images": [args.batch, args.channels, args.size, args.size],
            "severity": args.severity,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "token_ids": [args.batch, 64],
            "text_chars": len(REPORT),
        },
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            # Load when the timings were taken: on a shared machine, read min_ms.
            "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "image_ms_per_batch": image_results,
        "token_ms_per_batch": token_result,
        "text_ms_per_report": text_results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/08_reporting/bench_perturb.json"))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
