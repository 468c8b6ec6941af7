"""The MMR model family: M3AE-style masked multi-modal reconstruction, MPMA and Robust-MMR.

Plain torch + timm + transformers + tokenizers (no Kedro). torchvision is made importable
first: timm and transformers import it, and PyPI's CUDA wheel fails beside the CPU torch.
"""

from robust_mmr_pipeline._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

from robust_mmr_pipeline.model.config import ModelConfig  # noqa: E402
from robust_mmr_pipeline.model.config_sections import ConfigError  # noqa: E402
from robust_mmr_pipeline.model.mmr import MMRModel  # noqa: E402
from robust_mmr_pipeline.model.outputs import FusedOutput, PretrainOutput  # noqa: E402
from robust_mmr_pipeline.model.presets import PRESETS, SIZES, apply_preset  # noqa: E402

__all__ = [
    "PRESETS",
    "SIZES",
    "ConfigError",
    "FusedOutput",
    "MMRModel",
    "ModelConfig",
    "PretrainOutput",
    "apply_preset",
]
