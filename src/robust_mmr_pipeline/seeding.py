"""One home for seed derivation: every seed the project derives from another comes from here.

Two schemes, each for its own need, and two keyed generators:

- :func:`hashed_seed` (sha256 of ``"seed|part|..."``): a seed that depends only on its key,
  never on the order or number of other keys (perturbation sets, per-record seeds).
- :func:`stride_seed` (``seed * 1_000_003 + index``, reduced modulo ``modulus``): cheap, distinct
  seeds for a run of indices (samples of a perturbed set, epochs, trials, synthetic images).
- :func:`process_seed`: the training streams of process ``rank``, reseeded at ``step`` on a
  resume that has no saved RNG state.
- :func:`keyed_random` / :func:`name_seed`: a ``random.Random`` keyed by a string, and a numpy
  seed from a name (CRC-32), for streams that must not depend on a position in a list.

SynthRad's vectorised per-study uniforms (``sources.synthrad.rng``, splitmix64) are a hash
function over arrays, not a seed derivation, and stay there.
"""

from __future__ import annotations

import hashlib
import random
import zlib

SEED_STRIDE = 1_000_003  # a prime: seed s, index i and seed s + 1, index i - 1_000_003 differ
HASHED_SEED_MODULUS = 2**31 - 1


def hashed_seed(seed: int, *parts: object, modulus: int = HASHED_SEED_MODULUS) -> int:
    """A seed in ``[0, modulus)`` from sha256 of ``"seed|part|..."`` (platform independent)."""
    text = "|".join(str(part) for part in (seed, *parts))
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") % modulus


def stride_seed(seed: int, index: int, modulus: int | None = 2**63) -> int:
    """``(seed * 1_000_003 + index) mod modulus`` (no reduction with ``modulus=None``)."""
    value = int(seed) * SEED_STRIDE + int(index)
    return value if modulus is None else value % modulus


def process_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of process ``rank``'s training streams at ``step`` (0 for a fresh run)."""
    return seed + rank + step


def keyed_random(*key: object) -> random.Random:
    """A ``random.Random`` seeded with the string ``"part|part|..."``."""
    return random.Random("|".join(str(part) for part in key))


def name_seed(name: str) -> int:
    """A 32-bit seed from a name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(name.encode("utf-8"))
