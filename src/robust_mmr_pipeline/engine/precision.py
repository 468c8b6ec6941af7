"""``mixed_precision: auto``: bf16 autocast where it makes THIS model train faster on THIS machine.

On a GPU, ``auto`` is bf16 where the card supports it, else fp32. On a CPU the answer depends on
the chip and on the model: with native bf16 (AVX-512 BF16 / AMX) a large bf16 matmul runs
several times faster than fp32, but a small model spends its time in casts and elementwise
kernels, and without native bf16 autocast is emulated and far slower. So ``auto`` does not trust
a list of CPU names: it MEASURES the model's own training step (forward + backward on a real
batch) in fp32 and under bf16 autocast, interleaved, the minimum of several rounds, and uses bf16
only when it is at least :data:`MIN_SPEEDUP` times faster. The verdict is cached in a JSON file
keyed by the CPU model and flags, the torch version, the thread count and the model's signature,
so a machine pays the few seconds of measurement once per model shape.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from robust_mmr_pipeline.io_utils import atomic_write_text

logger = logging.getLogger(__name__)

MIN_SPEEDUP = 1.2
CACHE_ENV = "ROBUST_MMR_PRECISION_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "robust_mmr_pipeline" / "cpu_precision.json"


def cpu_identity() -> str:
    """CPU model name + a hash of its feature flags (what decides bf16 speed), torch, threads."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name") and ":" in line:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and ":" in line and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return (
        f"{model} | flags {digest} | torch {torch.__version__} | threads {torch.get_num_threads()}"
    )


def time_step_pair(
    step: Callable[[bool], None], rounds: int = 3, steps: int = 2
) -> dict[str, float]:
    """``step(bf16)`` timed in fp32 and bf16: one warm-up each, then ``rounds`` interleaved
    rounds of ``steps`` steps; the minimum seconds per step of each and their ratio."""
    for bf16 in (False, True):
        step(bf16)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for bf16 in (False, True):
            start = time.perf_counter()
            for _ in range(steps):
                step(bf16)
            best[bf16] = min(best[bf16], (time.perf_counter() - start) / steps)
    return {"fp32_s": best[False], "bf16_s": best[True], "speedup": best[False] / best[True]}


def _cache_path() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def cached_verdict(
    key: str, measure: Callable[[], dict[str, float]], cache: Path | None = None
) -> dict[str, Any]:
    """The verdict for ``key`` on this machine: read from the cache, else measured and stored.
    ``{"speedup", "fp32_s", "bf16_s", "use_bf16", "key"}``."""
    path = cache or _cache_path()
    key = f"{cpu_identity()} | {key}"
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = {}
    stored = stored if isinstance(stored, dict) else {}
    if isinstance(stored.get(key), dict) and "use_bf16" in stored[key]:
        return stored[key]
    measured = measure()
    verdict = {**measured, "key": key, "use_bf16": measured["speedup"] >= MIN_SPEEDUP}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored[key] = verdict
        atomic_write_text(path, json.dumps(stored, indent=2))
    except OSError as exc:  # a read-only home: measure again next time, never fail the run
        logger.warning("Could not cache the mixed-precision verdict in %s: %s", path, exc)
    return verdict


def model_key(model: torch.nn.Module, batch_size: int) -> str:
    """What the speed of a training step depends on besides the machine."""
    shapes = ",".join(f"{tuple(p.shape)}" for p in model.parameters())
    digest = hashlib.sha256(shapes.encode()).hexdigest()[:12]
    return f"{type(model).__name__} {digest} | batch {batch_size}"


def decide_cpu_precision(model: torch.nn.Module, batch: Any, batch_size: int) -> str:
    """``"bf16"`` or ``"no"`` for training ``model`` on the CPU (cached per machine and model).

    The measurement runs forward + backward of ``model`` on ``batch`` without an optimizer step
    and leaves no gradient behind; the caller keeps the RNG streams (engine.rng)."""

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = model(batch, 0.5)
        loss = output.loss if hasattr(output, "loss") else output
        loss.float().backward()
        model.zero_grad(set_to_none=True)

    verdict = cached_verdict(model_key(model, batch_size), lambda: time_step_pair(step))
    choice = "bf16" if verdict["use_bf16"] else "no"
    logger.info(
        "mixed_precision auto: a training step of this model takes %.0f ms in fp32 and %.0f ms "
        "under bf16 autocast on this CPU (%.2fx) -> %s.",
        1000 * verdict["fp32_s"],
        1000 * verdict["bf16_s"],
        verdict["speedup"],
        "bf16" if choice == "bf16" else "fp32",
    )
    return choice
