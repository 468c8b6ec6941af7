"""Typed parameters of the validation pipeline (``params:validation``).

The dataclasses live in :mod:`robust_mmr_pipeline.validation.config` (plain Python, usable
without Kedro); this module is the pipeline's entry in ``params.PARAM_SCHEMAS``.
"""

from __future__ import annotations

from robust_mmr_pipeline.validation.config import (
    Bounds,
    ImageCheckParams,
    PhiParams,
    SplitOverlapParams,
    ValidationParams,
)

__all__ = ["Bounds", "ImageCheckParams", "PhiParams", "SplitOverlapParams", "ValidationParams"]
