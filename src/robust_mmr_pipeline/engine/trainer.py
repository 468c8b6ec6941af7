"""The training loop: one engine for pre-training and fine-tuning on Hugging Face Accelerate.

``train(model, dataset, config, collate_fn, ...)`` trains any ``nn.Module`` whose
``forward(batch, progress)`` returns an object with ``.loss`` (scalar tensor) and ``.losses``
(mapping of detached scalars, one per objective); ``progress`` is ``step / max_steps`` in [0, 1).

One optimizer step
------------------
1. ``grad_accum`` micro-batches come from :class:`~robust_mmr_pipeline.engine.sharding.BatchStream`
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

Beside it: :mod:`.accelerator` (device setup), :mod:`.resume` (resume / refuse policy),
:mod:`.step` (one step's forward / backward), :mod:`.run_records` (trainer_state.json, logged
params and metrics), :mod:`.run_result` (what a run returns), :mod:`.inference`
(:func:`predict`, :func:`evaluate`), :mod:`.callbacks` (loggers, and the checkpoint callbacks
this loop calls after each checkpoint: those the environment asks for, e.g. the resume tests'
deterministic kill of :mod:`.fault_injection`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    broadcast_object_list,
    gather_object,
    set_seed,
)
from torch import nn
from torch.utils.data import DataLoader, Dataset

from robust_mmr_pipeline.engine.accelerator import (
    make_accelerator,
    measured_cpu_precision,
    peak_memory_mb,
)
from robust_mmr_pipeline.engine.callbacks import (
    CheckpointCallback,
    TrainLogger,
    environment_callbacks,
)
from robust_mmr_pipeline.engine.checkpoint import (
    CHECKPOINTS_DIRNAME,
    CheckpointContents,
    CheckpointError,
    check_tokenizer_matches,
    clean_stale_temporaries,
    load_model_weights,
    load_training_contents,
    save_checkpoint,
    verify_checkpoint,
)
from robust_mmr_pipeline.engine.config import TrainerConfig, TrainerConfigError
from robust_mmr_pipeline.engine.optim import build_optimizer, build_scheduler
from robust_mmr_pipeline.engine.progress import TrainProgress
from robust_mmr_pipeline.engine.resume import (
    apply_config_hyperparameters,
    check_compatible,
    resume_dir,
)
from robust_mmr_pipeline.engine.rng import (
    RngState,
    capture_rng_state,
    preserved_rng_state,
    restore_rng_state,
)
from robust_mmr_pipeline.engine.run_records import (
    model_flops,
    ordered_like,
    run_params,
    step_metrics,
    trainer_state,
)
from robust_mmr_pipeline.engine.run_result import NonFiniteLossError, TrainResult
from robust_mmr_pipeline.engine.sharding import BatchStream, GlobalBatchSampler
from robust_mmr_pipeline.engine.step import forward_backward
from robust_mmr_pipeline.seeding import process_seed

LOGGER = logging.getLogger(__name__)

EvalFn = Callable[[nn.Module, int, Accelerator], Mapping[str, float]]


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
        callbacks: Sequence[CheckpointCallback] = (),
    ) -> None:
        self.config = config
        self.callbacks = list(callbacks)
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
    def setup(self) -> None:
        """Build optimizer/scheduler, prepare for the devices, restore a checkpoint if asked."""
        config, acc = self.config, self.accelerator
        if self.is_main:
            clean_stale_temporaries(self.root)
        acc.wait_for_everyone()
        self.resumed_from = resume_dir(config, self.root)
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
            check_compatible(self.config, state, self.world)
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
            apply_config_hyperparameters(self.config, self.optimizer, self.scheduler, fresh, state)
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
            at_step = self.step if contents is not None else 0
            set_seed(process_seed(config.seed, self.rank, at_step))
        self.flops_per_sample = model_flops(self.raw_model)
        if acc.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(acc.device)

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
                trainer_state=trainer_state(
                    self, reason, position, [samples for _state, samples in gathered]
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
        for callback in self.callbacks:
            callback.after_checkpoint(self.step)
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
            self.logger.log_params(run_params(self))
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
                names, values, self.step_samples = forward_backward(
                    acc,
                    self.train_model,
                    self.prepared_model,
                    self.stream,
                    config.grad_accum,
                    progress,
                    self.pin_memory,
                )
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
                    self.history = [ordered_like(record, r) for r in self.history]
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
                        step_metrics(self, record, grad_norm, window_samples / window_time),
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
    :class:`~robust_mmr_pipeline.engine.pairs.PairCollator`). ``tokenizer`` is saved into each
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
        measured = measured_cpu_precision(model, dataset, config, collate_fn)
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
        callbacks=environment_callbacks(),
    )
    run.setup()
    return run.run()
