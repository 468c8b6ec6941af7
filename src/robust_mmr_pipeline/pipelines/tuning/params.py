"""Typed parameters of the tuning pipeline (``params:tuning``); defined in the plain package."""

from robust_mmr_pipeline.tuning.config import TuningParams

__all__ = ["TuningParams"]
