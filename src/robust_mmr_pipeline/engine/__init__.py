"""Training engine: Accelerate loop, safetensors checkpoints, decode-once image cache.

Plain torch + Accelerate + safetensors; no Kedro. The pipeline layer calls :func:`train` with a
model following ``docs/CONTRACTS.md``, a dataset, a :class:`TrainerConfig` and a collate
function, and plugs logging in through the :class:`TrainLogger` protocol (e.g.
:class:`MLflowLogger`). :func:`load_model` rebuilds a model from a checkpoint alone, through
the allow-list of :func:`register_model_class`.
"""

from robust_mmr_pipeline._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

from robust_mmr_pipeline.engine.accelerator import make_accelerator  # noqa: E402
from robust_mmr_pipeline.engine.callbacks import (  # noqa: E402
    CompositeLogger,
    MemoryLogger,
    MLflowLogger,
    TrainLogger,
)
from robust_mmr_pipeline.engine.checkpoint import (  # noqa: E402
    CheckpointContents,
    CheckpointError,
    RunTarget,
    latest_checkpoint,
    list_checkpoints,
    load_model,
    load_model_weights,
    read_trainer_state,
    resolve_checkpoint,
    retire_replaced,
    save_best,
    save_checkpoint,
    start_run,
    tokenizer_fingerprint,
    verify_checkpoint,
)
from robust_mmr_pipeline.engine.config import TrainerConfig, TrainerConfigError  # noqa: E402
from robust_mmr_pipeline.engine.data import ImageCache, load_image  # noqa: E402
from robust_mmr_pipeline.engine.inference import evaluate, predict  # noqa: E402
from robust_mmr_pipeline.engine.optim import (  # noqa: E402
    build_optimizer,
    build_param_groups,
    build_scheduler,
    lr_factor,
)
from robust_mmr_pipeline.engine.pairs import (  # noqa: E402
    PairCollator,
    PairDataset,
    domain_vocabulary,
)
from robust_mmr_pipeline.engine.registry import (  # noqa: E402
    ModelClassNotAllowedError,
    register_model_class,
    registered_model_classes,
    resolve_model_class,
)
from robust_mmr_pipeline.engine.run_result import NonFiniteLossError, TrainResult  # noqa: E402
from robust_mmr_pipeline.engine.sharding import GlobalBatchSampler  # noqa: E402
from robust_mmr_pipeline.engine.trainer import train  # noqa: E402

__all__ = [
    "CheckpointContents",
    "CheckpointError",
    "CompositeLogger",
    "GlobalBatchSampler",
    "ImageCache",
    "MLflowLogger",
    "MemoryLogger",
    "ModelClassNotAllowedError",
    "NonFiniteLossError",
    "PairCollator",
    "PairDataset",
    "RunTarget",
    "TrainLogger",
    "TrainResult",
    "TrainerConfig",
    "TrainerConfigError",
    "build_optimizer",
    "build_param_groups",
    "build_scheduler",
    "domain_vocabulary",
    "evaluate",
    "latest_checkpoint",
    "list_checkpoints",
    "load_image",
    "load_model",
    "load_model_weights",
    "lr_factor",
    "make_accelerator",
    "predict",
    "read_trainer_state",
    "register_model_class",
    "registered_model_classes",
    "resolve_checkpoint",
    "resolve_model_class",
    "retire_replaced",
    "save_best",
    "save_checkpoint",
    "start_run",
    "tokenizer_fingerprint",
    "train",
    "verify_checkpoint",
]
