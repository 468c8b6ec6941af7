"""Typed, validated configuration of the SynthRad generator: cohort and acquisition sites."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, field
from typing import Any, Literal, get_args

from pydantic import StrictInt

from robust_mmr_pipeline.sources.synthrad.catalog import FAMILIES
from robust_mmr_pipeline.sources.synthrad.styles import STYLE_NAMES
from robust_mmr_pipeline.typed_config import config, parse

NOISE_TYPES: tuple[str, ...] = ("gaussian", "poisson", "speckle")
# Which modalities each artefact affects: a grid is an X-ray device, rings and streaks are CT
# reconstruction artefacts, ghosting is MR motion; burned-in markers are stamped on everything.
ARTEFACTS: dict[str, tuple[str, ...]] = {
    "grid": ("x-ray",),
    "ring": ("ct",),
    "streaks": ("ct",),
    "ghosting": ("mri",),
    "marker": ("x-ray", "ct", "mri"),
}
SplitName = Literal["train", "val", "test"]
SPLIT_NAMES: tuple[str, ...] = get_args(SplitName)
Family = Literal["chest", "head", "abdomen"]
assert get_args(Family) == FAMILIES, "Family must list catalog.FAMILIES"
MAX_SEED = 2**63 - 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object, name: str, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}.")
    return float(value)


@config
class SiteConfig:
    """One acquisition site: its image signature and its reporting style.

    name: the ``domain`` value of its images. style: a report style of ``text.REPORT_STYLES``.
    weight: relative share of the cohort. window, gamma: intensity curve; ``window`` maps
    [low, high] of the rendered [0, 1] scale to [0, 1], then ``** gamma``; intensity_jitter
    varies both window ends per study. noise_type (gaussian | poisson | speckle), noise_level:
    noise std at full signal, added at the acquisition resolution. blur_sigma: Gaussian PSF in
    pixels of a 128-px image (scaled with ``image_size``). resolution_scale: < 1 acquires at
    that fraction of the size, then resamples up. bias_strength: smooth multiplicative bias
    field. jpeg_quality: JPEG-like block-DCT quantisation (None: lossless). artefacts: any of
    ``ARTEFACTS`` (each on its modalities) with amplitude ``artefact_strength``. mr_fraction:
    share of this site's abdomen studies that are MRI (the rest CT).
    """

    name: str
    style: str = "structured"
    weight: float = 1.0
    window: tuple[float, float] = (0.0, 1.0)
    gamma: float = 1.0
    intensity_jitter: float = 0.02
    noise_type: str = "gaussian"
    noise_level: float = 0.02
    blur_sigma: float = 0.5
    resolution_scale: float = 1.0
    bias_strength: float = 0.05
    jpeg_quality: int | None = None
    artefacts: tuple[str, ...] = ()
    artefact_strength: float = 0.05
    mr_fraction: float = 0.5

    def __post_init__(self) -> None:
        owner = f"SiteConfig({self.name!r})"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"SiteConfig: name must be a non-empty string, got {self.name!r}.")
        if self.style not in STYLE_NAMES:
            raise ValueError(
                f"{owner}: style {self.style!r} is unknown; choose one of {STYLE_NAMES}."
            )
        self.weight = _number(self.weight, "weight", owner)
        if self.weight <= 0:
            raise ValueError(f"{owner}: weight must be > 0, got {self.weight}.")
        if not isinstance(self.window, tuple | list) or len(self.window) != 2:
            raise ValueError(f"{owner}: window must be a pair (low, high), got {self.window!r}.")
        low, high = (_number(v, "window", owner) for v in self.window)
        if not high > low:
            raise ValueError(f"{owner}: window high must exceed low, got ({low}, {high}).")
        self.window = (low, high)
        self.gamma = _number(self.gamma, "gamma", owner)
        if not 0.1 <= self.gamma <= 10:
            raise ValueError(f"{owner}: gamma must be in [0.1, 10], got {self.gamma}.")
        for name, upper in (
            ("intensity_jitter", 0.5),
            ("noise_level", 1.0),
            ("blur_sigma", 20.0),
            ("bias_strength", 0.9),
            ("artefact_strength", 1.0),
            ("mr_fraction", 1.0),
        ):
            value = _number(getattr(self, name), name, owner)
            if not 0 <= value <= upper:
                raise ValueError(f"{owner}: {name} must be in [0, {upper}], got {value}.")
            setattr(self, name, value)
        if self.noise_type not in NOISE_TYPES:
            raise ValueError(
                f"{owner}: noise_type {self.noise_type!r} is unknown; choose one of {NOISE_TYPES}."
            )
        self.resolution_scale = _number(self.resolution_scale, "resolution_scale", owner)
        if not 0.1 <= self.resolution_scale <= 1:
            raise ValueError(
                f"{owner}: resolution_scale must be in [0.1, 1], got {self.resolution_scale}."
            )
        if self.jpeg_quality is not None and (
            not _is_int(self.jpeg_quality) or not 1 <= self.jpeg_quality <= 100
        ):
            raise ValueError(
                f"{owner}: jpeg_quality must be None or an integer in [1, 100], "
                f"got {self.jpeg_quality!r}."
            )
        if isinstance(self.artefacts, str):
            raise ValueError(f"{owner}: artefacts must be a list of names, got a string.")
        self.artefacts = tuple(self.artefacts)
        unknown = [a for a in self.artefacts if a not in ARTEFACTS]
        if unknown:
            raise ValueError(
                f"{owner}: unknown artefact(s) {unknown}; choose from {tuple(ARTEFACTS)}."
            )


def default_sites() -> list[SiteConfig]:
    """Four sites with distinct signatures; ``site_d`` (the default held-out one) is the harshest.

    The signatures are tuned so a pixel classifier trained on sites a-c loses accuracy on d
    (measured by benchmarks/bench_synthrad.py) while every site stays readable.
    """
    return [
        SiteConfig(
            name="site_a",
            style="structured",
            window=(0.0, 1.0),
            gamma=1.0,
            noise_type="gaussian",
            noise_level=0.015,
            blur_sigma=0.6,
            resolution_scale=1.0,
            bias_strength=0.05,
            jpeg_quality=None,
            artefacts=(),
            mr_fraction=0.3,
        ),
        SiteConfig(
            name="site_b",
            style="narrative",
            window=(0.04, 0.96),
            gamma=0.85,
            noise_type="poisson",
            noise_level=0.03,
            blur_sigma=0.9,
            resolution_scale=0.8,
            bias_strength=0.12,
            jpeg_quality=85,
            artefacts=("grid",),
            mr_fraction=0.5,
        ),
        SiteConfig(
            name="site_c",
            style="terse",
            window=(-0.04, 1.04),
            gamma=1.15,
            noise_type="speckle",
            noise_level=0.04,
            blur_sigma=0.4,
            resolution_scale=1.0,
            bias_strength=0.08,
            jpeg_quality=75,
            artefacts=("ring", "marker"),
            mr_fraction=0.6,
        ),
        SiteConfig(
            name="site_d",
            style="telegraphic",
            window=(0.08, 0.9),
            gamma=0.75,
            noise_type="gaussian",
            noise_level=0.035,
            blur_sigma=1.2,
            resolution_scale=0.5,
            bias_strength=0.25,
            jpeg_quality=50,
            artefacts=("streaks", "ghosting", "marker"),
            artefact_strength=0.05,
            mr_fraction=0.4,
        ),
    ]


@config
class SynthRadConfig:
    """The whole SynthRad cohort. Study ``i`` depends only on ``(seed, i)`` and the other fields
    except ``n_studies``, so growing ``n_studies`` keeps the first studies (and their splits).

    n_studies, image_size (square, pixels), seed: the cohort. sites: acquisition sites (>= 2).
    ``held_out_sites`` are reserved for cross-domain evaluation: their studies get split "test".
    Left as None it becomes the last site (``site_d`` with the default sites); [] holds out none.
    family_weights: relative share of chest / head / abdomen studies. normal_fraction: share of
    studies without findings; secondary_finding_prob: chance an abnormal study has a second
    finding of its family. split_fractions: train / val / test shares of the per-study hash.
    png_compress_level: zlib level of the written PNGs (low is fast).

    corpus: an UNLABELED pre-training corpus instead of a labeled cohort: ``n_studies`` studies
    of the training sites only (studies drawn at a held-out site are skipped, never generated
    into the corpus), each an image with its report and caption; no QA, no label rows. Give it
    its own ``seed`` and source name, so its studies are not the labeled cohort's.
    """

    n_studies: StrictInt = 1000
    image_size: StrictInt = 128
    seed: StrictInt = 0
    sites: list[SiteConfig] = field(default_factory=default_sites)
    held_out_sites: list[str] | None = None
    family_weights: dict[Family, float] = field(
        default_factory=lambda: {"chest": 0.4, "head": 0.3, "abdomen": 0.3}
    )
    normal_fraction: float = 0.3
    secondary_finding_prob: float = 0.15
    split_fractions: dict[SplitName, float] = field(
        default_factory=lambda: {"train": 0.7, "val": 0.1, "test": 0.2}
    )
    png_compress_level: StrictInt = 1
    corpus: bool = False

    def __post_init__(self) -> None:
        owner = "SynthRadConfig"
        if not isinstance(self.corpus, bool):
            raise ValueError(f"{owner}: corpus must be true or false, got {self.corpus!r}.")
        if not _is_int(self.n_studies) or self.n_studies < 1:
            raise ValueError(f"{owner}: n_studies must be an integer >= 1, got {self.n_studies!r}.")
        if not _is_int(self.image_size) or not 32 <= self.image_size <= 1024:
            raise ValueError(
                f"{owner}: image_size must be an integer in [32, 1024], got {self.image_size!r}."
            )
        if not _is_int(self.seed) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"{owner}: seed must be an integer in [0, 2**63), got {self.seed!r}.")
        if not isinstance(self.sites, list | tuple) or len(self.sites) < 2:
            raise ValueError(f"{owner}: sites must list at least two SiteConfig entries.")
        self.sites = list(self.sites)
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError(f"{owner}: site names must be unique, got {names}.")
        if self.held_out_sites is None:
            self.held_out_sites = [names[-1]]
        if isinstance(self.held_out_sites, str):
            raise ValueError(f"{owner}: held_out_sites must be a list of site names, not a string.")
        self.held_out_sites = list(self.held_out_sites)
        unknown = [s for s in self.held_out_sites if s not in names]
        if unknown:
            raise ValueError(f"{owner}: held_out_sites {unknown} are not among the sites {names}.")
        if len(set(self.held_out_sites)) >= len(names):
            raise ValueError(f"{owner}: at least one site must stay in training; all are held out.")
        self.family_weights = _weights(self.family_weights, FAMILIES, "family_weights", False)
        for name in ("normal_fraction", "secondary_finding_prob"):
            value = _number(getattr(self, name), name, owner)
            if not 0 <= value <= 1:
                raise ValueError(f"{owner}: {name} must be in [0, 1], got {value}.")
            setattr(self, name, value)
        self.split_fractions = _weights(self.split_fractions, SPLIT_NAMES, "split_fractions", True)
        if abs(sum(self.split_fractions.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"{owner}: split_fractions must sum to 1, got {self.split_fractions} "
                f"(sum {sum(self.split_fractions.values()):.6f})."
            )
        if not _is_int(self.png_compress_level) or not 0 <= self.png_compress_level <= 9:
            raise ValueError(
                f"{owner}: png_compress_level must be an integer in [0, 9], "
                f"got {self.png_compress_level!r}."
            )

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists) that ``from_dict`` reads back."""
        data = asdict(self)
        for site in data["sites"]:
            site["window"] = list(site["window"])
            site["artefacts"] = list(site["artefacts"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SynthRadConfig:
        """Build from a plain mapping (e.g. Kedro ``params:``); unknown keys are an error."""
        return parse(cls, data, "synthrad", fix="Fix: correct it (see sources/synthrad/config.py).")


def _weights(
    value: object, keys: tuple[str, ...], name: str, require_all: bool
) -> dict[str, float]:
    owner = "SynthRadConfig"
    if not isinstance(value, Mapping):
        raise ValueError(f"{owner}: {name} must be a mapping of {keys} to weights, got {value!r}.")
    if require_all and set(value) != set(keys):
        raise ValueError(f"{owner}: {name} must give all of {keys}, got {sorted(value)}.")
    out = {key: _number(value.get(key, 0.0), f"{name}[{key!r}]", owner) for key in keys}
    if any(v < 0 for v in out.values()) or sum(out.values()) <= 0:
        raise ValueError(f"{owner}: {name} must be non-negative with a positive sum, got {out}.")
    return out


def site_shift(site: SiteConfig) -> dict[str, list[str]]:
    """What a site's acquisition and reporting do, per modality, named by the perturbation
    family each mechanism resembles where one does (``gamma``, ``gaussian_blur``,
    ``downsample``, ...), else by the mechanism: what the report sets beside the training
    and evaluation families, so a held-out site a training family imitates shows up."""
    from robust_mmr_pipeline.sources.synthrad.styles import REPORT_STYLES

    image = [f"window {list(site.window)}", f"{site.noise_type} noise {site.noise_level}"]
    image.append({"gaussian": "gaussian_noise", "poisson": "shot_noise"}.get(
        site.noise_type, "speckle_noise"))  # fmt: skip
    if site.gamma != 1.0:
        image.append(f"gamma ({site.gamma})")
    if site.blur_sigma > 0:
        image.append(f"gaussian_blur (sigma {site.blur_sigma})")
    if site.resolution_scale < 1.0:
        image.append(f"downsample (x{site.resolution_scale})")
    if site.bias_strength > 0:
        image.append(f"bias_field ({site.bias_strength})")
    if site.jpeg_quality is not None:
        image.append(f"jpeg (quality {site.jpeg_quality})")
    image += [f"artefact {a}" for a in site.artefacts]
    style = REPORT_STYLES[site.style]
    text = [f"reporting style {site.style!r}"]
    if style.abbreviation:
        text.append("abbreviation_contract")
    if style.lowercase:
        text.append("punctuation_case")
    if style.american:
        text.append("american spelling (synonym_swap's table)")
    return {"image": image, "text": text}
