"""Vectorised sampling of what each study is: site, family, modality, findings and their attributes.

Every column comes from :func:`rng.hash_uniforms` with a fixed stream number, so adding a stream
never shifts another and study ``i`` is a function of ``(config, i)`` only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robust_mmr_pipeline.sources.synthrad.catalog import (
    CHEST,
    CT,
    FAMILIES,
    FAMILY_FINDINGS,
    FIELD_OF_VIEW_MM,
    FINDING_INDEX,
    FINDINGS,
    HEAD,
    MRI,
    XRAY,
)
from robust_mmr_pipeline.sources.synthrad.config import SPLIT_NAMES, SynthRadConfig
from robust_mmr_pipeline.sources.synthrad.rng import hash_uniforms

N_FINDINGS = len(FINDINGS)
MAX_LESIONS = 3
N_ANATOMY = 32
N_TEXT = 16
N_ACQ = 8

# Stream layout (fixed numbers: never renumber, only append).
S_SITE, S_FAMILY, S_NORMAL, S_PRIMARY, S_SECOND, S_SECOND_TYPE, S_MR, S_SPLIT = range(8)
S_ACQ = 16
S_ANATOMY = 32
S_TEXT = 64
S_FINDING = 96
FINDING_STREAMS = 16  # per finding type: side, region, size, count, 3 sizes, 6 positions, 3 shape
N_STREAMS = S_FINDING + N_FINDINGS * FINDING_STREAMS


@dataclass
class StudyPlan:
    """Struct of arrays describing ``n`` studies (``F`` = number of finding types).

    index int64 [n]; site, family, modality, split, primary, secondary int64 [n] (-1 = none);
    held_out bool [n]; has bool [n, F]; side, region, size, count int64 [n, F] (-1 = n/a);
    size_mm float64 [n, F, 3] (per lesion, largest first, 0 where absent);
    pos float64 [n, F, 3, 2] and shape float64 [n, F, 3] uniforms for placement and form;
    anatomy [n, 32], text [n, 16], acq [n, 8] uniforms.
    """

    index: np.ndarray
    site: np.ndarray
    family: np.ndarray
    modality: np.ndarray
    split: np.ndarray
    held_out: np.ndarray
    primary: np.ndarray
    secondary: np.ndarray
    has: np.ndarray
    side: np.ndarray
    region: np.ndarray
    size: np.ndarray
    count: np.ndarray
    size_mm: np.ndarray
    pos: np.ndarray
    shape: np.ndarray
    anatomy: np.ndarray
    text: np.ndarray
    acq: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def subset(self, rows: np.ndarray) -> StudyPlan:
        """The plan restricted to ``rows`` (an index or boolean array)."""
        return StudyPlan(**{name: value[rows] for name, value in vars(self).items()})


def _categorical(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index of the bin of each uniform in ``u`` under the (unnormalised) ``weights``."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    return np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(cum) - 1)


def sample_plan(config: SynthRadConfig, index: np.ndarray) -> StudyPlan:
    """Sample the plan of studies ``index`` (int array [n]) for ``config``."""
    index = np.asarray(index, dtype=np.int64)
    n = len(index)
    u = hash_uniforms(config.seed, index, np.arange(N_STREAMS))

    site = _categorical(u[:, S_SITE], np.array([s.weight for s in config.sites]))
    family = _categorical(u[:, S_FAMILY], np.array([config.family_weights[f] for f in FAMILIES]))
    mr_fraction = np.array([s.mr_fraction for s in config.sites])[site]
    modality = np.select(
        [family == CHEST, family == HEAD, u[:, S_MR] < mr_fraction], [XRAY, CT, MRI], default=CT
    )
    held = np.isin(np.array(config.site_names)[site], config.held_out_sites)
    fractions = np.array([config.split_fractions[k] for k in SPLIT_NAMES])
    split = np.where(held, SPLIT_NAMES.index("test"), _categorical(u[:, S_SPLIT], fractions))

    # Findings: primary uniform among the family's types, secondary among the remaining ones.
    n_types = np.array([len(FAMILY_FINDINGS[f]) for f in range(len(FAMILIES))])[family]
    type_table = np.full((len(FAMILIES), max(map(len, FAMILY_FINDINGS))), -1, dtype=np.int64)
    for fam, types in enumerate(FAMILY_FINDINGS):
        type_table[fam, : len(types)] = types
    abnormal = u[:, S_NORMAL] >= config.normal_fraction
    first = np.minimum((u[:, S_PRIMARY] * n_types).astype(np.int64), n_types - 1)
    offset = 1 + np.minimum((u[:, S_SECOND_TYPE] * (n_types - 1)).astype(np.int64), n_types - 2)
    second = (first + offset) % n_types
    primary = np.where(abnormal, type_table[family, first], -1)
    has_second = abnormal & (u[:, S_SECOND] < config.secondary_finding_prob) & (n_types > 1)
    secondary = np.where(has_second, type_table[family, second], -1)
    rows = np.arange(n)
    has = np.zeros((n, N_FINDINGS), dtype=bool)
    has[rows[primary >= 0], primary[primary >= 0]] = True
    has[rows[secondary >= 0], secondary[secondary >= 0]] = True

    side = np.full((n, N_FINDINGS), -1, dtype=np.int64)
    region = np.full((n, N_FINDINGS), -1, dtype=np.int64)
    size = np.zeros((n, N_FINDINGS), dtype=np.int64)
    count = np.zeros((n, N_FINDINGS), dtype=np.int64)
    size_mm = np.zeros((n, N_FINDINGS, MAX_LESIONS))
    pos = np.zeros((n, N_FINDINGS, MAX_LESIONS, 2))
    shape = np.zeros((n, N_FINDINGS, MAX_LESIONS))
    for t, spec in enumerate(FINDINGS):
        f = u[:, S_FINDING + t * FINDING_STREAMS : S_FINDING + (t + 1) * FINDING_STREAMS]
        on = has[:, t]
        if spec.sides:
            side[:, t] = np.where(
                on, np.minimum((f[:, 0] * len(spec.sides)).astype(int), len(spec.sides) - 1), -1
            )
        if spec.regions:
            region[:, t] = np.where(
                on, np.minimum((f[:, 1] * len(spec.regions)).astype(int), len(spec.regions) - 1), -1
            )
        size[:, t] = np.minimum((f[:, 2] * len(spec.sizes)).astype(int), len(spec.sizes) - 1)
        count[:, t] = np.where(on, 1 + _categorical(f[:, 3], np.array(spec.count_probs)), 0)
        if spec.size_mm is not None:
            bounds = np.array(spec.size_mm)[size[:, t]]
            largest = np.round(bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * f[:, 4])
            # Further lesions are smaller than the first so "the largest measuring" stays true.
            others = np.round(largest[:, None] * (0.5 + 0.4 * f[:, 5:7]))
            size_mm[:, t] = np.concatenate([largest[:, None], others], axis=1)
            size_mm[:, t] *= np.arange(MAX_LESIONS)[None, :] < count[:, t, None]
        pos[:, t] = f[:, 7:13].reshape(n, MAX_LESIONS, 2)
        shape[:, t] = f[:, 13:16]
        size[:, t] = np.where(on, size[:, t], -1)
    # Large ascites is never confined to the liver surface.
    asc = FINDING_INDEX["ascites"]
    region[:, asc] = np.where(has[:, asc] & (size[:, asc] == 2), 1, region[:, asc])

    return StudyPlan(
        index=index,
        site=site,
        family=family,
        modality=modality,
        split=split,
        held_out=held,
        primary=primary,
        secondary=secondary,
        has=has,
        side=side,
        region=region,
        size=size,
        count=count,
        size_mm=size_mm,
        pos=pos,
        shape=shape,
        anatomy=u[:, S_ANATOMY : S_ANATOMY + N_ANATOMY],
        text=u[:, S_TEXT : S_TEXT + N_TEXT],
        acq=u[:, S_ACQ : S_ACQ + N_ACQ],
    )


def lesion_radius(plan: StudyPlan, finding: int) -> np.ndarray:
    """Rendered lesion radii in normalised image units ([-1, 1] spans the FOV): float32 [n, 3]."""
    fov = np.asarray(FIELD_OF_VIEW_MM)[plan.family]
    return (plan.size_mm[:, finding] / fov[:, None]).astype(np.float32)
