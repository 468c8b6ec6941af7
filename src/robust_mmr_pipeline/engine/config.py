"""The trainer's typed configuration, validated before a run starts.

``TrainerConfig`` is the one place every training-loop knob lives; the pipeline layer builds it
from ``params:`` with :meth:`TrainerConfig.from_dict` (a typed config: unknown keys and bad values
raise :class:`~robust_mmr_pipeline.typed_config.ParameterError` naming the key).

Batch semantics (read this once): ``batch_size`` is the *global* micro-batch, summed over all
processes, so the same config gives the same samples per step on 1 CPU, 1 GPU or N GPUs. Each
process receives ``batch_size // num_processes`` samples per micro-batch (``batch_size`` must be
divisible by the number of processes); one optimizer step consumes ``grad_accum`` micro-batches,
i.e. ``batch_size * grad_accum`` samples.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from robust_mmr_pipeline.typed_config import ParameterError, PathStr, config, parse

LOGGER = logging.getLogger(__name__)

Schedule = Literal["cosine", "linear", "constant"]
# YAML 1.1 reads a bare `no` as false (tools that rewrite YAML, e.g. `dvc exp run -S`, drop the
# quotes of "no"): for mixed_precision it can only mean "no".
MixedPrecision = Annotated[
    Literal["no", "bf16", "fp16", "auto"], BeforeValidator(lambda v: "no" if v is False else v)
]
# One prefix may be given as a bare string.
Prefixes = Annotated[tuple[str, ...], BeforeValidator(lambda v: (v,) if isinstance(v, str) else v)]

SCHEDULES: tuple[str, ...] = ("cosine", "linear", "constant")
MIXED_PRECISIONS: tuple[str, ...] = ("no", "bf16", "fp16", "auto")


# The one config error type under the trainer's name (callers catch either).
TrainerConfigError = ParameterError


@config
class TrainerConfig:
    """Settings of one training run (pre-training or fine-tuning).

    Length: ``max_steps`` (optimizer steps) wins when set; otherwise ``epochs`` full passes over
    the dataset (incomplete final global batches are dropped, see module docstring).

    Optimisation: AdamW with ``lr``, ``betas``, ``eps``, ``weight_decay`` (never applied to biases,
    norm weights or embeddings). Parameters get ``lr`` or ``lr * head_lr_mult``: through the
    model's ``param_groups(weight_decay, head_lr_mult)`` when it has one, else by name (names
    starting with one of ``backbone_prefixes`` get ``lr``, all others ``lr * head_lr_mult``;
    ``layer_decay`` < 1 is passed to a model's ``param_groups`` for layer-wise lr decay; with
    no prefixes every parameter gets ``lr``). Learning rate: linear warmup over
    ``round(warmup_fraction * max_steps)`` steps, then ``schedule`` decay towards
    ``min_lr_ratio * lr``. ``max_grad_norm`` <= 0 disables clipping.

    Hardware: ``mixed_precision`` bf16/fp16 is honoured on CUDA only; on CPU it is forced to
    "no" with a log line (on CPUs without native bf16, bf16 autocast is ~100x slower). ``auto``
    uses bf16 on a GPU that supports it and, on a CPU, where a measured training step of the
    model is faster under bf16 autocast (engine/precision.py; measured once per machine and
    model shape). ``cpu`` forces CPU even when
    a GPU is visible. ``compile`` wraps the model with ``torch.compile(backend=compile_backend)``.

    Checkpoints go to ``<output_dir>/checkpoints/step-XXXXXXXX`` every ``checkpoint_every`` steps
    (0: only at the end) and at the end; ``keep_last`` step checkpoints are kept (0: keep all).
    ``resume`` continues from ``<output_dir>/checkpoints/last`` when it exists (a fresh start
    otherwise); ``resume_from`` names a checkpoint folder explicitly. Resuming restores weights,
    optimizer, scheduler position, RNG streams and data position; the optimizer settings of the
    current config (lr, head_lr_mult, weight_decay, betas, eps) win over the saved ones. A fresh
    run refuses an ``output_dir`` that already holds checkpoints (``engine.start_run`` trains a
    replacement beside them and publishes it once finished). A resumed
    run must be given the tokenizer saved with its checkpoint. To *initialise* a new run
    (fine-tuning) from pre-trained weights, load them with ``load_model`` instead.

    Logging: metrics every ``log_every`` steps to the logger, ``eval_fn`` every ``eval_every``
    steps (0: only at the end) and, with ``eval_at_start``, once before the first step (a
    fresh run: the starting weights, e.g. a linear-probed head, compete in model selection);
    ``progress_bar`` shows a tqdm bar when stderr is a TTY. ``history_tail`` is how many
    per-step loss records ``trainer_state.json`` keeps.
    """

    max_steps: int | None = None
    epochs: int | None = 1
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    head_lr_mult: float = 1.0
    layer_decay: float = 1.0
    backbone_prefixes: Prefixes = ()
    warmup_fraction: float = 0.1
    schedule: Schedule = "cosine"
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 1.0
    mixed_precision: MixedPrecision = "no"
    cpu: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    seed: int = 0
    shuffle: bool = True
    checkpoint_every: int = 0
    keep_last: int = 3
    log_every: int = 10
    eval_every: int = 0
    eval_at_start: bool = False
    num_workers: int = 0
    output_dir: PathStr = "outputs/train"
    resume: bool = False
    resume_from: str | None = None
    progress_bar: bool = True
    ddp_find_unused_parameters: bool = False
    history_tail: int = 1000

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_dict(cls, data: dict[str, Any], section: str = "trainer") -> TrainerConfig:
        """Build from a plain mapping (e.g. Kedro ``params:``); unknown keys are an error
        naming the key under ``section`` (``pretrain.trainer``: the fix names that file)."""
        fix = "Fix: correct it (see robust_mmr_pipeline/engine/config.py)."
        return parse(cls, data, section, fix=fix if section == "trainer" else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        out["backbone_prefixes"] = list(self.backbone_prefixes)
        return out

    def validate(self) -> None:
        """Raise :class:`TrainerConfigError` naming the first invalid field and how to fix it."""

        def fail(name: str, why: str) -> None:
            raise TrainerConfigError(
                f"TrainerConfig.{name} = {getattr(self, name)!r} is invalid: {why}."
            )

        if self.max_steps is None and self.epochs is None:
            fail("max_steps", "set max_steps (optimizer steps) or epochs (passes over the data)")
        if self.max_steps is not None and (not _is_int(self.max_steps) or self.max_steps < 1):
            fail("max_steps", "must be a positive integer")
        if self.max_steps is None and (not _is_int(self.epochs) or self.epochs < 1):
            fail("epochs", "must be a positive integer")
        for name in ("batch_size", "grad_accum", "log_every"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                fail(name, "must be an integer >= 1")
        for name in ("checkpoint_every", "keep_last", "eval_every", "num_workers", "history_tail"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                fail(name, "must be an integer >= 0")
        if not _is_int(self.seed) or self.seed < 0:
            fail("seed", "must be a non-negative integer")
        if not (_is_number(self.lr) and self.lr > 0 and math.isfinite(self.lr)):
            fail("lr", "must be a finite number > 0")
        if not (_is_number(self.weight_decay) and self.weight_decay >= 0):
            fail("weight_decay", "must be a number >= 0")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            fail("betas", "must be two numbers in [0, 1), e.g. [0.9, 0.98]")
        if not (_is_number(self.eps) and self.eps > 0):
            fail("eps", "must be a number > 0")
        if not (_is_number(self.head_lr_mult) and self.head_lr_mult > 0):
            fail("head_lr_mult", "must be a number > 0 (1.0: no separate head learning rate)")
        if not (_is_number(self.layer_decay) and 0 < self.layer_decay <= 1):
            fail("layer_decay", "must be in (0, 1] (1.0: no layer-wise learning-rate decay)")
        if not (_is_number(self.warmup_fraction) and 0.0 <= self.warmup_fraction < 1.0):
            fail("warmup_fraction", "must be in [0, 1)")
        if self.schedule not in SCHEDULES:
            fail("schedule", f"must be one of {list(SCHEDULES)}")
        if not (_is_number(self.min_lr_ratio) and 0.0 <= self.min_lr_ratio <= 1.0):
            fail("min_lr_ratio", "must be in [0, 1]")
        if not _is_number(self.max_grad_norm) or not math.isfinite(self.max_grad_norm):
            fail("max_grad_norm", "must be a finite number (<= 0 disables clipping)")
        if self.mixed_precision not in MIXED_PRECISIONS:
            fail("mixed_precision", f"must be one of {list(MIXED_PRECISIONS)}")
        if not self.output_dir:
            fail("output_dir", "must name a folder for checkpoints")

    def total_steps(self, num_samples: int) -> int:
        """Optimizer steps of the run for a dataset of ``num_samples`` samples."""
        if self.max_steps is not None:
            return int(self.max_steps)
        batches_per_epoch = num_samples // self.batch_size
        steps = (int(self.epochs or 0) * batches_per_epoch) // self.grad_accum
        if steps < 1:
            raise TrainerConfigError(
                f"{self.epochs} epoch(s) over {num_samples} samples with batch_size="
                f"{self.batch_size} and grad_accum={self.grad_accum} is less than one optimizer "
                "step; lower batch_size/grad_accum or raise epochs."
            )
        return steps

    def warmup_steps(self, total_steps: int) -> int:
        """Number of linear-warmup steps: ``round(warmup_fraction * total_steps)``."""
        return round(self.warmup_fraction * total_steps)

    def effective_mixed_precision(self, cuda_available: bool) -> str:
        """The mixed precision actually used: the requested one on CUDA, "no" on CPU (logged);
        ``auto``: bf16 where this machine runs it natively and measurably faster (measured once
        per machine, engine/precision.py), else "no"."""
        if self.mixed_precision == "no":
            return "no"
        if self.mixed_precision == "auto":
            # train() resolves auto on the CPU by measuring the model (engine/precision.py)
            import torch

            on_gpu = cuda_available and not self.cpu
            return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"
        if cuda_available and not self.cpu:
            return self.mixed_precision
        LOGGER.warning(
            "mixed_precision=%r requested but training runs on CPU: using fp32 ('no') instead "
            "(CPU %s autocast is far slower than fp32 here).",
            self.mixed_precision,
            self.mixed_precision,
        )
        return "no"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
