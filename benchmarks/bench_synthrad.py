"""Benchmark SynthRad on one core: generation and PNG-writing rates, and the domain shift a plain
classifier meets on the held-out site.

Usage: python benchmarks/bench_synthrad.py [--out data/08_reporting/bench_synthrad.json] [--n 2000]

Rates are reported against wall time and against this process's CPU time; on a shared machine
the CPU-time rate is the faithful single-core figure (other processes inflate wall time). Each
timing is repeated and the best run kept, the usual way to read through background load.
"""

from __future__ import annotations

import os

# Thread pools are sized when numpy (OpenBLAS/MKL) first loads: pin them to one thread first.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["NUMEXPR_NUM_THREADS"] = "1"
os.environ["VECLIB_MAXIMUM_THREADS"] = "1"

import argparse
import json
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from robust_mmr_pipeline.sources.synthrad import (
    SynthRadConfig,
    generate_studies,
    write_synthrad,
)
from robust_mmr_pipeline.sources.synthrad.generate import block_size, render_block
from robust_mmr_pipeline.sources.synthrad.primitives import Canvas
from robust_mmr_pipeline.sources.synthrad.writer import encode_png

try:  # threadpoolctl ships with scikit-learn; it also caps pools loaded after this point.
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - the env variables above still apply
    threadpool_limits = None


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def measure_generation(n: int, seed: int, repeats: int) -> dict[str, Any]:
    """Studies per second at 128 px: ``generate_studies`` end to end (pixels, ground truth,
    report, caption, QA) and the pixel part alone (``render_block`` over the same blocks)."""
    config = SynthRadConfig(n_studies=n, image_size=128, seed=seed)
    generate_studies(SynthRadConfig(n_studies=64, seed=seed))  # warm caches (matrices, tables)
    runs = [_timed(lambda: generate_studies(config))[1:] for _ in range(repeats)]
    blocks = range(-(-n // block_size(128)))
    canvas = Canvas(128, block_size(128))
    pixel_runs = [
        _timed(lambda: [render_block(config, b, True, canvas) for b in blocks])[1:]
        for _ in range(repeats)
    ]
    rendered = len(blocks) * block_size(128)
    return {
        "n_studies": n,
        "image_size": 128,
        "repeats": repeats,
        "wall_s": [round(r[0], 4) for r in runs],
        "cpu_s": [round(r[1], 4) for r in runs],
        "studies_per_s_wall": round(n / min(r[0] for r in runs), 1),
        "studies_per_s_cpu": round(n / min(r[1] for r in runs), 1),
        "images_only_studies_per_s_wall": round(rendered / min(r[0] for r in pixel_runs), 1),
        "images_only_studies_per_s_cpu": round(rendered / min(r[1] for r in pixel_runs), 1),
    }


def measure_png(n: int, seed: int, repeats: int, compress_level: int) -> dict[str, Any]:
    """PNG encode+write rate alone, and the end-to-end ``write_synthrad`` rate."""
    config = SynthRadConfig(
        n_studies=n, image_size=128, seed=seed, png_compress_level=compress_level
    )
    images, _ = generate_studies(config)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def write_all() -> None:
            for i, img in enumerate(images):
                (root / f"{i:06d}.png").write_bytes(encode_png(img, compress_level))

        png_runs = [_timed(write_all)[1:] for _ in range(repeats)]
        end_to_end = [
            _timed(lambda: write_synthrad(config, root / "synthrad"))[1:] for _ in range(repeats)
        ]
        size = sum(p.stat().st_size for p in (root / "synthrad").rglob("*.png"))
    best_png = min(r[0] for r in png_runs)
    best_e2e = min(r[0] for r in end_to_end)
    return {
        "n_studies": n,
        "compress_level": compress_level,
        "png_writes_per_s_wall": round(n / best_png, 1),
        "png_writes_per_s_cpu": round(n / min(r[1] for r in png_runs), 1),
        "write_synthrad_studies_per_s_wall": round(n / best_e2e, 1),
        "write_synthrad_studies_per_s_cpu": round(n / min(r[1] for r in end_to_end), 1),
        "mean_png_bytes": round(size / n, 1),
    }


def features(images: np.ndarray) -> np.ndarray:
    """Plain pixel features: 32x32 area means plus 16x16 max and min pools (bright and dark
    spots survive pooling): float32 [N, 1536] in [0, 1]."""
    n, size, _ = images.shape
    x = images.astype(np.float32) / 255.0
    mean = x.reshape(n, 32, size // 32, 32, size // 32).mean(axis=(2, 4))
    blocks = x.reshape(n, 16, size // 16, 16, size // 16)
    return np.concatenate(
        [
            mean.reshape(n, -1),
            blocks.max(axis=(2, 4)).reshape(n, -1),
            blocks.min(axis=(2, 4)).reshape(n, -1),
        ],
        axis=1,
    )


def _fit_score(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, c: float
) -> tuple[Any, Any, float]:
    """Standardise on ``train``, fit a logistic regression, return (model, scaler, accuracy)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(x[train]), y[train])
    accuracy = float((model.predict(scaler.transform(x[test])) == y[test]).mean())
    return model, scaler, round(accuracy, 4)


def domain_shift(n: int, seed: int, c: float) -> dict[str, Any]:
    """Train a logistic regression on the training sites' train split to predict the label;
    compare accuracy on those sites' test split with accuracy on the held-out site.

    Two controls separate shift from difficulty: an "oracle" trained and tested on the held-out
    site itself (70/30, its studies only), and the same protocol on an equally sized sample of
    the training sites.
    """
    config = SynthRadConfig(n_studies=n, image_size=128, seed=seed)
    images, records = generate_studies(config)
    x = features(images)
    y = np.array([r["label"] for r in records])
    split = np.array([r["split"] for r in records])
    held = np.array([r["held_out"] for r in records])
    site = np.array([r["site"] for r in records])
    train, test = (split == "train") & ~held, (split == "test") & ~held
    wall = time.perf_counter()
    model, scaler, in_domain = _fit_score(x, y, train, test, c)
    fit_seconds = time.perf_counter() - wall
    pred = model.predict(scaler.transform(x))

    def accuracy(mask: np.ndarray) -> float:
        return round(float((pred[mask] == y[mask]).mean()), 4)

    held_out = accuracy(held)
    rng = np.random.default_rng(seed)

    def within(pool: np.ndarray) -> float:
        rows = rng.permutation(np.flatnonzero(pool))[: int(held.sum())]
        cut = int(0.7 * len(rows))
        inside_train, inside_test = np.zeros(n, bool), np.zeros(n, bool)
        inside_train[rows[:cut]], inside_test[rows[cut:]] = True, True
        return _fit_score(x, y, inside_train, inside_test, c)[2]

    majority = Counter(y[train]).most_common(1)[0][0]
    return {
        "n_studies": n,
        "classifier": f"LogisticRegression(C={c}) on 32x32 means + 16x16 max/min pools",
        "n_classes": len(set(y)),
        "n_train": int(train.sum()),
        "n_test_in_domain": int(test.sum()),
        "n_held_out": int(held.sum()),
        "held_out_sites": config.held_out_sites,
        "train_accuracy": accuracy(train),
        "in_domain_test_accuracy": in_domain,
        "held_out_accuracy": held_out,
        "accuracy_drop": round(in_domain - held_out, 4),
        "majority_class": str(majority),
        "majority_baseline_in_domain": round(float((y[test] == majority).mean()), 4),
        "majority_baseline_held_out": round(float((y[held] == majority).mean()), 4),
        "test_accuracy_by_site": {
            s: accuracy((site == s) & (split == "test")) for s in sorted(set(site))
        },
        "oracle_held_out_site_accuracy": within(held),
        "same_size_training_sites_accuracy": within(~held),
        "fit_seconds": round(fit_seconds, 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("data/08_reporting/bench_synthrad.json"),
        help="JSON file to write",
    )
    parser.add_argument("--n", type=int, default=2000, help="studies for the generation timing")
    parser.add_argument("--n-png", type=int, default=1000, help="studies for the PNG timing")
    parser.add_argument(
        "--n-classifier", type=int, default=4000, help="studies for the domain-shift classifier"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--c", type=float, default=0.05, help="inverse L2 strength")
    args = parser.parse_args(argv)

    limits = threadpool_limits(limits=1) if threadpool_limits is not None else nullcontext()
    with limits:
        result = {
            "benchmark": "synthrad",
            "machine": {
                "python": platform.python_version(),
                "numpy": np.__version__,
                "processor": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "threads": 1,
                "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            },
            "generation": measure_generation(args.n, args.seed, args.repeats),
            "png": measure_png(args.n_png, args.seed, args.repeats, 1),
            "domain_shift": domain_shift(args.n_classifier, args.seed, args.c),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    gen, png, shift = result["generation"], result["png"], result["domain_shift"]
    print(
        f"generation @128px: {gen['studies_per_s_cpu']:.0f} studies/s per CPU-second "
        f"({gen['studies_per_s_wall']:.0f}/s wall, n={gen['n_studies']}, 1 thread); pixels "
        f"alone {gen['images_only_studies_per_s_cpu']:.0f}/s per CPU-second"
    )
    print(
        f"PNG encode+write: {png['png_writes_per_s_cpu']:.0f}/s per CPU-second "
        f"({png['png_writes_per_s_wall']:.0f}/s wall); write_synthrad end to end: "
        f"{png['write_synthrad_studies_per_s_wall']:.0f} studies/s wall"
    )
    print(
        f"classifier ({shift['n_classes']} classes): in-domain test "
        f"{shift['in_domain_test_accuracy']:.3f}, held-out site "
        f"{shift['held_out_accuracy']:.3f}, drop {shift['accuracy_drop']:+.3f} "
        f"(majority baseline {shift['majority_baseline_in_domain']:.3f})"
    )
    print(
        f"  controls: trained and tested on the held-out site itself "
        f"{shift['oracle_held_out_site_accuracy']:.3f}; same-size sample of the training sites "
        f"{shift['same_size_training_sites_accuracy']:.3f}"
    )
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
