"""The training loop: one engine for pre-training and fine-tuning on Hugging Face Accelerate.

``train(model, dataset, config, collate_fn, ...)`` trains any ``nn.Module`` whose
``forward(batch, progress)`` returns an object with ``.loss`` (scalar tensor) and ``.losses``
(mapping of detached scalars, one per objective); ``progress`` is ``step / max_steps`` in [0, 1).

One optimizer step
------------------
1. ``grad_accum`` micro-batches come from :class:`~robust_mmr_pipeline.engine.data.BatchStream`
   (global batch ``config.batch_size`` split evenly over processes, seeded order per epoch).
2. For each: forward under Accelerate's autocast, ``backward(loss / grad_accum)``; gradient
   all-reduce is skipped (``no_sync``) on all but the last micro-batch.
3. The per-objective losses are averaged over micro-batches and all-reduced (mean) across
   processes, so the logged loss is the loss of the global batch. A non-finite value stops the
   run *before* the optimizer step (:class:`NonFiniteLossError`).
4. Gradient clipping (``accelerator.clip_grad_norm_``), AdamW step, LR-scheduler step.

Reproducibility: the data order depends only on ``config.seed``; the model's random streams
(masking, dropout, perturbations) are seeded with ``seed + process_index`` and checkpointed per
process together with the data position, so a resumed run reproduces the uninterrupted loss
curve. Each checkpoint's ``trainer_state.json`` lists the dataset indices every process read
for the step (``step_samples``): in a multi-process run, disjoint slices of the global batch.
Evaluation runs inside :func:`~robust_mmr_pipeline.engine.rng.preserved_rng_state`, so it
never changes the training streams. The scheduler steps once per optimizer step, also when an
fp16 step is skipped by the grad scaler (the schedule stays tied to the step count). A resumed
run must be given the tokenizer saved with its checkpoint (checked).

Fault injection: with the environment variable ``ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT=<step>``
every process SIGKILLs itself right after the checkpoint of that step is written: the
deterministic "killed mid-way" of the resume tests (no timed kill).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import accelerate
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DistributedDataParallelKwargs,
    broadcast_object_list,
    gather_object,
    send_to_device,
    set_seed,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset

from robust_mmr_pipeline.engine.callbacks import TrainLogger
from robust_mmr_pipeline.engine.checkpoint import (
    CHECKPOINTS_DIRNAME,
    CheckpointContents,
    CheckpointError,
    check_tokenizer_matches,
    clean_stale_temporaries,
    list_checkpoints,
    load_model_weights,
    load_training_contents,
    model_metadata,
    save_checkpoint,
    verify_checkpoint,
)
from robust_mmr_pipeline.engine.config import TrainerConfig, TrainerConfigError
from robust_mmr_pipeline.engine.data import BatchStream, GlobalBatchSampler
from robust_mmr_pipeline.engine.optim import build_optimizer, build_scheduler
from robust_mmr_pipeline.engine.progress import TrainProgress
from robust_mmr_pipeline.engine.rng import (
    RngState,
    capture_rng_state,
    preserved_rng_state,
    restore_rng_state,
)

LOGGER = logging.getLogger(__name__)

EvalFn = Callable[[nn.Module, int, Accelerator], Mapping[str, float]]
ForwardFn = Callable[[nn.Module, Any], Any]
FAULT_KILL_AFTER_CHECKPOINT = "ROBUST_MMR_FAULT_KILL_AFTER_CHECKPOINT"


def _kill_if_asked(step: int) -> None:
    """SIGKILL this process after the checkpoint of ``step`` when the fault-injection variable
    names that step (see the module docstring)."""
    value = os.environ.get(FAULT_KILL_AFTER_CHECKPOINT, "").strip()
    if not value:
        return
    try:
        target = int(value)
    except ValueError as exc:
        raise TrainerConfigError(
            f"{FAULT_KILL_AFTER_CHECKPOINT}={value!r} must be a step number (or unset)."
        ) from exc
    if target == step:
        LOGGER.warning("%s=%d: killing this process (SIGKILL).", FAULT_KILL_AFTER_CHECKPOINT, step)
        logging.shutdown()  # flush the log files: SIGKILL runs no handler
        os.kill(os.getpid(), signal.SIGKILL)


class NonFiniteLossError(RuntimeError):
    """The loss (or one objective) became NaN/inf; the run stopped before updating the model.

    Attributes: ``step`` (the optimizer step that failed, 1-based), ``terms`` (every logged term
    and its value), ``bad_terms`` (names of the non-finite ones), ``checkpoint_dir`` (the last
    good checkpoint, verified intact), ``position`` (epoch, batch) of the step's first batch.
    """

    def __init__(
        self,
        step: int,
        terms: Mapping[str, float],
        checkpoint_dir: Path | None,
        position: tuple[int, int],
    ) -> None:
        self.step = step
        self.terms = dict(terms)
        self.bad_terms = [name for name, value in self.terms.items() if not math.isfinite(value)]
        self.checkpoint_dir = checkpoint_dir
        self.position = position
        shown = ", ".join(f"{name}={self.terms[name]}" for name in self.bad_terms)
        message = (
            f"Non-finite loss at optimizer step {step}: {shown} (all terms: "
            f"{', '.join(f'{k}={v:.6g}' for k, v in self.terms.items())}). The model and optimizer "
            f"were not updated with this step. Its first micro-batch: epoch {position[0]}, batch "
            f"index {position[1]} (0-based). Last good checkpoint: {checkpoint_dir}. Fixes: "
            "lower lr, enable max_grad_norm, check the inputs of this step, or use fp32 "
            "(mixed_precision='no'); then rerun with resume=True."
        )
        super().__init__(message)


@dataclasses.dataclass
class TrainResult:
    """Summary of a run.

    ``losses``: one dict per optimizer step, ``{"step", "loss", <objective>..., "lr"}`` (on a
    resumed run it starts with the history tail stored in the checkpoint). ``samples_per_s`` and
    ``flops_per_s`` (``model.flops_per_sample() * samples_per_s``, None when the model does not
    report FLOPs) are measured over this run's training steps, excluding checkpoint and
    evaluation time. ``peak_memory_mb``: max RSS of the main process on CPU, peak allocated
    CUDA memory on GPU.
    """

    step: int
    losses: list[dict[str, float]]
    samples_per_s: float
    flops_per_s: float | None
    peak_memory_mb: float
    checkpoint_dir: Path | None
    epoch: int = 0
    samples_seen: int = 0
    eval_history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    mixed_precision: str = "no"
    world_size: int = 1
    resumed_from: Path | None = None
    train_time_s: float = 0.0

    def loss_curve(self, term: str = "loss") -> list[float]:
        """Values of one term over the recorded steps."""
        return [record[term] for record in self.losses if term in record]


def make_accelerator(config: TrainerConfig, measured_precision: str | None = None) -> Accelerator:
    """An ``Accelerator`` for ``config`` (mixed precision resolved for the hardware;
    ``measured_precision``: what ``auto`` measured on the CPU, see :func:`train`).

    Accelerate keeps a process-wide state that refuses a second, different mixed precision;
    several runs in one process (Optuna trials, notebooks) may legitimately differ, so the
    state is reset in that case (the process group, if any, is kept).
    """
    cuda = torch.cuda.is_available() and not config.cpu
    mixed_precision = measured_precision or config.effective_mixed_precision(cuda)
    shared = AcceleratorState._shared_state
    if shared and shared.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=mixed_precision,
        # Accelerate sets up multi-process CPU (gloo) only when told it runs on CPU.
        cpu=config.cpu or not torch.cuda.is_available(),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)
        ],
    )


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process in MiB: CUDA peak allocated, else max resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:
        return float("nan")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _scalar(value: Any, device: torch.device) -> torch.Tensor:
    tensor = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    return tensor.to(device=device, dtype=torch.float32).reshape(())


def _ordered_like(template: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` with the keys of ``template`` first, in its order, then any others."""
    ordered = {key: record[key] for key in template if key in record}
    ordered.update({key: value for key, value in record.items() if key not in ordered})
    return ordered


def _model_flops(model: nn.Module) -> float | None:
    provider = getattr(model, "flops_per_sample", None)
    if not callable(provider):
        return None
    try:
        value = float(provider())
    except (TypeError, ValueError, RuntimeError):
        return None
    return value if math.isfinite(value) and value > 0 else None


class _TrainingRun:
    """State and steps of one call to :func:`train` (kept private; use :func:`train`)."""

    def __init__(
        self,
        *,
        model: nn.Module,
        dataset: Dataset,
        config: TrainerConfig,
        collate_fn: Callable[[list[Any]], Any] | None,
        tokenizer: Any,
        logger: TrainLogger | None,
        eval_fn: EvalFn | None,
        clock: Callable[[], float] = time.perf_counter,
        measured_precision: str | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.raw_model = model
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.tokenizer = tokenizer
        self.eval_fn = eval_fn
        self.accelerator = make_accelerator(config, measured_precision)
        acc = self.accelerator
        self.is_main = acc.is_main_process
        self.rank = acc.process_index
        self.world = acc.num_processes
        self.logger = logger if self.is_main else None
        if config.batch_size % self.world:
            raise TrainerConfigError(
                f"TrainerConfig.batch_size = {config.batch_size} is the global micro-batch and "
                f"must be divisible by the number of processes ({self.world})."
            )
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        if self.num_samples < config.batch_size:
            raise TrainerConfigError(
                f"The dataset has {self.num_samples} samples, fewer than one global batch "
                f"(batch_size={config.batch_size}); lower batch_size."
            )
        self.max_steps = config.total_steps(self.num_samples)
        self.root = Path(config.output_dir) / CHECKPOINTS_DIRNAME
        self.step = 0
        self.samples_seen = 0
        self.history: list[dict[str, float]] = []
        self.eval_history: list[dict[str, float]] = []
        self.last_checkpoint: Path | None = None
        self.last_checkpoint_step: int | None = None
        self.last_eval_step: int | None = None
        self.train_time = 0.0
        self.run_samples = 0
        # dataset indices this process read for the last step taken (or attempted)
        self.step_samples: list[int] = []

    # ------------------------------------------------------------------ setup
    def _resume_dir(self) -> Path | None:
        config = self.config
        if config.resume_from:
            return verify_checkpoint(config.resume_from)
        existing = list_checkpoints(self.root)
        if config.resume:
            if existing:
                return verify_checkpoint(self.root)
            LOGGER.info("resume=True but no checkpoint under %s: starting fresh.", self.root)
            return None
        if existing:
            raise TrainerConfigError(
                f"{self.root} already holds checkpoints ({existing[-1][1].name} ...) from an "
                "earlier run. Set resume: true to continue it, or use a new output_dir (or delete "
                "the folder) to start over; engine.start_run gives a fresh run that replaces it "
                "once finished."
            )
        return None

    def setup(self) -> None:
        """Build optimizer/scheduler, prepare for the devices, restore a checkpoint if asked."""
        config, acc = self.config, self.accelerator
        if self.is_main:
            clean_stale_temporaries(self.root)
        acc.wait_for_everyone()
        self.resumed_from = self._resume_dir()
        contents: CheckpointContents | None = None
        if self.resumed_from is not None:
            check_tokenizer_matches(self.tokenizer, self.resumed_from)
            load_model_weights(self.raw_model, self.resumed_from)
            contents = load_training_contents(self.resumed_from, rank=self.rank)
        self.raw_model.train()
        optimizer = build_optimizer(self.raw_model, config)
        self.prepared_model, self.optimizer = acc.prepare(self.raw_model, optimizer)
        self.train_model: Any = self.prepared_model
        if config.compile:
            self.train_model = torch.compile(self.prepared_model, backend=config.compile_backend)
        self.scheduler = build_scheduler(self.optimizer.optimizer, config, self.max_steps)

        sampler = GlobalBatchSampler(
            self.num_samples,
            config.batch_size,
            seed=config.seed,
            shuffle=config.shuffle,
            rank=self.rank,
            world_size=self.world,
        )
        self.batches_per_epoch = sampler.batches_per_epoch
        self.pin_memory = acc.device.type == "cuda"
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            collate_fn=self.collate_fn,
            num_workers=config.num_workers,
            persistent_workers=config.num_workers > 0,
            pin_memory=self.pin_memory,
            # A private generator: creating iterators never consumes the global torch RNG.
            generator=torch.Generator().manual_seed(config.seed),
        )
        epoch, batch = 0, 0
        if contents is not None:
            state = contents.trainer_state
            self._check_compatible(state)
            self.step = int(state["step"])
            self.samples_seen = int(state.get("samples_seen", 0))
            epoch, batch = int(state.get("epoch", 0)), int(state.get("batch_in_epoch", 0))
            self.history = [dict(r) for r in state.get("history", [])]
            self.eval_history = [dict(r) for r in state.get("eval_history", [])]
            fresh = [
                {k: v for k, v in group.items() if k != "params"}
                for group in self.optimizer.param_groups
            ]
            if contents.optimizer_state is not None:
                self.optimizer.load_state_dict(contents.optimizer_state)
            if contents.scheduler_state is not None:
                self.scheduler.load_state_dict(contents.scheduler_state)
            self._apply_config_hyperparameters(fresh, state)
            if contents.scaler_state is not None and acc.scaler is not None:
                acc.scaler.load_state_dict(contents.scaler_state)
            self.last_checkpoint = self.resumed_from
            self.last_checkpoint_step = self.step
            LOGGER.info("Resuming from %s at step %d.", self.resumed_from, self.step)
        self.stream = BatchStream(loader, sampler, epoch=epoch, batch=batch)
        if self.world > 1:
            LOGGER.info("Process %d of %d reads %s.", self.rank, self.world, sampler.describe())
        # Seed last, so nothing above shifts the training random streams.
        if contents is not None and contents.rng_states:
            restore_rng_state(contents.rng_states[0])
        else:
            if contents is not None:
                LOGGER.warning(
                    "Checkpoint %s has no RNG state for process %d: reseeding; the resumed "
                    "curve will differ from an uninterrupted run.",
                    self.resumed_from,
                    self.rank,
                )
            set_seed(config.seed + self.rank + (self.step if contents is not None else 0))
        self.flops_per_sample = _model_flops(self.raw_model)
        if acc.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(acc.device)

    def _apply_config_hyperparameters(
        self, fresh: list[dict[str, Any]], state: Mapping[str, Any]
    ) -> None:
        """Let the current config's lr / weight decay / betas / eps win over the checkpoint's.

        Unchanged settings give bit-identical values (exact resume); changed ones (e.g. a lower
        lr after a non-finite loss) take effect from the resumed step on.
        """
        groups = self.optimizer.param_groups
        for group, new in zip(groups, fresh, strict=True):
            for key in ("initial_lr", "lr_mult", "weight_decay", "betas", "eps"):
                if key in new:
                    group[key] = new[key]
        scheduler = self.scheduler
        scheduler.base_lrs = [new["initial_lr"] for new in fresh]
        for group, base, factor in zip(
            groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True
        ):
            group["lr"] = base * factor(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in groups]
        saved = state.get("config", {})
        changed = [
            key
            for key in ("lr", "head_lr_mult", "weight_decay", "betas", "eps", "schedule")
            if key in saved and saved[key] != self.config.to_dict()[key]
        ]
        if changed:
            LOGGER.info(
                "Resuming with changed optimizer settings %s: using the new values.", changed
            )

    def _check_compatible(self, state: Mapping[str, Any]) -> None:
        saved = state.get("config", {})
        for key in ("batch_size", "grad_accum", "seed", "shuffle"):
            if key in saved and saved[key] != getattr(self.config, key):
                LOGGER.warning(
                    "Resuming with %s=%r but the checkpoint used %r: the run continues, but "
                    "will not reproduce the uninterrupted one.",
                    key,
                    getattr(self.config, key),
                    saved[key],
                )
        if int(state.get("world_size", self.world)) != self.world:
            LOGGER.warning(
                "Resuming on %d process(es); the checkpoint was written by %s: data order is "
                "unchanged, model random streams are not.",
                self.world,
                state.get("world_size"),
            )

    # ------------------------------------------------------------------ checkpoints
    def _trainer_state(
        self, reason: str, position: tuple[int, int], samples: list[list[int]]
    ) -> dict[str, Any]:
        tail = self.config.history_tail
        return {
            "step": self.step,
            "epoch": position[0],
            "batch_in_epoch": position[1],
            "batches_per_epoch": self.batches_per_epoch,
            "samples_seen": self.samples_seen,
            "max_steps": self.max_steps,
            "world_size": self.world,
            "mixed_precision": self.accelerator.mixed_precision,
            "reason": reason,
            "history": self.history[-tail:] if tail else [],
            "eval_history": self.eval_history[-tail:] if tail else [],
            "config": self.config.to_dict(),
            # which samples made the step (one list per process): to re-run a step, or to see
            # how a multi-process run split its global batches
            "step_samples": {
                "step": self.step + (1 if reason == "last_good_before_non_finite" else 0),
                "by_process": samples,
            },
            "versions": {"torch": torch.__version__, "accelerate": accelerate.__version__},
            "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def save(
        self,
        reason: str,
        final: bool = False,
        rng: RngState | None = None,
        position: tuple[int, int] | None = None,
    ) -> Path:
        """Write a checkpoint of the current step on the main process (collective call)."""
        acc = self.accelerator
        local_rng = rng if rng is not None else capture_rng_state()
        local = (local_rng, list(self.step_samples))
        gathered = gather_object([local]) if self.world > 1 else [local]
        rng_states = [state for state, _samples in gathered]
        position = position if position is not None else self.stream.position
        error: BaseException | None = None
        path: Path | None = None
        if self.is_main:
            contents = CheckpointContents(
                trainer_state=self._trainer_state(
                    reason, position, [samples for _state, samples in gathered]
                ),
                optimizer_state=self.optimizer.state_dict(),
                scheduler_state=self.scheduler.state_dict(),
                scaler_state=acc.scaler.state_dict() if acc.scaler is not None else None,
                rng_states=list(rng_states),
            )
            try:
                path = save_checkpoint(
                    self.root,
                    self.step,
                    self.raw_model,
                    contents,
                    tokenizer=self.tokenizer,
                    keep_last=self.config.keep_last,
                )
            except BaseException as exc:
                error = exc
        if self.world > 1:
            payload = [repr(error) if error is not None else None, str(path) if path else None]
            broadcast_object_list(payload, from_process=0)
            if error is None and payload[0] is not None:
                raise CheckpointError(
                    f"Saving the step-{self.step} checkpoint failed: {payload[0]}"
                )
            path = Path(payload[1]) if payload[1] else None
        if error is not None:
            raise error
        assert path is not None
        self.last_checkpoint, self.last_checkpoint_step = path, self.step
        if self.logger is not None:
            self.logger.log_checkpoint(path, self.step, final)
        _kill_if_asked(self.step)
        return path

    # ------------------------------------------------------------------ evaluation
    def maybe_eval(self, final: bool) -> None:
        """Run ``eval_fn`` when due (every ``eval_every`` steps, and at the end)."""
        every = self.config.eval_every
        due = final or (every > 0 and self.step % every == 0)
        if self.eval_fn is None or not due or self.last_eval_step == self.step:
            return
        self.raw_model.eval()
        try:
            with preserved_rng_state(), torch.no_grad():
                metrics = self.eval_fn(self.raw_model, self.step, self.accelerator)
        finally:
            self.raw_model.train()
        record = {"step": float(self.step), **{k: float(v) for k, v in dict(metrics).items()}}
        self.eval_history.append(record)
        self.last_eval_step = self.step
        if self.logger is not None:
            self.logger.log_metrics(
                {f"eval/{k}": v for k, v in record.items() if k != "step"}, self.step
            )

    # ------------------------------------------------------------------ one step
    def _forward_backward(self, progress: float) -> tuple[list[str], list[float]]:
        acc, ga = self.accelerator, self.config.grad_accum
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        self.step_samples = []
        for micro in range(ga):
            batch = send_to_device(self.stream.next(), acc.device, non_blocking=self.pin_memory)
            self.step_samples += self.stream.last_indices
            sync = acc.no_sync(self.prepared_model) if micro < ga - 1 else nullcontext()
            with sync:
                try:
                    output = self.train_model(batch, progress)
                except RuntimeError as exc:
                    if "find_unused_parameters" in str(exc):
                        raise RuntimeError(
                            "DDP found parameters without gradients: set TrainerConfig."
                            "ddp_find_unused_parameters: true (or make every parameter take part "
                            f"in the loss). DDP said: {exc}"
                        ) from exc
                    raise
                loss = getattr(output, "loss", None)
                if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                    raise TypeError(
                        "model.forward(batch, progress) must return an object whose .loss is a "
                        f"scalar tensor; got {type(output).__name__}.loss = {type(loss).__name__}"
                    )
                acc.backward(loss.reshape(()) / ga)
            terms = {"loss": loss}
            terms.update({k: v for k, v in dict(getattr(output, "losses", {}) or {}).items()})
            # a model's diagnostics (same keys every step) are recorded beside its losses
            terms.update(dict(getattr(output, "diagnostics", {}) or {}))
            for name, value in terms.items():
                scalar = _scalar(value, acc.device)
                sums[name] = sums[name] + scalar if name in sums else scalar
                counts[name] = counts.get(name, 0) + 1
        names = list(sums)
        vector = torch.stack([sums[name] / counts[name] for name in names])
        if self.world > 1:
            vector = acc.reduce(vector, reduction="mean")
        return names, [float(v) for v in vector.tolist()]

    def _fail_non_finite(
        self,
        names: list[str],
        values: list[float],
        rng: RngState,
        position: tuple[int, int],
    ) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.last_checkpoint_step is None or self.last_checkpoint_step < self.step:
            # The weights, optimizer and scheduler still hold the last good step: save them with
            # the RNG and data position taken before this step began.
            self.save("last_good_before_non_finite", rng=rng, position=position)
        if self.is_main and self.last_checkpoint is not None:
            verify_checkpoint(self.last_checkpoint)
        raise NonFiniteLossError(
            step=self.step + 1,
            terms=dict(zip(names, values, strict=True)),
            checkpoint_dir=self.last_checkpoint,
            position=position,
        )

    def run(self) -> TrainResult:
        """The loop; returns the summary."""
        config, acc = self.config, self.accelerator
        if self.logger is not None:
            self.logger.log_params(self._params())
        bar = TrainProgress(
            total=self.max_steps,
            initial=self.step,
            enabled=config.progress_bar and self.is_main,
        )
        samples_per_step = config.batch_size * config.grad_accum
        window_time, window_samples = 0.0, 0
        try:
            if config.eval_at_start and self.step == 0:
                self.maybe_eval(final=True)  # the starting weights compete in model selection
            while self.step < self.max_steps:
                start = self.clock()
                rng_before = capture_rng_state()
                position_before = self.stream.position
                progress = self.step / self.max_steps
                names, values = self._forward_backward(progress)
                if not all(math.isfinite(v) for v in values):
                    self._fail_non_finite(names, values, rng_before, position_before)
                grad_norm = None
                if config.max_grad_norm > 0:
                    grad_norm = acc.clip_grad_norm_(
                        self.prepared_model.parameters(), config.max_grad_norm
                    )
                # base learning rate applied in this step (first group, without its multiplier)
                first_group = self.optimizer.param_groups[0]
                lr = float(first_group["lr"]) / float(first_group.get("lr_mult", 1.0) or 1.0)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.samples_seen += samples_per_step
                record = {"step": float(self.step), **dict(zip(names, values, strict=True))}
                record["lr"] = lr
                if self.history and list(self.history[-1]) != list(record):
                    # records read back from a checkpoint have sorted keys: give them this
                    # run's order, so a resumed run's loss table equals an uninterrupted one's
                    self.history = [_ordered_like(record, r) for r in self.history]
                self.history.append(record)
                elapsed = self.clock() - start
                self.train_time += elapsed
                self.run_samples += samples_per_step
                window_time += elapsed
                window_samples += samples_per_step
                bar.update(self.step, record["loss"], self.run_samples / max(self.train_time, 1e-9))
                if self.logger is not None and (
                    self.step % config.log_every == 0 or self.step == self.max_steps
                ):
                    self.logger.log_metrics(
                        self._step_metrics(record, grad_norm, window_samples / window_time),
                        self.step,
                    )
                    window_time, window_samples = 0.0, 0
                final = self.step == self.max_steps
                self.maybe_eval(final=final)
                if (
                    config.checkpoint_every > 0 and self.step % config.checkpoint_every == 0
                ) or final:
                    self.save("final" if final else "periodic", final=final)
            if self.eval_fn is not None and self.last_eval_step != self.step:
                self.maybe_eval(final=True)
            if self.last_checkpoint_step != self.step:
                self.save("final", final=True)
        finally:
            bar.close()
        acc.wait_for_everyone()
        samples_per_s = self.run_samples / self.train_time if self.train_time > 0 else 0.0
        flops = self.flops_per_sample * samples_per_s if self.flops_per_sample else None
        return TrainResult(
            step=self.step,
            losses=self.history,
            samples_per_s=samples_per_s,
            flops_per_s=flops,
            peak_memory_mb=peak_memory_mb(acc.device),
            checkpoint_dir=self.last_checkpoint,
            epoch=self.stream.epoch,
            samples_seen=self.samples_seen,
            eval_history=self.eval_history,
            mixed_precision=str(acc.mixed_precision),
            world_size=self.world,
            resumed_from=self.resumed_from,
            train_time_s=self.train_time,
        )

    def _step_metrics(
        self, record: Mapping[str, float], grad_norm: Any, samples_per_s: float
    ) -> dict[str, float]:
        metrics = {f"train/{k}": v for k, v in record.items() if k != "step"}
        if grad_norm is not None:
            metrics["train/grad_norm"] = float(grad_norm)
        metrics["throughput/samples_per_s"] = samples_per_s
        if self.flops_per_sample:
            metrics["throughput/flops_per_s"] = self.flops_per_sample * samples_per_s
        metrics["train/epoch"] = float(self.stream.epoch)
        return metrics

    def _params(self) -> dict[str, Any]:
        meta = model_metadata(self.raw_model, warn=False)
        return {
            "trainer": self.config.to_dict(),
            "model_class": meta["model_class"],
            "model": meta["config"],
            "world_size": self.world,
            "mixed_precision": str(self.accelerator.mixed_precision),
            "num_parameters": sum(p.numel() for p in self.raw_model.parameters()),
            "max_steps": self.max_steps,
            "resumed_from": str(self.resumed_from) if self.resumed_from else "",
        }


def train(
    model: nn.Module,
    dataset: Dataset,
    config: TrainerConfig | Mapping[str, Any],
    collate_fn: Callable[[list[Any]], Any] | None = None,
    *,
    tokenizer: Any = None,
    logger: TrainLogger | None = None,
    eval_fn: EvalFn | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> TrainResult:
    """Train ``model`` on ``dataset``; checkpoints under ``<config.output_dir>/checkpoints``.

    ``collate_fn`` turns a list of dataset items into the batch dict the model reads (e.g.
    :class:`~robust_mmr_pipeline.engine.data.PairCollator`). ``tokenizer`` is saved into each
    checkpoint's ``tokenizer/`` folder. ``logger`` (main process only) receives params, metrics
    and checkpoints. ``eval_fn(model, step, accelerator) -> {name: value}`` runs on every process
    (so it may use :func:`predict` / :func:`evaluate`) in eval mode under ``torch.no_grad``,
    every ``config.eval_every`` steps and at the end. ``clock`` (seconds, monotonic) times the
    training steps for the throughput figures.

    A fresh run refuses an ``output_dir`` that holds checkpoints; to replace an earlier run
    without ever deleting it early, train into the ``write_dir`` of
    :func:`~robust_mmr_pipeline.engine.checkpoint.start_run` and publish it once finished.

    Raises :class:`NonFiniteLossError` when a loss term becomes NaN/inf (after making sure an
    intact checkpoint of the last good step exists), :class:`TrainerConfigError` for invalid
    settings, :class:`CheckpointError` when a resumed run is given another tokenizer than its
    checkpoint's. The model object is trained in place (moved to the training device).
    """
    if not isinstance(config, TrainerConfig):
        config = TrainerConfig.from_dict(dict(config))
    config.validate()
    measured = None
    if config.mixed_precision == "auto" and (config.cpu or not torch.cuda.is_available()):
        measured = _measured_cpu_precision(model, dataset, config, collate_fn)
    run = _TrainingRun(
        model=model,
        dataset=dataset,
        config=config,
        collate_fn=collate_fn,
        tokenizer=tokenizer,
        logger=logger,
        eval_fn=eval_fn,
        clock=clock,
        measured_precision=measured,
    )
    run.setup()
    return run.run()


def _measured_cpu_precision(
    model: nn.Module,
    dataset: Dataset,
    config: TrainerConfig,
    collate_fn: Callable[[list[Any]], Any] | None,
) -> str:
    """``auto`` on the CPU: bf16 or fp32, whichever trains this model faster here (measured on
    the first batch; the training RNG streams are left as they were)."""
    from torch.utils.data import default_collate

    from robust_mmr_pipeline.engine.precision import decide_cpu_precision

    size = min(config.batch_size, len(dataset))  # type: ignore[arg-type]
    batch = (collate_fn or default_collate)([dataset[i] for i in range(size)])
    was_training = model.training
    model.train()
    try:
        with preserved_rng_state():
            return decide_cpu_precision(model, batch, config.batch_size)
    finally:
        model.train(was_training)


# --------------------------------------------------------------------------- inference helpers


def _tensor_fields(output: Any) -> dict[str, torch.Tensor]:
    if isinstance(output, torch.Tensor):
        items: Any = [("output", output)]
    elif isinstance(output, Mapping):
        items = output.items()
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        items = [(f.name, getattr(output, f.name)) for f in dataclasses.fields(output)]
    elif isinstance(output, tuple) and hasattr(output, "_asdict"):
        items = output._asdict().items()
    else:
        items = vars(output).items() if hasattr(output, "__dict__") else []
    return {k: v for k, v in items if isinstance(v, torch.Tensor) and v.ndim >= 1}


def _batch_size(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.ndim >= 1:
                return int(value.shape[0])
    if isinstance(batch, list | tuple):
        for value in batch:
            if isinstance(value, torch.Tensor) and value.ndim >= 1:
                return int(value.shape[0])
    raise ValueError("Cannot infer the batch size: the batch holds no tensor with a batch dim.")


def _run_inference(
    model: nn.Module,
    dataloader: DataLoader,
    *,
    accelerator: Accelerator | None,
    forward_fn: ForwardFn | None,
    keys: tuple[str, ...] | None,
    collect: bool,
) -> tuple[dict[str, torch.Tensor], dict[str, float], int]:
    accelerator = accelerator if accelerator is not None else Accelerator()
    net = accelerator.unwrap_model(model)
    net.to(accelerator.device)
    loader = accelerator.prepare_data_loader(dataloader)
    was_training = net.training
    net.eval()
    gathered: dict[str, list[torch.Tensor]] = {}
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=accelerator.device)
    try:
        with torch.no_grad():
            for batch in loader:
                output = forward_fn(net, batch) if forward_fn is not None else net(batch)
                size = _batch_size(batch)
                count += size
                loss = getattr(output, "loss", None)
                terms = {"loss": loss} if isinstance(loss, torch.Tensor) else {}
                terms.update(dict(getattr(output, "losses", {}) or {}))
                for name, value in terms.items():
                    weighted = _scalar(value, accelerator.device) * size
                    sums[name] = sums[name] + weighted if name in sums else weighted
                if collect:
                    tensors = _tensor_fields(output)
                    if keys is not None:
                        tensors = {k: v for k, v in tensors.items() if k in keys}
                    tensors = {k: v.contiguous() for k, v in tensors.items()}
                    for name, value in accelerator.gather_for_metrics(tensors).items():
                        gathered.setdefault(name, []).append(value.detach().cpu())
    finally:
        net.train(was_training)
    names = sorted(sums)
    if names:
        vector = torch.stack([sums[n] for n in names] + [count])
        if accelerator.num_processes > 1:
            vector = accelerator.reduce(vector, reduction="sum")
        total = float(vector[-1])
        means = {n: float(vector[i]) / max(total, 1.0) for i, n in enumerate(names)}
    else:
        total_tensor = (
            accelerator.reduce(count, reduction="sum") if accelerator.num_processes > 1 else count
        )
        total, means = float(total_tensor), {}
    outputs = {name: torch.cat(parts) for name, parts in gathered.items()}
    return outputs, means, int(total)


def predict(
    model: nn.Module,
    dataloader: DataLoader,
    *,
    accelerator: Accelerator | None = None,
    forward_fn: ForwardFn | None = None,
    keys: tuple[str, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``model`` in eval mode over ``dataloader``; outputs of all processes, in order.

    ``forward_fn(model, batch)`` (default ``model(batch)``) returns a tensor, a mapping, a
    dataclass or an object; every tensor field with a batch dimension is collected (``keys``
    restricts them), gathered across processes with ``accelerator.gather_for_metrics`` (padding
    duplicates of the last batch are dropped) and concatenated on CPU. Tensors must have the
    same trailing shape on every process. The loader is sharded by Accelerate; the model's
    train/eval mode is restored afterwards.
    """
    outputs, _means, _count = _run_inference(
        model, dataloader, accelerator=accelerator, forward_fn=forward_fn, keys=keys, collect=True
    )
    return outputs


def evaluate(
    model: nn.Module,
    dataloader: DataLoader,
    *,
    accelerator: Accelerator | None = None,
    forward_fn: ForwardFn | None = None,
    metric_fn: Callable[[dict[str, torch.Tensor]], Mapping[str, float]] | None = None,
    keys: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Mean ``.loss`` / ``.losses`` terms over ``dataloader`` plus ``metric_fn(predictions)``.

    Loss means are weighted by batch size and summed across processes (in multi-process runs
    the padding duplicates Accelerate adds to the last batch count too); ``metric_fn`` gets
    the de-duplicated predictions of :func:`predict`. Adds ``num_samples``.
    """
    outputs, means, count = _run_inference(
        model,
        dataloader,
        accelerator=accelerator,
        forward_fn=forward_fn,
        keys=keys,
        collect=metric_fn is not None,
    )
    result = dict(means)
    result["num_samples"] = float(count)
    if metric_fn is not None:
        result.update({k: float(v) for k, v in dict(metric_fn(outputs)).items()})
    return result
