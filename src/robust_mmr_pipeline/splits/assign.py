"""Hash-based split assignment: stable under additions, identical for the same seed.

Every image gets a number ``u`` in ``[0, 1)`` from ``sha256(f"{seed}:{image_id}")`` (the first
8 bytes of the digest as an unsigned integer over ``2**64``). The split follows from ``u`` and
the split fractions alone, so an image's split never depends on which other images exist:
adding or removing records leaves the assignment of every other image unchanged, which a
random permutation cannot guarantee.

    train  if u <  f_train
    val    if f_train <= u < f_train + f_val
    test   otherwise

For images whose test split is fixed by something else (official train images of a source
without an official val split, carved in protocols.py), train/val follow from the fractions
renormalised: train if ``u < f_train / (f_train + f_val)``, else val. Cross-domain protocols
reuse the in-domain train/val split of their training images (protocols.py).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from robust_mmr_pipeline.seeding import hashed_seed

# The splits a manifest may hold, in the order reports list them.
SPLIT_ORDER: tuple[str, ...] = ("train", "val", "test")
# When records of one image carry different official splits, the image goes to the first of
# these that occurs (so test data is never trained on); see protocols.py.
OFFICIAL_PRECEDENCE: tuple[str, ...] = ("test", "val", "train")
# Seeds derived for perturbation sets stay in [0, 2**31 - 1]: valid for numpy, torch and
# Python's random alike.
SEED_MODULUS = 2**31 - 1


@dataclass(frozen=True)
class SplitFractions:
    """Fractions of images assigned to train / val / test by hash; they must sum to 1."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for name in SPLIT_ORDER:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fractions.{name} = {value} must lie in [0, 1].")
        if self.train <= 0.0:
            raise ValueError("fractions.train must be > 0: a protocol needs training images.")
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(
                f"fractions train + val + test = {total:g}; they must sum to 1 "
                f"(got train={self.train}, val={self.val}, test={self.test})."
            )

    @property
    def train_share_without_test(self) -> float:
        """The train fraction renormalised over train + val (used when test is fixed)."""
        return self.train / (self.train + self.val)


def unit_hash(seed: int, key: str) -> float:
    """Map ``(seed, key)`` to a float in ``[0, 1)`` via sha256; the same inputs, the same value."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def unit_hashes(seed: int, keys: Iterable[str]) -> np.ndarray:
    """:func:`unit_hash` of every key, as a float64 array in the keys' order."""
    return np.fromiter((unit_hash(seed, str(key)) for key in keys), dtype=np.float64)


def hash_splits(u: np.ndarray, fractions: SplitFractions) -> np.ndarray:
    """Split names (``train | val | test``) for hash values ``u`` under ``fractions``."""
    return np.where(
        u < fractions.train,
        "train",
        np.where(u < fractions.train + fractions.val, "val", "test"),
    ).astype(object)


def train_val_splits(u: np.ndarray, fractions: SplitFractions) -> np.ndarray:
    """Split names (``train | val``) for hash values ``u``, train/val renormalised without test."""
    return np.where(u < fractions.train_share_without_test, "train", "val").astype(object)


def derive_seed(seed: int, *parts: object) -> int:
    """A deterministic seed in ``[0, 2**31 - 1)`` from the global seed and ``parts``.

    ``derive_seed(0, "gaussian_noise", 3)`` hashes ``"0|gaussian_noise|3"`` with sha256; the
    value depends on nothing else (not on the order of other sets, nor on the platform).
    """
    return hashed_seed(seed, *parts, modulus=SEED_MODULUS)
