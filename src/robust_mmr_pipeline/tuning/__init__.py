"""Optuna search over the Robust-MMR loss weights and perturbation settings (plain Python).

:mod:`.config` types ``params:tuning``; :mod:`.study` builds the storage (SQLite / any RDB /
journal file), the seeded TPE sampler, the pruner, the study-wide budget and crash recovery;
:mod:`.space` samples the knobs into ``pretrain.model`` overrides; :mod:`.objective` scores a
trial by cross-domain VALIDATION accuracy after a short pre-training + VQA fine-tuning;
:mod:`.report` turns the study into a conf overlay, a ``--params`` string and plots;
:func:`tune` runs one worker end to end.
"""

from importlib import import_module
from typing import Any

# Submodule of each public name. Resolved on first use (PEP 562) so that importing
# tuning.config for parameter validation does not load Optuna.
_EXPORTS = {
    "FloatRange": "config",
    "IntRange": "config",
    "PerturbedObjective": "config",
    "PrunerParams": "config",
    "SamplerParams": "config",
    "SearchSpace": "config",
    "TuningParams": "config",
    "params_text": "runner",
    "summarise": "runner",
    "tune": "runner",
    "build_storage": "study",
    "count_trials": "study",
    "fail_stale_trials": "study",
    "open_study": "study",
    "run_study": "study",
    "trial_seed": "study",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)


__all__ = [
    "FloatRange",
    "IntRange",
    "PerturbedObjective",
    "PrunerParams",
    "SamplerParams",
    "SearchSpace",
    "TuningParams",
    "build_storage",
    "count_trials",
    "fail_stale_trials",
    "open_study",
    "params_text",
    "run_study",
    "summarise",
    "trial_seed",
    "tune",
]
