"""What a training run hands back: its summary, or the error of a non-finite loss."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path


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
