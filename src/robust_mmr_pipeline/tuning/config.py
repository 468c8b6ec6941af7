"""Typed parameters of the Optuna search (``params:tuning``); plain dataclasses, no Kedro.

Storage URL forms (``storage``):

* ``sqlite:///data/06_models/optuna.db`` (default; what ``make optuna-dashboard`` opens),
* any SQLAlchemy RDB URL (``postgresql://user@host/db``: psycopg 3 is in the lock, README
  "Scale-out"; ``mysql+pymysql://...`` with its driver installed),
* ``journal:<path>`` — an append-only journal file (``optuna.storages.JournalStorage`` with
  ``JournalFileBackend``): many worker processes on one machine or a shared filesystem, no
  database server and no SQLite write locks.
"""

from __future__ import annotations

from dataclasses import field
from typing import Literal

from robust_mmr_pipeline.typed_config import config

Direction = Literal["maximize", "minimize"]
JOURNAL_PREFIX = "journal:"


@config
class FloatRange:
    """A float search dimension ``[low, high]`` (``log``: sampled on a log scale)."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"range low={self.low} must be <= high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, got {self.low}")


@config
class IntRange:
    """An integer search dimension ``[low, high]``."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"range low={self.low} must be <= high={self.high}")


@config
class SearchSpace:
    """Bounds of every tuned Robust-MMR knob (``model.objectives`` / ``model.robust``): λ_dc,
    λ_mr, α (``degraded_weight``), the view probabilities, severities and the mask ratio.

    ``view_weight`` bounds the three raw weights (image-only, text-only, both) that are
    normalised into ``robust.view_probs``. The severity range is drawn as ``severity_min`` in its
    bounds, then ``severity_max`` in ``[max(severity_min, low), high]`` (so min <= max always).
    """

    domain_consistency_weight: FloatRange = field(
        default_factory=lambda: FloatRange(0.05, 2.0, log=True)
    )
    modality_resilience_weight: FloatRange = field(
        default_factory=lambda: FloatRange(0.01, 1.0, log=True)
    )
    view_weight: FloatRange = field(default_factory=lambda: FloatRange(0.05, 1.0))
    severity_min: IntRange = field(default_factory=lambda: IntRange(1, 3))
    severity_max: IntRange = field(default_factory=lambda: IntRange(3, 5))
    perturbed_image_mask_ratio: FloatRange = field(default_factory=lambda: FloatRange(0.75, 0.9))
    degraded_weight: FloatRange = field(default_factory=lambda: FloatRange(0.1, 1.0, log=True))

    def __post_init__(self) -> None:
        if not (self.severity_min.low >= 1 and self.severity_max.high <= 5):
            raise ValueError("severities must lie in 1..5")
        if self.severity_min.low > self.severity_max.high:
            raise ValueError("severity_min.low must be <= severity_max.high")
        bounds = self.perturbed_image_mask_ratio
        if not (bounds.low >= 0.0 and bounds.high < 1.0):
            raise ValueError(f"perturbed_image_mask_ratio bounds must lie in [0, 1), got {bounds}")
        if self.degraded_weight.low < 0:
            raise ValueError("degraded_weight.low must be >= 0")
        if self.view_weight.low < 0:
            raise ValueError("view_weight.low must be >= 0")


@config
class SamplerParams:
    """TPE sampler; its seed is the study seed."""

    kind: Literal["tpe"] = "tpe"
    n_startup_trials: int = 5
    multivariate: bool = True


@config
class PrunerParams:
    """``median`` (MedianPruner) or ``hyperband`` (HyperbandPruner) over the eval steps."""

    kind: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = 2
    n_warmup_steps: int = 0
    min_resource: int = 1
    reduction_factor: int = 3


@config
class PerturbedObjective:
    """Second objective: validation accuracy under one on-the-fly image corruption."""

    enabled: bool = False
    image: str = "gaussian_noise"
    severity: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.severity <= 5:
            raise ValueError(f"perturbed.severity must be in 1..5, got {self.severity}")


@config
class TuningParams:
    """One worker's share of a (possibly shared) Optuna study over the robustness weights.

    * ``storage`` / ``study_name``: where the study lives; every ``kedro run --pipelines tuning``
      pointing at the same pair joins the same study (``load_if_exists``).
    * ``n_trials``: trials THIS process runs at most; ``max_total_trials``: the budget of the
      whole study (finished + running trials of every worker), ``null`` for none.
    * ``heartbeat_interval_s`` / ``grace_period_s``: RDB storages mark the RUNNING trials of a
      dead worker FAIL through Optuna's heartbeat; ``retry_failed_trials`` re-queues them.
      ``stale_trial_timeout_s``: RUNNING trials older than this are marked FAIL at start (the
      journal storage has no heartbeat; keep it above the longest trial).
    * ``validation_domain``: the TRAINING domain held out as the validation domain (``null``:
      the training domain with the most VQA rows); the protocol's test split is never read.
    * ``pretrain_trainer`` / ``finetune_trainer``: TrainerConfig overrides of the short runs
      (over ``pretrain.trainer``); ``eval_every`` steps of fine-tuning between pruning reports.
    """

    study_name: str = "robust_mmr_weights"
    storage: str = "sqlite:///data/06_models/optuna.db"
    seed: int = 0
    n_trials: int = 20
    max_total_trials: int | None = 40
    timeout_s: float | None = None
    sampler: SamplerParams = field(default_factory=SamplerParams)
    pruner: PrunerParams = field(default_factory=PrunerParams)
    heartbeat_interval_s: int = 60
    grace_period_s: int = 180
    retry_failed_trials: int = 0
    stale_trial_timeout_s: float = 86400.0
    sqlite_timeout_s: float = 60.0
    task: Literal["vqa"] = "vqa"
    protocol: str = "in_domain"
    validation_domain: str | None = None
    perturbed: PerturbedObjective = field(default_factory=PerturbedObjective)
    search_space: SearchSpace = field(default_factory=SearchSpace)
    pretrain_trainer: dict[str, object] = field(default_factory=lambda: {"max_steps": 100})
    finetune_trainer: dict[str, object] = field(
        default_factory=lambda: {"max_steps": 100, "lr": 1.0e-3, "batch_size": 32}
    )
    eval_every: int = 25
    eval_batch_size: int = 64
    work_dir: str = "data/06_models/tuning"
    keep_trial_checkpoints: bool = False
    overlay_path: str = "conf/tuned/parameters_pretrain.yml"
    log_to_mlflow: bool = True

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.max_total_trials is not None and self.max_total_trials < 1:
            raise ValueError("max_total_trials must be >= 1 or null")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.heartbeat_interval_s < 1 or self.grace_period_s <= self.heartbeat_interval_s:
            raise ValueError("need heartbeat_interval_s >= 1 and grace_period_s > it")
        if not self.storage:
            raise ValueError("storage must name a database URL or journal:<path>")
        for name in ("pretrain_trainer", "finetune_trainer"):
            if "output_dir" in getattr(self, name):
                raise ValueError(f"{name}.output_dir is set per trial under work_dir")

    @property
    def directions(self) -> list[str]:
        """Clean validation accuracy, plus perturbed validation accuracy when enabled."""
        return ["maximize", "maximize"] if self.perturbed.enabled else ["maximize"]

    @property
    def objective_names(self) -> list[str]:
        names = ["val_accuracy"]
        if self.perturbed.enabled:
            names.append(f"val_accuracy_{self.perturbed.image}_s{self.perturbed.severity}")
        return names
