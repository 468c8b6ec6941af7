"""The ablation grid: which settings and seeds get their own namespaced pipeline.

Kedro builds the pipeline graph when the pipelines are registered, before ``conf/`` is read, so
the grid that shapes the graph lives here rather than in parameters (everything a run does,
steps, sizes, evaluation, stays in ``conf/<env>/parameters_ablation.yml``). For a one-off
grid, set the environment variables, e.g.::

    ROBUST_MMR_ABLATION_SETTINGS=mmr,robust_mmr ROBUST_MMR_ABLATION_SEEDS=0 \
        kedro run --pipelines ablation
"""

from __future__ import annotations

import os

NO_PRETRAINING = "no_pretraining"
# The MMR baseline, MPMA, Robust-MMR, both, and the same architecture without pre-training.
DEFAULT_SETTINGS: tuple[str, ...] = (NO_PRETRAINING, "mmr", "mpma", "robust_mmr", "robust_mmr_mpma")
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
SETTINGS_VARIABLE = "ROBUST_MMR_ABLATION_SETTINGS"
SEEDS_VARIABLE = "ROBUST_MMR_ABLATION_SEEDS"


def _listed(variable: str) -> list[str] | None:
    raw = os.environ.get(variable, "").strip()
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else None


def ablation_settings() -> tuple[str, ...]:
    """The settings (pretraining presets, or ``no_pretraining``) in table order."""
    listed = _listed(SETTINGS_VARIABLE)
    settings = tuple(listed) if listed else DEFAULT_SETTINGS
    bad = [s for s in settings if not s.replace("_", "").isalnum()]
    if bad or len(set(settings)) != len(settings):
        raise ValueError(
            f"{SETTINGS_VARIABLE}={os.environ.get(SETTINGS_VARIABLE)!r}: give distinct names "
            f"made of letters, digits and '_' separated by commas, e.g. 'mmr,robust_mmr'"
        )
    return settings


def ablation_seeds() -> tuple[int, ...]:
    """The seeds every setting is trained with."""
    listed = _listed(SEEDS_VARIABLE)
    if not listed:
        return DEFAULT_SEEDS
    try:
        seeds = tuple(int(item) for item in listed)
    except ValueError:
        seeds = ()
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"{SEEDS_VARIABLE}={os.environ.get(SEEDS_VARIABLE)!r}: give distinct non-negative "
            "integers separated by commas, e.g. '0,1,2'"
        )
    return seeds


def run_namespace(setting: str, seed: int) -> str:
    """The Kedro namespace of one run: ``ablation.<setting>.seed_<seed>``."""
    return f"ablation.{setting}.seed_{seed}"


def run_key(setting: str, seed: int) -> str:
    """The keyword under which the comparison node receives one run's results."""
    return f"{setting}__seed_{seed}"


def parse_run_key(key: str) -> tuple[str, int]:
    setting, _, seed = key.rpartition("__seed_")
    return setting, int(seed)
